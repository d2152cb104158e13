package daemon

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/require"

	"github.com/kitenats/kitenats/config"
)

// freeAdminPort returns a loopback port that was free a moment ago.
func freeAdminPort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer func() { _ = ln.Close() }()
	return ln.Addr().(*net.TCPAddr).Port
}

// scrape returns the daemon's /metrics, parsed.
func scrape(t *testing.T, d *Daemon) map[string]*dto.MetricFamily {
	t.Helper()
	resp, err := http.Get("http://" + d.AdminAddr().String() + "/metrics")
	require.NoError(t, err)
	defer func() { _ = resp.Body.Close() }()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	p := expfmt.NewTextParser(model.UTF8Validation)
	fs, err := p.TextToMetricFamilies(strings.NewReader(string(body)))
	require.NoError(t, err, string(body))
	return fs
}

// series returns f's metrics by the value of label.
func series(f *dto.MetricFamily, label string) map[string]*dto.Metric {
	out := map[string]*dto.Metric{}
	for _, m := range f.GetMetric() {
		for _, l := range m.GetLabel() {
			if l.GetName() == label {
				out[l.GetValue()] = m
			}
		}
	}
	return out
}

// metricsDaemon is a daemon with its admin HTTP on, a RocksDB store that
// syncs every write, and room for two topics in the histograms.
func metricsDaemon(t *testing.T) *Daemon {
	t.Helper()
	return startTestDaemon(t, func(c *config.Config) {
		c.AdminPort = freeAdminPort(t)
		c.DB = "rocksdb://" + filepath.Join(t.TempDir(), "db") + "?durability=sync"
		c.MetricTopics = 2
	})
}

// TestE2EPrometheus: after real traffic, a daemon's /metrics has the
// latency histograms by topic (the third topic under "other"), the
// redeliveries by reason, connections by protocol, the store's batch size,
// write and fsync latency, the Go runtime and process collectors, and the
// STAT families with their names of before.
func TestE2EPrometheus(t *testing.T) {
	d := metricsDaemon(t)
	url := d.ClientURL()
	_, ch := consume(t, url, "s-all", `{"topic":"t1","bindType":"fanout","persistent":true}`, "")
	_, ch2 := consume(t, url, "s-2", `{"topic":"t2","bindType":"fanout","persistent":true}`, "")
	_, ch3 := consume(t, url, "s-3", `{"topic":"t3","bindType":"fanout","persistent":true}`, "")
	kq, err := net.Dial("tcp", d.KiteQAddr().String()) // a KiteQ connection, idle
	require.NoError(t, err)
	defer func() { _ = kq.Close() }()

	pub := connect(t, url)
	counts := map[string]int{"t1": 3, "t2": 2, "t3": 4}
	for topic, n := range counts {
		for i := range n {
			_, err := pub.Request("kq."+topic+".pay", []byte(fmt.Sprint(i)), 5*time.Second)
			require.NoError(t, err)
		}
	}
	for topic, c := range map[string]chan *nats.Msg{"t1": ch, "t2": ch2, "t3": ch3} {
		for range counts[topic] {
			require.NoError(t, recv(t, c).AckSync())
		}
	}
	// One nak: redelivered at once (KiteQ's schedule), then acked.
	_, err = pub.Request("kq.t1.pay", []byte("nak"), 5*time.Second)
	require.NoError(t, err)
	require.NoError(t, recv(t, ch).Nak())
	require.NoError(t, recv(t, ch).AckSync())

	var fs map[string]*dto.MetricFamily
	require.Eventually(t, func() bool {
		fs = scrape(t, d)
		return series(fs["kitenats_connections"], "protocol")["kiteq"].GetGauge().GetValue() == 1
	}, 5*time.Second, 10*time.Millisecond)

	count := func(name, topic string) uint64 {
		return series(fs[name], "topic")[topic].GetHistogram().GetSampleCount()
	}
	// Topics get their series in the order first observed: t1, t2, t3 go
	// to two of them and "other", whichever came first.
	for _, name := range []string{"kitenats_publish_to_store_ack_seconds", "kitenats_publish_to_first_delivery_seconds", "kitenats_delivery_to_ack_seconds"} {
		got := series(fs[name], "topic")
		require.Len(t, got, 3, "%s: two topics and other", name)
		require.Contains(t, got, "other", name)
		total := uint64(0)
		for topic := range got {
			total += count(name, topic)
		}
		require.EqualValues(t, 10, total, "%s: 10 messages (the nacked one: one store ack, one first delivery, one ack)", name)
	}
	require.EqualValues(t, 2, fs["kitenats_metric_topics"].GetMetric()[0].GetGauge().GetValue())
	reasons := series(fs["kitenats_redeliveries_total"], "reason")
	require.EqualValues(t, 1, reasons["nak"].GetCounter().GetValue())
	for _, r := range []string{"timeout", "consumer_gone", "send_failed"} {
		require.Contains(t, reasons, r, "shown from zero")
	}
	conns := series(fs["kitenats_connections"], "protocol")
	require.EqualValues(t, 4, conns["nats"].GetGauge().GetValue(), "three consumers and the publisher")
	require.EqualValues(t, 1, conns["kiteq"].GetGauge().GetValue())
	require.EqualValues(t, 4, series(fs["kitenats_connections_opened_total"], "protocol")["nats"].GetCounter().GetValue())

	batch := fs["kitenats_store_batch_size"].GetMetric()[0].GetHistogram()
	require.NotZero(t, batch.GetSampleCount())
	require.GreaterOrEqual(t, batch.GetSampleSum(), 10.0, "10 saves and their acks at least")
	require.NotZero(t, fs["kitenats_store_write_seconds"].GetMetric()[0].GetHistogram().GetSampleCount())
	require.NotZero(t, fs["kitenats_store_fsync_seconds"].GetMetric()[0].GetHistogram().GetSampleCount(), "durability=sync: an fsync per write")

	for _, name := range []string{"go_goroutines", "go_gc_duration_seconds", "process_cpu_seconds_total", "process_resident_memory_bytes"} {
		require.Contains(t, fs, name, "the Go runtime and process collectors")
	}
	// The STAT families keep their names and meaning.
	require.EqualValues(t, 10, fs["kitenats_published_total"].GetMetric()[0].GetCounter().GetValue())
	require.EqualValues(t, 11, fs["kitenats_delivered_total"].GetMetric()[0].GetCounter().GetValue())
	require.EqualValues(t, 1, fs["kitenats_redelivered_total"].GetMetric()[0].GetCounter().GetValue())
	require.EqualValues(t, 10, fs["kitenats_acked_total"].GetMetric()[0].GetCounter().GetValue())
	require.EqualValues(t, 1, fs["kitenats_nacked_total"].GetMetric()[0].GetCounter().GetValue())
	require.EqualValues(t, 1, fs["kitenats_healthy"].GetMetric()[0].GetGauge().GetValue())

	// A message left unacknowledged: the per-topic and per-group families
	// have a series again (a family without one is not served).
	_, err = pub.Request("kq.t1.pay", []byte("pending"), 5*time.Second)
	require.NoError(t, err)
	recv(t, ch)
	fs = scrape(t, d)
	for _, name := range statNames {
		require.Contains(t, fs, name)
	}
	require.EqualValues(t, 1, series(fs["kitenats_group_inflight"], "group")["s-all"].GetGauge().GetValue())
}

