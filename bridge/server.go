package bridge

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
)

// Errors returned by Server methods.
var (
	// ErrNotStarted is returned by methods that need a running server
	// before Start has succeeded.
	ErrNotStarted = errors.New("bridge: server not started")
	// ErrStarted is returned by a second Start.
	ErrStarted = errors.New("bridge: server already started")
	// ErrClosed is returned by every method but Close after Close, and by
	// Events when Close ends it.
	ErrClosed = errors.New("bridge: server closed")
	// ErrNotLoopback is returned by ConnectLoopback when the client
	// listener is on an address that loopback does not reach.
	ErrNotLoopback = errors.New("bridge: client listener not reachable over loopback")
)

const (
	// readyTimeout bounds Start's wait for the client listener.
	readyTimeout = 5 * time.Second
	// readyPoll is how often Start checks whether startup failed early.
	readyPoll = 50 * time.Millisecond
)

// Server is the embedded nats-server plus the bridge's in-process
// connections. Its methods are safe for concurrent use.
type Server struct {
	cfg  Config // defaults applied, valid
	log  *slog.Logger
	auth *authenticator

	mu       sync.Mutex     // guards the fields below
	srv      *server.Server // nil until Start succeeds
	sysConn  *nats.Conn     // system-account conn carrying events
	eventSub *nats.Subscription
	conns    []*nats.Conn // made by Connect; Close closes them
	closed   bool

	closeOnce sync.Once

	// eventsMu is held by the one running Events call for its whole
	// duration. Lock order: eventsMu before mu.
	eventsMu sync.Mutex
	live     map[uint64]struct{} // conns reported connected, not yet disconnected
	lost     bool                // events were lost; Events fails from now on
}

// New validates cfg and returns a stopped Server. It starts nothing.
func New(cfg Config) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.setDefaults()
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Server{
		cfg: cfg,
		log: log,
		auth: &authenticator{
			authz:    cfg.Authorizer,
			internal: newCredential(internalUser),
			system:   newCredential(systemUser),
			verify:   cfg.TLSVerifyClients,
			log:      log,
			hosts:    newHostCounts(cfg.MaxConnectionsPerHost, log),
		},
		live: make(map[uint64]struct{}),
	}, nil
}

// Start starts nats-server and returns once it accepts client connections
// (at most 5 s), with the events subscription in place, so that every client
// that connects after Start returns is reported by Events. On failure
// everything started is stopped again. Start may be called once.
func (s *Server) Start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrClosed
	}
	if s.srv != nil {
		return ErrStarted
	}
	srv, err := s.startServer()
	if err != nil {
		return err
	}
	nc, sub, err := s.subscribeEvents(srv)
	if err != nil {
		stopServer(srv)
		return err
	}
	s.srv, s.sysConn, s.eventSub = srv, nc, sub
	return nil
}

// startServer creates, starts and waits for nats-server.
func (s *Server) startServer() (*server.Server, error) {
	opts, err := s.cfg.serverOptions(s.auth)
	if err != nil {
		return nil, err
	}
	srv, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("bridge: new nats-server: %w", err)
	}
	logs := &logAdapter{log: s.log}
	srv.SetLoggerV2(logs, s.log.Enabled(context.Background(), slog.LevelDebug), false, false)
	s.auth.srv = srv
	srv.Start()
	deadline := time.Now().Add(readyTimeout)
	for !srv.ReadyForConnections(readyPoll) {
		if msg := logs.lastFatal(); msg != "" {
			stopServer(srv)
			return nil, fmt.Errorf("bridge: nats-server failed to start: %s", msg)
		}
		if time.Now().After(deadline) {
			stopServer(srv)
			return nil, fmt.Errorf("bridge: nats-server not ready within %s", readyTimeout)
		}
	}
	return srv, nil
}

func stopServer(srv *server.Server) {
	srv.Shutdown()
	srv.WaitForShutdown()
}

