package daemon

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kitenats/kitenats/admin"
)

// TestE2EMetrics: /metrics follows a publish, a delivery and an ack of a
// real daemon, per topic, (topic, group) and group, and reports health.
func TestE2EMetrics(t *testing.T) {
	d := startTestDaemon(t, nil)
	srv, err := admin.New(admin.Config{Addr: "127.0.0.1:0"}, adminSource{d})
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	defer func() { cancel(); require.NoError(t, <-done) }()
	metrics := func() string {
		resp, err := http.Get("http://" + srv.Addr().String() + "/metrics")
		require.NoError(t, err)
		defer func() { _ = resp.Body.Close() }()
		require.Equal(t, http.StatusOK, resp.StatusCode)
		b, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		return string(b)
	}
	has := func(lines ...string) func() bool {
		return func() bool {
			m := metrics()
			for _, l := range lines {
				if !strings.Contains(m, "\n"+l+"\n") {
					return false
				}
			}
			return true
		}
	}
	require.True(t, has("kitenats_healthy 1", "kitenats_published_total 0",
		"kitenats_kiteq_connections_refused_total 0", "kitenats_kiteq_txack_refused_total 0")())

	url := d.br.ClientURL()
	_, ch := consume(t, url, "s-trade", `{"topic":"trade","messageType":"pay","persistent":true}`, "")
	pub := connect(t, url)
	for _, body := range []string{"one", "two"} {
		_, err := pub.Request("kq.trade.pay", []byte(body), 5*time.Second)
		require.NoError(t, err)
	}
	first, second := recv(t, ch), recv(t, ch)
	require.NotNil(t, second)
	require.NoError(t, first.Ack())
	require.Eventually(t, has(
		"kitenats_published_total 2",
		"kitenats_delivered_total 2",
		"kitenats_acked_total 1",
		`kitenats_topic_messages{topic="trade"} 1`,
		`kitenats_group_pending{group="s-trade",topic="trade"} 1`,
		`kitenats_group_inflight{group="s-trade",topic="trade"} 1`,
		`kitenats_consumers{group="s-trade"} 1`,
		`kitenats_consumer_inflight{group="s-trade"} 1`,
	), 5*time.Second, 10*time.Millisecond, metrics())

	require.NoError(t, d.out.Close()) // the broker's outbound connection breaks
	require.True(t, has("kitenats_healthy 0")(), "health follows the broker's connections")
}

// TestStatMetricsNamesAreValid: every family has a Prometheus-valid name,
// help text and distinct label sets.
func TestStatMetricsNamesAreValid(t *testing.T) {
	d := startTestDaemon(t, nil)
	_, _ = consume(t, d.br.ClientURL(), "s-trade", `{"topic":"trade","messageType":"pay","persistent":true}`, "")
	ms, err := adminSource{d}.Metrics(context.Background())
	require.NoError(t, err)
	seen := map[string]bool{}
	for _, m := range ms {
		require.Regexp(t, `^kitenats_[a-z_]+$`, m.Name)
		require.False(t, seen[m.Name], "family %s twice", m.Name)
		seen[m.Name] = true
		require.NotEmpty(t, m.Help, m.Name)
		require.Equal(t, strings.HasSuffix(m.Name, "_total"), m.Counter, "%s: counters and only counters end in _total", m.Name)
		keys := map[string]bool{}
		for _, s := range m.Samples {
			var k []string
			for _, l := range s.Labels {
				require.Regexp(t, `^[a-z_]+$`, l.Name)
				k = append(k, l.Name+"="+l.Value)
			}
			key := strings.Join(k, ",")
			require.False(t, keys[key], "%s: sample %s twice", m.Name, key)
			keys[key] = true
		}
	}
}

// TestE2EUnmatchedPublishes: a publish no group binds is acked with groups 0
// and counted in $KQ.API.STAT, the admin /stat JSON and /metrics, in total
// and per topic; a group that binds afterwards does not get it; a publish
// that two groups bind says groups 2 (NATS-PROTOCOL.md §2, §3).
func TestE2EUnmatchedPublishes(t *testing.T) {
	d := startTestDaemon(t, nil)
	srv, err := admin.New(admin.Config{Addr: "127.0.0.1:0"}, adminSource{d})
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	defer func() { cancel(); require.NoError(t, <-done) }()
	get := func(path string) string {
		resp, err := http.Get("http://" + srv.Addr().String() + path)
		require.NoError(t, err)
		defer func() { _ = resp.Body.Close() }()
		require.Equal(t, http.StatusOK, resp.StatusCode)
		b, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		return string(b)
	}
	type stat struct {
		Unmatched int64
		Topics    []struct {
			Topic     string
			Messages  int64
			Unmatched int64
		}
	}
	url := d.br.ClientURL()
	pub := connect(t, url)
	publish := func(subject string) (ack struct {
		Duplicate bool
		Groups    *int
		Error     any
	}) {
		t.Helper()
		msg, err := pub.Request(subject, []byte("x"), 5*time.Second)
		require.NoError(t, err)
		require.NoError(t, json.Unmarshal(msg.Data, &ack), string(msg.Data))
		require.Nil(t, ack.Error, string(msg.Data))
		require.NotNil(t, ack.Groups, "groups is always in the ack: %s", msg.Data)
		return ack
	}

	// The README's order mistaken: publish, then BIND.
	require.Zero(t, *publish("kq.trade.pay").Groups)
	var api stat
	request(t, pub, "$KQ.API.STAT", nil, &api)
	require.Equal(t, int64(1), api.Unmatched)
	require.Len(t, api.Topics, 1)
	require.Equal(t, "trade", api.Topics[0].Topic)
	require.Equal(t, int64(1), api.Topics[0].Unmatched)
	require.Zero(t, api.Topics[0].Messages, "nothing stored")
	var web stat
	require.NoError(t, json.Unmarshal([]byte(get("/stat")), &web))
	require.Equal(t, api, web)
	m := get("/metrics")
	require.Contains(t, m, "\nkitenats_unmatched_total 1\n")
	require.Contains(t, m, "\n"+`kitenats_topic_unmatched_total{topic="trade"} 1`+"\n")
	require.Contains(t, m, "\n# TYPE kitenats_unmatched_total counter\n")

	_, a := consume(t, url, "s-a", `{"topic":"trade","messageType":"pay","persistent":true}`, "")
	requireNone(t, a, 200*time.Millisecond) // not delivered to a group that binds later

	// Two groups bind it: groups 2, nothing more counted.
	_, b := consume(t, url, "s-b", `{"topic":"trade","bindType":"fanout","persistent":true}`, "")
	require.Equal(t, 2, *publish("kq.trade.pay").Groups)
	require.NoError(t, recv(t, a).Ack())
	require.NoError(t, recv(t, b).Ack())
	request(t, pub, "$KQ.API.STAT", nil, &api)
	require.Equal(t, int64(1), api.Unmatched)
	require.Contains(t, get("/metrics"), "\nkitenats_unmatched_total 1\n")
}
