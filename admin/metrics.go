package admin

import (
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Metric is one metric family the Source reads from the broker's state at
// scrape time (the $KQ.API.STAT counters and gauges): /metrics turns it
// into constant Prometheus metrics, so nothing is counted twice.
type Metric struct {
	Name    string // [a-zA-Z_:][a-zA-Z0-9_:]*
	Help    string
	Counter bool // a counter (only goes up); else a gauge
	Samples []Sample
}

// Sample is one value of a Metric. Every Sample of a Metric has the same
// label names, in the same order.
type Sample struct {
	Labels []Label
	Value  float64
}

// Label is one label of a Sample. Name is [a-zA-Z_][a-zA-Z0-9_]*; Value is
// any UTF-8 string.
type Label struct{ Name, Value string }

// DefaultMaxTopics is MetricsConfig.MaxTopics's default.
const DefaultMaxTopics = 100

// OtherTopic is the topic label of the per-topic histograms for every
// topic past MetricsConfig.MaxTopics.
const OtherTopic = "other"

// MetricsConfig configures Metrics.
type MetricsConfig struct {
	// MaxTopics caps the distinct values of the topic label of the
	// per-topic histograms, so that publishers, who choose topics, cannot
	// grow the series without bound: the first MaxTopics topics observed
	// get their own series, every later one is observed under
	// topic="other". Default DefaultMaxTopics.
	MaxTopics int
	// RedeliveryReasons are the reasons kitenats_redeliveries_total shows
	// from zero (semantics.RedeliveryReasons); another reason gets its
	// series when it is first counted.
	RedeliveryReasons []string
}

// Latency buckets, in seconds: publish→store ack, publish→first delivery
// and delivery→ack span from a memory store's tens of microseconds to a
// consumer's minutes.
var latencyBuckets = []float64{
	0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
	0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300,
}

// storeBuckets, in seconds, time a store write and an fsync.
var storeBuckets = []float64{
	0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
	0.05, 0.1, 0.25, 0.5, 1, 2.5, 5,
}

// batchBuckets count the saves plus updates of one group-commit write
// (store.BatcherConfig.MaxBatch is 2048 by default).
var batchBuckets = prometheus.ExponentialBuckets(1, 2, 12) // 1 … 2048

// Metrics is the broker's Prometheus registry (its own, not the global
// default, so that a process may run several brokers): the histograms
// and counters the broker's packages report through their observer hooks,
// which Metrics implements (semantics.Observer, store.BatcherConfig.Observe
// through StoreWrite, rocksdb.Config.ObserveSync through Fsync), and the
// Go runtime and process collectors. The Source's families join them at
// scrape time.
//
// The observing methods are safe for concurrent use and allocate nothing
// once a topic has its series: each topic's histograms are resolved once
// and kept in a map that is read without a lock.
type Metrics struct {
	reg       *prometheus.Registry
	maxTopics int

	publishStore   *prometheus.HistogramVec
	publishDeliver *prometheus.HistogramVec
	deliverAck     *prometheus.HistogramVec
	redeliveries   *prometheus.CounterVec
	batchSize      prometheus.Histogram
	writeSeconds   prometheus.Histogram
	fsyncSeconds   prometheus.Histogram

	// topics maps a topic to its series; it is replaced, never changed, so
	// readers load it without a lock. other is the series of the topics
	// past the cap, made when the first such topic is observed. mu
	// serialises the writers of both.
	topics  atomic.Pointer[map[string]*topicSeries]
	other   atomic.Pointer[topicSeries]
	mu      sync.Mutex
	reasons map[string]prometheus.Counter // never changed after NewMetrics
}

// topicSeries is one topic's histograms, resolved once.
type topicSeries struct {
	store, deliver, ack prometheus.Observer
}

// NewMetrics builds the registry and registers every collector on it.
func NewMetrics(cfg MetricsConfig) *Metrics {
	if cfg.MaxTopics <= 0 {
		cfg.MaxTopics = DefaultMaxTopics
	}
	m := &Metrics{
		reg:       prometheus.NewRegistry(),
		maxTopics: cfg.MaxTopics,
		publishStore: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "kitenats_publish_to_store_ack_seconds",
			Help:    "Time from a publish reaching the broker to its store ack (the producer's ack: validation, group commit and sync), by topic.",
			Buckets: latencyBuckets,
		}, []string{"topic"}),
		publishDeliver: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "kitenats_publish_to_first_delivery_seconds",
			Help:    "Time from a publish (a transactional message: its commit) to its first delivery to each group, by topic; a message read back from the store is timed from its creation (second precision).",
			Buckets: latencyBuckets,
		}, []string{"topic"}),
		deliverAck: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "kitenats_delivery_to_ack_seconds",
			Help:    "Time from a delivery being sent to its +ACK, by topic.",
			Buckets: latencyBuckets,
		}, []string{"topic"}),
		redeliveries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kitenats_redeliveries_total",
			Help: "Delivery attempts that ended without an ack and will be offered to the group again, by reason: nak, timeout, consumer_gone, send_failed.",
		}, []string{"reason"}),
		batchSize: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "kitenats_store_batch_size",
			Help:    "Saves plus updates written by one group-commit store write.",
			Buckets: batchBuckets,
		}),
		writeSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "kitenats_store_write_seconds",
			Help:    "Duration of one group-commit store write, its sync included.",
			Buckets: storeBuckets,
		}),
		fsyncSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "kitenats_store_fsync_seconds",
			Help:    "Duration of one fsync of the RocksDB store's journal (one per write with durability=sync, one per sync interval with async; none with other stores).",
			Buckets: storeBuckets,
		}),
		reasons: make(map[string]prometheus.Counter, len(cfg.RedeliveryReasons)),
	}
	empty := map[string]*topicSeries{}
	m.topics.Store(&empty)
	for _, r := range cfg.RedeliveryReasons {
		m.reasons[r] = m.redeliveries.WithLabelValues(r)
	}
	m.reg.MustRegister(
		m.publishStore, m.publishDeliver, m.deliverAck, m.redeliveries,
		m.batchSize, m.writeSeconds, m.fsyncSeconds,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "kitenats_metric_topics",
			Help: "Topics with their own series in the per-topic histograms; past the cap (MaxTopics) the rest are under topic=\"other\".",
		}, func() float64 { return float64(len(*m.topics.Load())) }),
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	return m
}

