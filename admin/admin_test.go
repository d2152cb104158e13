package admin_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/kitenats/kitenats/admin"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

type fakeSource struct{ err, sick error }

// fakeStat has what the encoding of a served document must keep: nesting,
// empty and null members, and characters json.Marshal escapes.
type fakeStat struct {
	Broker    string           `json:"broker"`
	Published int64            `json:"published"`
	Topics    []map[string]int `json:"topics"`
	Groups    []string         `json:"groups"`
	Consumers []string         `json:"consumers"`
}

var theStat = fakeStat{Broker: "b<1>&\u2028", Published: 3, Topics: []map[string]int{{"messages": 2}}, Groups: []string{}}

func (f fakeSource) Stat(context.Context) (json.RawMessage, error) {
	if f.err != nil {
		return nil, f.err
	}
	return json.Marshal(theStat)
}

func (fakeSource) Bindings() (json.RawMessage, error) {
	return json.Marshal(map[string][]string{"s-trade": {"trade/pay"}})
}
func (f fakeSource) Health() error { return f.sick }
func (f fakeSource) Metrics(context.Context) ([]admin.Metric, error) {
	if f.err != nil {
		return nil, f.err
	}
	return []admin.Metric{
		{Name: "kitenats_published_total", Help: "Publishes.\nAll of them, C:\\ too.", Counter: true,
			Samples: []admin.Sample{{Value: 3}}},
		{Name: "kitenats_group_pending", Help: "Pending.", Samples: []admin.Sample{
			{Labels: []admin.Label{{Name: "topic", Value: "trade"}, {Name: "group", Value: "s-trade"}}, Value: 1e15},
			{Labels: []admin.Label{{Name: "topic", Value: "a\"b\\c\nd"}, {Name: "group", Value: "g"}}, Value: 0.25},
		}},
		{Name: "kitenats_empty", Help: "No samples."},
	}, nil
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	require.NoError(t, err)
	defer func() { _ = resp.Body.Close() }()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, string(b)
}

func TestAdminEndpoints(t *testing.T) {
	for _, tt := range []struct {
		src        fakeSource
		statCode   int
		statSubstr string
		healthCode int
		healthBody string
	}{
		{fakeSource{}, 200, `"published": 3`, 200, "ok\n"},
		{fakeSource{err: errors.New("store down")}, 503, "store down", 200, "ok\n"},
		{fakeSource{sick: errors.New("publisher: connection lost")}, 200, `"published": 3`, 503, "publisher: connection lost\n"},
	} {
		s, err := admin.New(admin.Config{Addr: "127.0.0.1:0"}, tt.src)
		require.NoError(t, err)
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- s.Run(ctx) }()
		base := "http://" + s.Addr().String()
		code, body := get(t, base+"/healthz")
		require.Equal(t, tt.healthCode, code)
		require.Equal(t, tt.healthBody, body)
		code, body = get(t, base+"/stat")
		require.Equal(t, tt.statCode, code)
		require.Contains(t, body, tt.statSubstr)
		code, body = get(t, base+"/binds")
		require.Equal(t, 200, code)
		require.Contains(t, body, "trade/pay")
		code, body = get(t, base+"/metrics")
		require.Equal(t, tt.statCode, code, "/metrics fails as /stat does")
		if code == 200 {
			for _, line := range wantMetrics {
				require.Contains(t, body, line+"\n")
			}
			require.NotContains(t, body, "kitenats_empty", "a family without samples is left out")
		}
		cancel()
		require.NoError(t, <-done)
	}
}

// wantMetrics are lines of fakeSource's metrics in Prometheus's text
// format (client_golang's): HELP escapes backslash and newline, label values
// also the double quote; labels are sorted by name; the Go runtime and
// process collectors are there too.
var wantMetrics = []string{
	`# HELP kitenats_published_total Publishes.\nAll of them, C:\\ too.`,
	`# TYPE kitenats_published_total counter`,
	`kitenats_published_total 3`,
	`# HELP kitenats_group_pending Pending.`,
	`# TYPE kitenats_group_pending gauge`,
	`kitenats_group_pending{group="s-trade",topic="trade"} 1e+15`,
	`kitenats_group_pending{group="g",topic="a\"b\\c\nd"} 0.25`,
	`# TYPE go_goroutines gauge`,
	`# TYPE process_start_time_seconds gauge`,
	`# TYPE kitenats_store_batch_size histogram`,
}

// TestStatBytes: /stat and /binds serve the source's documents as the
// indenting encoder serves the values they encode (what the endpoints wrote
// when the source returned values), byte for byte.
func TestStatBytes(t *testing.T) {
	s, err := admin.New(admin.Config{Addr: "127.0.0.1:0"}, fakeSource{})
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	indented := func(v any) string {
		var b strings.Builder
		enc := json.NewEncoder(&b)
		enc.SetIndent("", "  ")
		require.NoError(t, enc.Encode(v))
		return b.String()
	}
	_, body := get(t, "http://"+s.Addr().String()+"/stat")
	require.Equal(t, indented(theStat), body)
	require.Equal(t, `{
  "broker": "b\u003c1\u003e\u0026\u2028",
  "published": 3,
  "topics": [
    {
      "messages": 2
    }
  ],
  "groups": [],
  "consumers": null
}
`, body)
	_, body = get(t, "http://"+s.Addr().String()+"/binds")
	require.Equal(t, "{\n  \"s-trade\": [\n    \"trade/pay\"\n  ]\n}\n", body)
	cancel()
	require.NoError(t, <-done)
}

// TestMetricsContentType: /metrics says which exposition format it is.
func TestMetricsContentType(t *testing.T) {
	s, err := admin.New(admin.Config{Addr: "127.0.0.1:0"}, fakeSource{})
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	resp, err := http.Get("http://" + s.Addr().String() + "/metrics")
	require.NoError(t, err)
	_ = resp.Body.Close()
	require.True(t, strings.HasPrefix(resp.Header.Get("Content-Type"), "text/plain; version=0.0.4; charset=utf-8"), resp.Header.Get("Content-Type"))
	cancel()
	require.NoError(t, <-done)
}

// Close releases the listener of a server whose Run never ran (a daemon
// whose start failed after admin.New); twice is fine.
func TestAdminCloseWithoutRun(t *testing.T) {
	s, err := admin.New(admin.Config{Addr: "127.0.0.1:0"}, fakeSource{})
	require.NoError(t, err)
	addr := s.Addr().String()
	require.NoError(t, s.Close())
	require.NoError(t, s.Close())
	again, err := admin.New(admin.Config{Addr: addr}, fakeSource{})
	require.NoError(t, err, "the port is free again")
	require.NoError(t, again.Close())
}
