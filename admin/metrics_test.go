package admin_test

import (
	"context"
	"fmt"
	"net/http"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/stretchr/testify/require"

	"github.com/kitenats/kitenats/admin"
)

// families gathers m's registry by family name.
func families(t *testing.T, m *admin.Metrics) map[string]*dto.MetricFamily {
	t.Helper()
	fs, err := m.Registry().Gather()
	require.NoError(t, err)
	byName := map[string]*dto.MetricFamily{}
	for _, f := range fs {
		byName[f.GetName()] = f
	}
	return byName
}

// byLabel returns the metrics of f by the value of label.
func byLabel(f *dto.MetricFamily, label string) map[string]*dto.Metric {
	out := map[string]*dto.Metric{}
	if f == nil {
		return out
	}
	for _, m := range f.GetMetric() {
		for _, l := range m.GetLabel() {
			if l.GetName() == label {
				out[l.GetValue()] = m
			}
		}
	}
	return out
}

// TestMetricsObserve: each observer method lands in its family, in
// seconds, under its topic.
func TestMetricsObserve(t *testing.T) {
	m := admin.NewMetrics(admin.MetricsConfig{RedeliveryReasons: []string{"nak", "timeout"}})
	fs := families(t, m)
	reasons := byLabel(fs["kitenats_redeliveries_total"], "reason")
	require.Len(t, reasons, 2, "the known reasons are shown from zero")
	require.Zero(t, reasons["nak"].GetCounter().GetValue())
	require.NotContains(t, fs, "kitenats_publish_to_store_ack_seconds", "no topic, no series")

	m.Stored("trade", 3*time.Millisecond)
	m.Stored("trade", 5*time.Millisecond)
	m.Delivered("trade", 2*time.Second)
	m.Acked("trade", 40*time.Millisecond)
	m.Redelivered("nak")
	m.Redelivered("weird") // not known in advance: its own series
	m.StoreWrite(300, 2*time.Millisecond)
	m.Fsync(700 * time.Microsecond)

	fs = families(t, m)
	h := byLabel(fs["kitenats_publish_to_store_ack_seconds"], "topic")["trade"].GetHistogram()
	require.EqualValues(t, 2, h.GetSampleCount())
	require.InDelta(t, 0.008, h.GetSampleSum(), 1e-9)
	h = byLabel(fs["kitenats_publish_to_first_delivery_seconds"], "topic")["trade"].GetHistogram()
	require.EqualValues(t, 1, h.GetSampleCount())
	require.InDelta(t, 2.0, h.GetSampleSum(), 1e-9)
	h = byLabel(fs["kitenats_delivery_to_ack_seconds"], "topic")["trade"].GetHistogram()
	require.EqualValues(t, 1, h.GetSampleCount())
	require.InDelta(t, 0.04, h.GetSampleSum(), 1e-9)
	reasons = byLabel(fs["kitenats_redeliveries_total"], "reason")
	require.EqualValues(t, 1, reasons["nak"].GetCounter().GetValue())
	require.EqualValues(t, 0, reasons["timeout"].GetCounter().GetValue())
	require.EqualValues(t, 1, reasons["weird"].GetCounter().GetValue())
	batch := fs["kitenats_store_batch_size"].GetMetric()[0].GetHistogram()
	require.EqualValues(t, 1, batch.GetSampleCount())
	require.EqualValues(t, 300, batch.GetSampleSum())
	require.InDelta(t, 0.002, fs["kitenats_store_write_seconds"].GetMetric()[0].GetHistogram().GetSampleSum(), 1e-9)
	require.InDelta(t, 0.0007, fs["kitenats_store_fsync_seconds"].GetMetric()[0].GetHistogram().GetSampleSum(), 1e-9)
	require.EqualValues(t, 1, fs["kitenats_metric_topics"].GetMetric()[0].GetGauge().GetValue())
	for _, name := range []string{"go_goroutines", "go_memstats_alloc_bytes", "process_start_time_seconds"} {
		require.Contains(t, fs, name, "the Go runtime and process collectors")
	}
}