// Registry returns the registry, to gather from or to register more
// collectors on.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

func (m *Metrics) newSeries(topic string) *topicSeries {
	return &topicSeries{
		store:   m.publishStore.WithLabelValues(topic),
		deliver: m.publishDeliver.WithLabelValues(topic),
		ack:     m.deliverAck.WithLabelValues(topic),
	}
}

// series returns topic's series: its own while fewer than MaxTopics topics
// have one, else the "other" series.
func (m *Metrics) series(topic string) *topicSeries {
	if s, ok := (*m.topics.Load())[topic]; ok {
		return s
	}
	return m.addTopic(topic)
}

func (m *Metrics) addTopic(topic string) *topicSeries {
	if o := m.other.Load(); o != nil {
		return o // the cap is reached for good: no lock
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	cur := *m.topics.Load()
	if s, ok := cur[topic]; ok {
		return s
	}
	if len(cur) >= m.maxTopics {
		o := m.other.Load()
		if o == nil {
			o = m.newSeries(OtherTopic)
			m.other.Store(o)
		}
		return o
	}
	next := make(map[string]*topicSeries, len(cur)+1)
	for t, s := range cur {
		next[t] = s
	}
	s := m.newSeries(topic)
	next[topic] = s
	m.topics.Store(&next)
	return s
}

// Stored observes a publish's store ack, d after it reached the broker
// (semantics.Observer).
func (m *Metrics) Stored(topic string, d time.Duration) {
	m.series(topic).store.Observe(d.Seconds())
}

// Delivered observes the first delivery of a message to a group, d after
// its publish (semantics.Observer).
func (m *Metrics) Delivered(topic string, d time.Duration) {
	m.series(topic).deliver.Observe(d.Seconds())
}

// Acked observes a delivery's ack, d after it was sent
// (semantics.Observer).
func (m *Metrics) Acked(topic string, d time.Duration) {
	m.series(topic).ack.Observe(d.Seconds())
}

// Redelivered counts a delivery attempt that will be tried again
// (semantics.Observer).
func (m *Metrics) Redelivered(reason string) {
	if c, ok := m.reasons[reason]; ok {
		c.Inc()
		return
	}
	m.redeliveries.WithLabelValues(reason).Inc()
}

// StoreWrite observes one group-commit write of batch saves plus updates
// that took d (store.BatcherConfig.Observe).
func (m *Metrics) StoreWrite(batch int, d time.Duration) {
	m.batchSize.Observe(float64(batch))
	m.writeSeconds.Observe(d.Seconds())
}

// Fsync observes one fsync of the store's journal that took d
// (rocksdb.Config.ObserveSync).
func (m *Metrics) Fsync(d time.Duration) {
	m.fsyncSeconds.Observe(d.Seconds())
}

// handler serves /metrics: the Source's families, read now (a Source that
// fails makes it answer 503, as /stat does), and the registry's.
func (m *Metrics) handler(src Source, log func(msg string, args ...any)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		ms, err := src.Metrics(r.Context())
		if err != nil {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
			return
		}
		scraped := prometheus.NewRegistry()
		if err := scraped.Register(constCollector(ms)); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		promhttp.HandlerFor(prometheus.Gatherers{m.reg, scraped}, promhttp.HandlerOpts{
			ErrorLog:      promLogger(log),
			ErrorHandling: promhttp.HTTPErrorOnError,
		}).ServeHTTP(w, r)
	}
}

// constCollector collects the Source's families as constant metrics. It
// describes nothing: an unchecked collector, as its families vary.
type constCollector []Metric

func (constCollector) Describe(chan<- *prometheus.Desc) {}

func (c constCollector) Collect(ch chan<- prometheus.Metric) {
	for _, f := range c {
		typ := prometheus.GaugeValue
		if f.Counter {
			typ = prometheus.CounterValue
		}
		var names []string
		if len(f.Samples) > 0 {
			for _, l := range f.Samples[0].Labels {
				names = append(names, l.Name)
			}
		}
		desc := prometheus.NewDesc(f.Name, f.Help, names, nil)
		for _, s := range f.Samples {
			values := make([]string, len(s.Labels))
			for i, l := range s.Labels {
				values[i] = l.Value
			}
			m, err := prometheus.NewConstMetric(desc, typ, s.Value, values...)
			if err != nil {
				m = prometheus.NewInvalidMetric(desc, err) // the scrape answers 500, saying why
			}
			ch <- m
		}
	}
}

// promLogger adapts a logging function to promhttp's Logger.
type promLogger func(msg string, args ...any)

func (l promLogger) Println(v ...any) { l("admin: /metrics", "err", v) }