// Close closes the bridge's in-process connections (those returned by
// Connect included), shuts nats-server down and waits for it. It is
// idempotent and safe to call concurrently: every call returns once the
// server is down. A running Events returns ErrClosed.
func (s *Server) Close() error {
	s.closeOnce.Do(s.shutdown)
	return nil
}

func (s *Server) shutdown() {
	s.mu.Lock()
	s.closed = true
	srv, sysConn, conns := s.srv, s.sysConn, s.conns
	s.conns = nil
	s.mu.Unlock()

	for _, nc := range conns {
		nc.Close()
	}
	if sysConn != nil {
		sysConn.Close()
	}
	if srv != nil {
		stopServer(srv)
	}
}

// running returns the started, not closed nats-server.
func (s *Server) running() (*server.Server, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.closed:
		return nil, ErrClosed
	case s.srv == nil:
		return nil, ErrNotStarted
	}
	return s.srv, nil
}

// Addr returns the client listener's address, or nil before Start and after
// Close.
func (s *Server) Addr() net.Addr {
	srv, err := s.running()
	if err != nil {
		return nil
	}
	return srv.Addr()
}

// ClusterAddr returns the route listener's address, or nil without a
// cluster, before Start and after Close.
func (s *Server) ClusterAddr() net.Addr {
	srv, err := s.running()
	if err != nil {
		return nil
	}
	if addr := srv.ClusterAddr(); addr != nil {
		return addr
	}
	return nil
}

// ClientURL returns the URL NATS clients dial, with the real port
// (nats://127.0.0.1:<port>, tls://… when the listener is TLS only); an
// unspecified listen address (0.0.0.0, ::) is given as 127.0.0.1. It is ""
// before Start and after Close.
func (s *Server) ClientURL() string {
	addr, ok := s.Addr().(*net.TCPAddr)
	if !ok {
		return ""
	}
	host := addr.IP.String()
	if addr.IP.IsUnspecified() {
		host = "127.0.0.1"
	}
	scheme := "nats://"
	if s.cfg.TLS != nil {
		scheme = "tls://"
	}
	return scheme + net.JoinHostPort(host, strconv.Itoa(addr.Port))
}

// Connect opens an in-process connection (no TCP) named name, with full
// permissions in the client account; it never passes through the
// Authorizer. opts may add nats.go options (handlers, reconnect policy);
// the server, user and name options are the bridge's. The caller may close
// the connection; Close closes it in any case.
func (s *Server) Connect(name string, opts ...nats.Option) (*nats.Conn, error) {
	srv, err := s.running()
	if err != nil {
		return nil, err
	}
	return s.connect("", name, append(slices.Clone(opts), nats.InProcessServer(srv)))
}

// ConnectLoopback is Connect over a loopback TCP connection instead of an
// in-process pipe. A pipe is synchronous: every flush waits until the server
// has read it, which serialises a busy client with the server's parser.
// The kernel's socket buffers decouple the two, which matters for the
// broker's own connection, the busiest of all. It dials the client
// listener's own address when that is a loopback one (127.0.0.1,
// 127.0.0.2, ::1), and 127.0.0.1 when the listener is on an unspecified
// host (0.0.0.0, ::). On any other address it returns ErrNotLoopback: the
// reserved user is refused over the network, so use Connect.
func (s *Server) ConnectLoopback(name string, opts ...nats.Option) (*nats.Conn, error) {
	if _, err := s.running(); err != nil {
		return nil, err
	}
	ta, ok := s.Addr().(*net.TCPAddr)
	if !ok || !(ta.IP.IsLoopback() || ta.IP.IsUnspecified()) {
		return nil, fmt.Errorf("%w: connect %q: listener %v", ErrNotLoopback, name, s.Addr())
	}
	host := ta.IP.String()
	if ta.IP.IsUnspecified() {
		// Go listens on both families for an unspecified host, and
		// reports 0.0.0.0 as ::: 127.0.0.1 reaches either.
		host = "127.0.0.1"
	}
	url := "nats://" + net.JoinHostPort(host, strconv.Itoa(ta.Port))
	opts = slices.Clone(opts)
	if s.cfg.TLS != nil {
		opts = append(opts, nats.Secure(loopbackTLS()))
	}
	return s.connect(url, name, opts)
}

