// Package admin serves the broker's admin HTTP endpoints on KiteQ's -pport:
// /healthz, /stat (the $KQ.API.STAT counters as JSON) and /binds (every
// group's bindings). It imports nothing of this module: it reads state
// through the small Source interface that main satisfies.
//
// Server.Run owns the HTTP server's goroutines and returns after they
// ended.
package admin
