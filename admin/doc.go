// Package admin serves the broker's admin HTTP endpoints on KiteQ's -pport:
// /healthz (200 "ok", or 503 with the reason when the broker cannot serve:
// one of its own NATS connections broke, or its store failed until a
// restart), /stat (the $KQ.ADMIN.STAT counters
// as JSON), /binds (every group's bindings) and /metrics (Prometheus,
// through client_golang). It imports nothing of this module: it reads
// state through the small Source interface that the daemon satisfies.
//
// /metrics serves a Metrics registry, the daemon's own: latency histograms
// by topic (capped: topics past MetricsConfig.MaxTopics are under
// topic="other"), redeliveries by reason, the store's batch size, write and
// fsync latency, and the Go runtime and process collectors. The broker's
// packages feed it through their own observer hooks (semantics.Observer,
// store.BatcherConfig.Observe, rocksdb.Config.ObserveSync), which Metrics
// satisfies without either side importing the other; its observing
// methods allocate nothing. Beside it, the Source's families (the
// $KQ.API.STAT counters and gauges, the connections) are read at each
// scrape and served as constant metrics: a Source that fails makes the
// scrape answer 503, as /stat does. admin is the only package that imports
// client_golang.
//
// With Config.TLS the endpoints are served over HTTPS only.
//
// Server.Run owns the HTTP server's goroutines and returns after they
// ended.
package admin