// loopbackTLS is ConnectLoopback's client TLS configuration when the
// listener is TLS only. It does not verify the server's certificate: the
// connection goes to this process's own listener over loopback, a port
// this process holds, and the certificate may name no loopback address (or
// be replaced by a reload at any moment). It presents no client
// certificate: the reserved user is admitted over loopback only, with a
// password generated at start (TLSVerifyClients says why TLS must not
// require one).
func loopbackTLS() *tls.Config {
	return &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS12}
}

func (s *Server) connect(url, name string, opts []nats.Option) (*nats.Conn, error) {
	all := append(opts,
		nats.UserInfo(s.auth.internal.user, s.auth.internal.pass),
		nats.Name(name),
	)
	nc, err := nats.Connect(url, all...)
	if err != nil {
		if _, rerr := s.running(); rerr != nil {
			return nil, rerr // closed meanwhile
		}
		return nil, fmt.Errorf("bridge: connect %q: %w", name, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		nc.Close()
		return nil, ErrClosed
	}
	s.conns = slices.DeleteFunc(s.conns, (*nats.Conn).IsClosed)
	s.conns = append(s.conns, nc)
	return nc, nil
}

// ConnID returns the server-side client id of nc, the id that Holders and
// Events report for it. nc must be connected to this server.
func (s *Server) ConnID(nc *nats.Conn) (uint64, error) {
	if nc == nil {
		return 0, errors.New("bridge: conn id: nil conn")
	}
	id, err := nc.GetClientID()
	if err != nil {
		return 0, fmt.Errorf("bridge: conn id: %w", err)
	}
	return id, nil
}

// Holders returns, in increasing order, the ids of the external client
// connections of this server that hold a plain (non-queue) subscription
// whose subject is exactly subject (wildcards compared as text, not
// matched). Connections of other cluster members and the bridge's own
// connections are never included. The answer is a snapshot: it costs a scan
// of the client account's subscriptions, so call it on control paths, not
// per message.
func (s *Server) Holders(subject string) ([]uint64, error) {
	srv, err := s.running()
	if err != nil {
		return nil, err
	}
	if subject == "" {
		return nil, errors.New("bridge: holders: empty subject")
	}
	opts := &server.SubszOptions{
		Subscriptions: true,
		Account:       srv.GlobalAccount().Name,
		Limit:         math.MaxInt32,
	}
	if isLiteral(subject) {
		opts.Test = subject
	}
	sz, err := srv.Subsz(opts)
	if err != nil {
		return nil, fmt.Errorf("bridge: holders %q: %w", subject, err)
	}
	internal := s.internalIDs()
	var ids []uint64
	for _, sd := range sz.Subs {
		if sd.Subject != subject || sd.Queue != "" || internal[sd.Cid] {
			continue
		}
		ids = append(ids, sd.Cid)
	}
	slices.Sort(ids)
	return slices.Compact(ids), nil
}

// internalIDs returns the current client ids of the conns made by Connect
// (an in-process conn gets a new id when it reconnects).
func (s *Server) internalIDs() map[uint64]bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	ids := make(map[uint64]bool, len(s.conns))
	for _, nc := range s.conns {
		if id, err := nc.GetClientID(); err == nil {
			ids[id] = true
		}
	}
	return ids
}

// isLiteral reports whether subject has no wildcard token.
func isLiteral(subject string) bool {
	for tok := range strings.SplitSeq(subject, ".") {
		if tok == "*" || tok == ">" || tok == "" {
			return false
		}
	}
	return true
}

// Interested reports whether any client of the client account subscribes
// to a subject matching subject (wildcard subscriptions included). It is
// cheap (the server's subject cache), so the broker asks it before
// publishing something nobody may want, such as a tap.
func (s *Server) Interested(subject string) bool {
	srv, err := s.running()
	if err != nil {
		return false
	}
	return srv.GlobalAccount().SubscriptionInterest(subject)
}
