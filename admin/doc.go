// Package admin serves the broker's admin HTTP endpoints on KiteQ's -pport:
// /healthz (200 "ok", or 503 with the reason when the broker cannot serve:
// one of its own NATS connections broke, or its store failed until a
// restart), /stat (the $KQ.ADMIN.STAT counters
// as JSON), /binds (every group's bindings), /metrics (Prometheus,
// through client_golang) and the dashboard (/dashboard and /api/*). It
// imports nothing of this module: it reads state through the small Source
// interface that the daemon satisfies.
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
// /dashboard (dashboard.go) is a page of plain HTML, CSS and JavaScript
// embedded from admin/dashboard/ (no framework, nothing from another site):
// it polls /api/stat and /api/tx, draws its charts on a canvas from
// successive polls (kept in the page; the server keeps no samples), lists a
// group's dead letters through /api/dlq (body previews: printable UTF-8 as
// text, else hex, capped at PreviewBytes) and replays or deletes them with
// POST /api/dlq/replay and /api/dlq/delete. Its data and actions come from
// the Dashboard interface, which the daemon's Source also implements (a
// Source without it gets 501 there). With Config.AdminSecret set (secrets
// mode) every dashboard route requires HTTP Basic auth as user "admin"
// with that secret, compared in constant time; the actions also require
// the X-Kitenats header, which a cross-site form cannot send.
//
// With Config.TLS the endpoints are served over HTTPS only.
//
// Server.Run owns the HTTP server's goroutines and returns after they
// ended.
package admin
