package compat

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// Config configures a Server. Zero fields take the defaults given.
type Config struct {
	// Addr is the TCP listen address. Default 127.0.0.1:13800 (KiteQ's
	// port). Tests use 127.0.0.1:0 and read Server.Addr back.
	Addr string
	// Secrets maps a group to its secret. Nil or empty is open mode, like
	// KiteQ: any group is accepted and secretKey is ignored. Otherwise a
	// ConnMeta with an unknown group or a wrong secret is refused and the
	// connection closed.
	Secrets map[string]string
	// MaxBody bounds a published body once decompressed, in bytes. Default
	// 4 MiB, the NATS max_payload default; more is refused with 413.
	MaxBody int
	// HandshakeTimeout is how long a new connection has to complete its
	// ConnMeta before it is closed. Default 10 s.
	HandshakeTimeout time.Duration
	// WriteQueue is the capacity, in frames, of each connection's write
	// queue. Default 10000 (KiteQ's WriteChannelSize). A delivery that does
	// not fit fails (ErrQueueFull); a reply that does not fit closes the
	// connection, whose client is then not reading.
	WriteQueue int
	// WriteTimeout bounds each write to a client. Default 10 s; a client
	// that does not read for that long is disconnected.
	WriteTimeout time.Duration
	// DeliveryWindow bounds, in bytes of frames, the deliveries a
	// connection has been sent and not yet acknowledged. A connection at
	// its window reports Full, and the broker gives its group's messages to
	// other members until DeliverAcks free room; a single delivery larger
	// than the window still goes when the window is empty. Default 256 KiB:
	// about a hundred 2 KiB messages, far more than a client's round trip
	// needs, and never megabytes queued for a client that has not read them.
	DeliveryWindow int
	// StaleDelivery is how long an unacknowledged delivery counts against
	// the window. After it the broker has redelivered the message long
	// since (its ack wait, KiteQ's deliverySeconds, is seconds); a late
	// DeliverAck is still passed on. Default 30 s.
	StaleDelivery time.Duration
	// MaxSegment is the TCP maximum segment size set on the listener and so
	// on every accepted connection, in bytes; -1 leaves the kernel's.
	// Default 8192. On loopback the kernel's is about 64 KiB, and the
	// sender uses half the largest window it has seen (about 32 KiB): more
	// than the window a client with KiteQ's 16 KiB receive buffer opens, and
	// Linux then sends a queued segment only when the zero-window probe timer
	// fires, 5-15 segments a second (docs/DESIGN.md, "KiteQ connections on
	// loopback"). 8 KiB is a third of what such a client advertises, and
	// costs nothing measurable on loopback (Ethernet's 1460 cost about 5 % of
	// the KiteQ path's CPU there); on a real network the path's MSS (1448)
	// is smaller anyway.
	MaxSegment int
	// MaxConns bounds the connections served at once, and MaxConnsPerHost
	// those from one remote IP address. A connection over either is closed
	// at once, before it costs a session, and counted (Stats.Refused).
	// Defaults 10000 and 1000; -1 is no bound.
	MaxConns        int
	MaxConnsPerHost int
	// TLS, when set, makes the listener TLS only (crypto/tls over the TCP
	// listener, which keeps MaxSegment): a client does the TLS handshake
	// first, within HandshakeTimeout, then speaks KiteQ's protocol inside
	// it. The config is used for every handshake: set GetConfigForClient or
	// GetCertificate on it to change certificates without a restart; set
	// ClientAuth and ClientCAs to require client certificates. The original
	// KiteQ client has no TLS. Default nil: plain TCP.
	TLS *tls.Config
	// Now is the clock used to normalise headers (createTime, expiredTime)
	// and check expiry. Default time.Now.
	Now func() time.Time
	// Logger receives lifecycle logs (Info), connection problems (Warn)
	// and per-frame detail (Debug). Default: discard.
	Logger *slog.Logger
}

// Defaults of Config.
const (
	DefaultAddr             = "127.0.0.1:13800"
	DefaultMaxBody          = 4 << 20
	DefaultHandshakeTimeout = 10 * time.Second
	DefaultWriteQueue       = 10000
	DefaultWriteTimeout     = 10 * time.Second
	DefaultDeliveryWindow   = 256 << 10
	DefaultStaleDelivery    = 30 * time.Second
	DefaultMaxSegment       = 8 << 10
	DefaultMaxConns         = 10000
	DefaultMaxConnsPerHost  = 1000
)

