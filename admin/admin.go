package admin

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"
)

// Source is what the endpoints read. Stat and Bindings return JSON documents
// the source encodes (admin, a leaf, does not know the broker's types); the
// endpoints serve them indented.
type Source interface {
	// Stat returns the broker's counters, as $KQ.ADMIN.STAT's reply.
	Stat(ctx context.Context) (json.RawMessage, error)
	// Bindings returns every group's bindings, by group.
	Bindings() (json.RawMessage, error)
	// Health returns nil while the broker can serve, else why it cannot
	// (a broken connection of its own to the NATS server, say).
	Health() error
	// Metrics returns the broker's counters and gauges read from its
	// state, for /metrics (beside Config.Metrics's registry).
	Metrics(ctx context.Context) ([]Metric, error)
}

// Config configures the admin server.
type Config struct {
	// Addr is the listen address, e.g. 127.0.0.1:13801.
	Addr string
	// Metrics is the registry /metrics serves besides the Source's
	// families. nil: a NewMetrics of its own (nobody observes into it:
	// only the Go runtime and process collectors).
	Metrics *Metrics
	// TLS, when set, serves HTTPS only, with this configuration for every
	// handshake (set GetConfigForClient or GetCertificate on it to change
	// certificates without a restart). Default nil: plain HTTP.
	TLS    *tls.Config
	Logger *slog.Logger // nil: discard
	// AdminSecret, when set (secrets mode), is required of the dashboard
	// (HTTP Basic auth, user "admin"): its page, data endpoints and
	// actions. Empty: the dashboard is open like the other endpoints.
	AdminSecret string
}

// Server is the admin HTTP server.
type Server struct {
	ln  net.Listener
	srv *http.Server
	log *slog.Logger
}

// New listens on cfg.Addr; it serves nothing until Run.
func New(cfg Config, src Source) (*Server, error) {
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("admin: listen %s: %w", cfg.Addr, err)
	}
	if cfg.TLS != nil {
		ln = tls.NewListener(ln, cfg.TLS)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		if err := src.Health(); err != nil {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
			return
		}
		_, _ = w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /stat", func(w http.ResponseWriter, r *http.Request) {
		st, err := src.Stat(r.Context())
		if err != nil {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
			return
		}
		writeJSON(w, st)
	})
	mux.HandleFunc("GET /binds", func(w http.ResponseWriter, _ *http.Request) {
		bs, err := src.Bindings()
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		writeJSON(w, bs)
	})
	metrics := cfg.Metrics
	if metrics == nil {
		metrics = NewMetrics(MetricsConfig{})
	}
	mux.Handle("GET /metrics", metrics.handler(src, log.Debug))
	registerDashboard(mux, cfg, src)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	if cfg.TLS != nil {
		// A handshake that fails (a plain HTTP client, an unknown CA) is the
		// client's problem: net/http logs it, at Debug here.
		srv.ErrorLog = slog.NewLogLogger(log.Handler(), slog.LevelDebug)
	}
	return &Server{ln: ln, log: log, srv: srv}, nil
}

// Close releases the listener. It is for a server whose Run was never
// called (Run closes it when its context ends); idempotent.
func (s *Server) Close() error {
	if err := s.ln.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
		return fmt.Errorf("admin: close: %w", err)
	}
	return nil
}

// Addr is the address the server listens on.
func (s *Server) Addr() net.Addr { return s.ln.Addr() }

// Run serves until ctx ends, then shuts the server down (waiting up to 5 s
// for requests in progress).
func (s *Server) Run(ctx context.Context) error {
	errc := make(chan error, 1)
	go func() { errc <- s.srv.Serve(s.ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("admin: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := s.srv.Shutdown(sctx)
	if serr := <-errc; !errors.Is(serr, http.ErrServerClosed) && serr != nil {
		return fmt.Errorf("admin: %w", serr)
	}
	return err
}

// writeJSON serves doc indented by two spaces, with a final newline. The
// encoder compacts doc first (HTML-escaping as json.Marshal does), so a
// document from json.Marshal(v) is served as encoding v itself would be.
func writeJSON(w http.ResponseWriter, doc json.RawMessage) {
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(doc)
}
