package main

import (
	"context"
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
		defer resp.Body.Close()
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
	require.True(t, has("kitenats_healthy 1", "kitenats_published_total 0")())

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
		`kitenats_group_pending{topic="trade",group="s-trade"} 1`,
		`kitenats_group_inflight{topic="trade",group="s-trade"} 1`,
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