func (c *Config) setDefaults() {
	if c.Addr == "" {
		c.Addr = DefaultAddr
	}
	if c.MaxBody == 0 {
		c.MaxBody = DefaultMaxBody
	}
	if c.HandshakeTimeout == 0 {
		c.HandshakeTimeout = DefaultHandshakeTimeout
	}
	if c.WriteQueue == 0 {
		c.WriteQueue = DefaultWriteQueue
	}
	if c.WriteTimeout == 0 {
		c.WriteTimeout = DefaultWriteTimeout
	}
	if c.DeliveryWindow == 0 {
		c.DeliveryWindow = DefaultDeliveryWindow
	}
	if c.StaleDelivery == 0 {
		c.StaleDelivery = DefaultStaleDelivery
	}
	if c.MaxSegment == 0 {
		c.MaxSegment = DefaultMaxSegment
	}
	if c.MaxConns == 0 {
		c.MaxConns = DefaultMaxConns
	}
	if c.MaxConnsPerHost == 0 {
		c.MaxConnsPerHost = DefaultMaxConnsPerHost
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
}

// Validate reports a configuration the server cannot run with.
func (c *Config) Validate() error {
	switch {
	case c.MaxBody < 0:
		return fmt.Errorf("compat: negative MaxBody %d", c.MaxBody)
	case c.HandshakeTimeout < 0:
		return fmt.Errorf("compat: negative HandshakeTimeout %s", c.HandshakeTimeout)
	case c.WriteQueue < 0:
		return fmt.Errorf("compat: negative WriteQueue %d", c.WriteQueue)
	case c.WriteTimeout < 0:
		return fmt.Errorf("compat: negative WriteTimeout %s", c.WriteTimeout)
	case c.DeliveryWindow < 0:
		return fmt.Errorf("compat: negative DeliveryWindow %d", c.DeliveryWindow)
	case c.StaleDelivery < 0:
		return fmt.Errorf("compat: negative StaleDelivery %s", c.StaleDelivery)
	case c.MaxConns < -1 || c.MaxConnsPerHost < -1:
		return fmt.Errorf("compat: MaxConns %d, MaxConnsPerHost %d: want a positive bound or -1 for none", c.MaxConns, c.MaxConnsPerHost)
	case c.MaxSegment < -1 || (c.MaxSegment > 0 && c.MaxSegment < minSegment):
		return fmt.Errorf("compat: MaxSegment %d: want -1 (the kernel's) or at least %d bytes", c.MaxSegment, minSegment)
	}
	return nil
}

// Server accepts KiteQ connections and runs one session per connection. It
// owns every goroutine it starts: the accept loop's watcher and, per
// connection, one reader and one writer.
type Server struct {
	cfg    Config
	broker Broker
	log    *slog.Logger
	ln     net.Listener
	quit   chan struct{}   // closed by shutdown
	txq    chan txDecision // capacity txQueue; drained by resolveLoop

	txRefused atomic.Int64 // TxAcksRefused

	wg sync.WaitGroup // Run's watcher and every session goroutine

	mu       sync.Mutex // guards everything below
	closed   bool       // no wg.Add after it is set
	running  bool
	sessions map[*session]struct{}
	perHost  map[string]int // sessions by remote IP
	lastID   uint64         // conn_id of the last session
	refused  uint64         // connections closed over MaxConns or MaxConnsPerHost
}

// Stats are a Server's connection counts.
type Stats struct {
	Connections int    // served now
	Accepted    uint64 // served since New (for metrics, read when they are scraped)
	Refused     uint64 // closed at accept, over MaxConns or MaxConnsPerHost, since New
}

// Stats returns the server's connection counts.
func (s *Server) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	return Stats{Connections: len(s.sessions), Accepted: s.lastID, Refused: s.refused}
}

// New validates cfg and opens the listener. It starts no goroutine: call
// Run. Close releases the listener if Run is never called.
func New(cfg Config, broker Broker) (*Server, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if broker == nil {
		return nil, errors.New("compat: nil Broker")
	}
	ln, err := listen(cfg.Addr, cfg.MaxSegment)
	if err != nil {
		return nil, fmt.Errorf("compat: listen %s: %w", cfg.Addr, err)
	}
	if cfg.TLS != nil {
		// The handshake runs on the session's first read, under its
		// handshake deadline, so a slow client never holds the accept loop.
		ln = tls.NewListener(ln, cfg.TLS)
	}
	return &Server{
		cfg:      cfg,
		broker:   broker,
		log:      cfg.Logger,
		ln:       ln,
		quit:     make(chan struct{}),
		txq:      make(chan txDecision, txQueue),
		sessions: make(map[*session]struct{}),
		perHost:  make(map[string]int),
	}, nil
}