// TestMetricsTopicCap: past MaxTopics, topics share topic="other"; the
// topics that got a series keep it.
func TestMetricsTopicCap(t *testing.T) {
	m := admin.NewMetrics(admin.MetricsConfig{MaxTopics: 3})
	for i := range 10 {
		m.Stored(fmt.Sprintf("t%d", i), time.Millisecond)
	}
	m.Acked("t1", time.Millisecond)
	m.Acked("t9", time.Millisecond)
	fs := families(t, m)
	stored := byLabel(fs["kitenats_publish_to_store_ack_seconds"], "topic")
	require.Len(t, stored, 4, "3 topics and other")
	for _, topic := range []string{"t0", "t1", "t2"} {
		require.EqualValues(t, 1, stored[topic].GetHistogram().GetSampleCount(), topic)
	}
	require.EqualValues(t, 7, stored[admin.OtherTopic].GetHistogram().GetSampleCount())
	acked := byLabel(fs["kitenats_delivery_to_ack_seconds"], "topic")
	require.EqualValues(t, 1, acked["t1"].GetHistogram().GetSampleCount())
	require.EqualValues(t, 1, acked[admin.OtherTopic].GetHistogram().GetSampleCount())
	require.EqualValues(t, 3, fs["kitenats_metric_topics"].GetMetric()[0].GetGauge().GetValue())

	def := admin.NewMetrics(admin.MetricsConfig{})
	for i := range admin.DefaultMaxTopics + 5 {
		def.Stored(fmt.Sprintf("t%d", i), time.Millisecond)
	}
	stored = byLabel(families(t, def)["kitenats_publish_to_store_ack_seconds"], "topic")
	require.Len(t, stored, admin.DefaultMaxTopics+1)
	require.EqualValues(t, 5, stored[admin.OtherTopic].GetHistogram().GetSampleCount())
}

// TestMetricsObserveAllocatesNothing: once a topic has its series (and
// once the cap sends a topic to "other"), observing allocates nothing.
func TestMetricsObserveAllocatesNothing(t *testing.T) {
	m := admin.NewMetrics(admin.MetricsConfig{MaxTopics: 1, RedeliveryReasons: []string{"nak"}})
	observe := func() {
		m.Stored("trade", time.Millisecond)
		m.Delivered("trade", time.Millisecond)
		m.Acked("trade", time.Millisecond)
		m.Stored("past-the-cap", time.Millisecond)
		m.Acked("past-the-cap", time.Millisecond)
		m.Redelivered("nak")
		m.StoreWrite(64, time.Millisecond)
		m.Fsync(time.Millisecond)
	}
	observe() // the series are made
	require.Zero(t, testing.AllocsPerRun(1000, observe))
}

// BenchmarkMetricsObserve is what a message costs the metrics: a store
// ack, a first delivery and an ack, from many goroutines at once.
func BenchmarkMetricsObserve(b *testing.B) {
	m := admin.NewMetrics(admin.MetricsConfig{})
	topics := make([]string, 16)
	for i := range topics {
		topics[i] = fmt.Sprintf("topic-%d", i)
		m.Stored(topics[i], time.Millisecond)
	}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			t := topics[i%len(topics)]
			m.Stored(t, 300*time.Microsecond)
			m.Delivered(t, 400*time.Microsecond)
			m.Acked(t, 2*time.Millisecond)
			i++
		}
	})
}

// badSource's families have samples whose label names differ.
type badSource struct{ fakeSource }

func (badSource) Metrics(context.Context) ([]admin.Metric, error) {
	return []admin.Metric{{Name: "kitenats_bad", Samples: []admin.Sample{
		{Labels: []admin.Label{{Name: "topic", Value: "a"}}, Value: 1},
		{Value: 2},
	}}}, nil
}

// TestMetricsInvalidFamily: a Source family that breaks the format fails
// the scrape with a 500 that says why, instead of serving half of it.
func TestMetricsInvalidFamily(t *testing.T) {
	s, err := admin.New(admin.Config{Addr: "127.0.0.1:0"}, badSource{})
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	code, body := get(t, "http://"+s.Addr().String()+"/metrics")
	require.Equal(t, http.StatusInternalServerError, code)
	require.Contains(t, body, "kitenats_bad")
	cancel()
	require.NoError(t, <-done)
}
