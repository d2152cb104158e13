// Package admin serves the broker's admin HTTP endpoints on KiteQ's -pport:
// /healthz (200 "ok", or 503 with the reason when the broker cannot serve:
// one of its own NATS connections broke, or its store failed until a
// restart), /stat (the $KQ.ADMIN.STAT counters
// as JSON), /binds (every group's bindings) and /metrics (the same counters
// in Prometheus's text format). It imports nothing of this module: it reads
// state through the small Source interface that the daemon satisfies.
//
// Server.Run owns the HTTP server's goroutines and returns after they
// ended.
package admin