// Addr returns the address the server listens on.
func (s *Server) Addr() net.Addr { return s.ln.Addr() }

// Run accepts connections until ctx ends or Close is called, then closes
// the listener and every connection and returns once every goroutine the
// server started has ended. It returns nil after such a stop, and an error
// if it was already running or closed.
func (s *Server) Run(ctx context.Context) error {
	s.mu.Lock()
	if s.closed || s.running {
		s.mu.Unlock()
		return errors.New("compat: Run on a running or closed server")
	}
	s.running = true
	s.wg.Add(2)
	s.mu.Unlock()
	go func() { defer s.wg.Done(); s.resolveLoop() }()
	go func() {
		defer s.wg.Done()
		select {
		case <-ctx.Done():
		case <-s.quit:
		}
		s.shutdown()
	}()
	s.log.Info("compat: serving KiteQ", "addr", s.ln.Addr().String())
	s.acceptLoop()
	s.shutdown()
	s.wg.Wait()
	s.log.Info("compat: stopped")
	return nil
}

// acceptLoop accepts until the listener is closed. Other accept errors
// (out of file descriptors, aborted handshakes) are transient: it logs them
// and backs off, as net/http does.
func (s *Server) acceptLoop() {
	var delay time.Duration
	for {
		conn, err := s.ln.Accept()
		if err == nil {
			delay = 0
			s.serve(conn)
			continue
		}
		if errors.Is(err, net.ErrClosed) {
			return
		}
		delay = min(max(2*delay, 5*time.Millisecond), time.Second)
		s.log.Warn("compat: accept failed; retrying", "err", err, "delay", delay)
		select {
		case <-time.After(delay):
		case <-s.quit:
			return
		}
	}
}

// serve starts the reader and writer goroutines of a new connection.
func (s *Server) serve(conn net.Conn) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		_ = conn.Close()
		return
	}
	host := remoteHost(conn)
	if over := s.overLimit(host); over != "" {
		s.refused++
		n := s.refused
		s.mu.Unlock()
		_ = conn.Close()
		if n&(n-1) == 0 { // the 1st, 2nd, 4th, 8th…: a flood does not flood the log
			s.log.Warn("compat: connection refused", "remote", conn.RemoteAddr().String(), "over", over, "refused_so_far", n)
		}
		return
	}
	s.lastID++
	ss := newSession(s, conn, s.lastID)
	s.sessions[ss] = struct{}{}
	s.perHost[host]++
	s.wg.Add(2)
	s.mu.Unlock()
	go func() {
		defer s.wg.Done()
		ss.writeLoop()
	}()
	go func() {
		defer s.wg.Done()
		ss.readLoop()
		s.mu.Lock()
		delete(s.sessions, ss)
		if s.perHost[host]--; s.perHost[host] <= 0 {
			delete(s.perHost, host)
		}
		s.mu.Unlock()
	}()
}

// overLimit names the bound a new connection from host would pass, or
// returns "". caller holds s.mu
func (s *Server) overLimit(host string) string {
	switch {
	case s.cfg.MaxConns >= 0 && len(s.sessions) >= s.cfg.MaxConns:
		return fmt.Sprintf("MaxConns %d", s.cfg.MaxConns)
	case s.cfg.MaxConnsPerHost >= 0 && s.perHost[host] >= s.cfg.MaxConnsPerHost:
		return fmt.Sprintf("MaxConnsPerHost %d", s.cfg.MaxConnsPerHost)
	}
	return ""
}

// remoteHost is the IP address a connection comes from.
func remoteHost(conn net.Conn) string {
	addr := conn.RemoteAddr().String()
	if host, _, err := net.SplitHostPort(addr); err == nil {
		return host
	}
	return addr
}

// shutdown stops accepting and closes every connection. Idempotent; it
// does not wait.
func (s *Server) shutdown() {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	s.closed = true
	close(s.quit)
	open := make([]*session, 0, len(s.sessions))
	for ss := range s.sessions {
		open = append(open, ss)
	}
	s.mu.Unlock()
	_ = s.ln.Close()
	for _, ss := range open {
		ss.close()
	}
}

// Close stops the server like the end of Run's context, and waits for
// every goroutine the server started. Idempotent; safe to call whether or
// not Run was called.
func (s *Server) Close() error {
	s.shutdown()
	s.wg.Wait()
	return nil
}