// statNames are the families /metrics had before client_golang, which
// README's metrics section lists; none may go or change its name.
var statNames = []string{
	"kitenats_healthy", "kitenats_published_total", "kitenats_prepares_total", "kitenats_refused_total",
	"kitenats_dropped_total", "kitenats_unmatched_total", "kitenats_delivered_total", "kitenats_redelivered_total",
	"kitenats_acked_total", "kitenats_nacked_total", "kitenats_ack_timeouts_total", "kitenats_undeliverable_total",
	"kitenats_intake_dropped_total", "kitenats_write_queue", "kitenats_topic_messages", "kitenats_topic_prepared",
	"kitenats_topic_unmatched_total", "kitenats_group_pending", "kitenats_group_inflight", "kitenats_group_dead",
	"kitenats_consumers", "kitenats_consumer_inflight",
}

// TestGrafanaDashboardQueriesExist: every metric deploy/grafana/kitenats.json
// queries is served by a daemon after traffic, so the dashboard cannot
// drift from the names.
func TestGrafanaDashboardQueriesExist(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join("..", "deploy", "grafana", "kitenats.json"))
	require.NoError(t, err)
	var dash struct {
		Title  string `json:"title"`
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	require.NoError(t, json.Unmarshal(raw, &dash))
	require.NotEmpty(t, dash.Panels)

	d := metricsDaemon(t)
	url := d.ClientURL()
	_, ch := consume(t, url, "s-trade", `{"topic":"trade","messageType":"pay","persistent":true}`, "")
	pub := connect(t, url)
	for _, body := range []string{"acked", "pending"} {
		_, err = pub.Request("kq.trade.pay", []byte(body), 5*time.Second)
		require.NoError(t, err)
	}
	require.NoError(t, recv(t, ch).AckSync())
	recv(t, ch) // in flight: the per-topic and per-group families have a series
	fs := scrape(t, d)

	name := regexp.MustCompile(`\b(?:kitenats|go|process)_[a-z0-9_]+\b`)
	queried := 0
	for _, p := range dash.Panels {
		for _, tg := range p.Targets {
			require.NotEmpty(t, tg.Expr, "panel %q", p.Title)
			for _, n := range name.FindAllString(tg.Expr, -1) {
				family := n
				if _, ok := fs[n]; !ok {
					for _, suffix := range []string{"_bucket", "_sum", "_count"} {
						base, cut := strings.CutSuffix(n, suffix)
						if typ := fs[base].GetType(); cut && (typ == dto.MetricType_HISTOGRAM || typ == dto.MetricType_SUMMARY && suffix != "_bucket") {
							family = base
						}
					}
				}
				require.Contains(t, fs, family, "panel %q queries %s, which /metrics does not serve", p.Title, n)
				queried++
			}
		}
	}
	require.NotZero(t, queried)
}
