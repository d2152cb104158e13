package natsproto

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/kitenats/kitenats/semantics"
	"github.com/kitenats/kitenats/store"
)

// Msg is a NATS message as the adapter sees it.
type Msg struct {
	Subject string
	Reply   string
	Header  map[string][]string
	// RawHeader, on a message the adapter publishes, is its header block
	// already encoded (see EncodeHeader); it takes the place of Header.
	RawHeader []byte
	Data      []byte
}

// Transport is the broker's own NATS connections (the daemon's
// natsTransport, over bridge's connections and nats.go).
type Transport interface {
	// Publish sends m; it must not block for long (a buffered send). It
	// copies what it sends before it returns and keeps neither m nor its
	// slices: the adapter reuses them for the next message.
	Publish(m *Msg) error
	// Subscribe calls fn for every message on subject (with queue group
	// queue when not empty), one at a time, until stop is called. fn owns
	// the message it is given: it may keep it and its slices.
	Subscribe(subject, queue string, fn func(*Msg)) (stop func() error, err error)
	// Flush returns once the server has processed everything sent so far
	// (subscriptions included).
	Flush() error
	// Sync returns once every message the server had routed to the
	// adapter's subscriptions before Sync was called has been handled: its
	// handler returned (or it was dropped over the pending limits). It
	// returns early with an error when ctx ends or the connection fails.
	Sync(ctx context.Context) error
	// Dropped counts the messages the server dropped before the adapter's
	// subscriptions took them.
	Dropped() int64
}

// Locator answers questions about the NATS server's subscriptions
// (satisfied by bridge.Server).
type Locator interface {
	// Holders returns the client connections that hold a plain
	// subscription on exactly subject.
	Holders(subject string) ([]uint64, error)
	// Interested reports whether any client subscribes to a subject
	// matching subject.
	Interested(subject string) bool
}

// Server is the NATS adapter of one broker: it takes publishes, acks and
// $KQ.API and $KQ.ADMIN calls on the broker's NATS connection and turns them into calls
// on the broker, and turns deliveries and results back into NATS messages.
// It is the broker's semantics.Intake (the broker's Run starts and stops
// it) and its semantics.Tapper.
type Server struct {
	tr  Transport
	loc Locator
	cfg Config

	// Set by Start, before the subscriptions that use them exist.
	b        *semantics.Broker
	id       string // the broker's token in ack subjects
	maxBytes int
	now      func() time.Time
	tx       bool // two-phase commit is on
	log      *slog.Logger

	mu      sync.Mutex
	stopPub func() error // nil once stopped
	stops   []func() error
	pool    *apiPool // serves API calls between Start and Stop; nil otherwise

	groupInboxes atomic.Bool // RequireGroupInboxes

	tapMu   sync.Mutex
	tapSubs map[tapKey]string // tap subjects built so far (at most maxTapSubjects)
}

// tapKey is a (topic, messageType) pair whose tap subject is cached.
type tapKey struct{ topic, messageType string }

// maxTapSubjects bounds the tap subject cache; past it subjects are built
// per message, as before there was a cache.
const maxTapSubjects = 4096

var (
	_ semantics.Intake = (*Server)(nil)
	_ semantics.Tapper = (*Server)(nil)
)

// New builds the adapter over the broker's connection tr and the server's
// subscription lookup loc, serving API calls as cfg says. It starts
// nothing: pass it to the broker as its Config.Intake and Config.Tap; the
// broker's Run starts it.
func New(tr Transport, loc Locator, cfg Config) *Server {
	cfg.setDefaults()
	return &Server{tr: tr, loc: loc, cfg: cfg, log: slog.New(slog.DiscardHandler)}
}

// Start takes acks, API calls and publishes for b from now on: it
// subscribes and flushes, so that what clients send after Start returned
// reaches b.
func (s *Server) Start(b *semantics.Broker) (err error) {
	s.attach(b)
	// The API pool's workers run from before the API subscriptions exist
	// until after they ended (Stop).
	pool := newAPIPool(s, s.cfg)
	s.mu.Lock()
	s.pool = pool
	s.mu.Unlock()
	var stops []func() error
	defer func() {
		if err != nil {
			for i := len(stops) - 1; i >= 0; i-- {
				_ = stops[i]()
			}
			s.stopPool()
		}
	}()
	for _, sub := range []struct {
		what, subject, queue string
		fn                   func(*Msg)
	}{
		{"acks", "$KQ.ACK.*." + s.id + ".*.*", "", s.handleAck},
		{"api", APIPrefix + ">", "kq", s.handleAPI},
		{"admin api", AdminPrefix + ">", "kq", s.handleAdmin},
		{"publishes", SubjectPrefix + ".>", "kq", s.handlePublish},
	} {
		stop, err := s.tr.Subscribe(sub.subject, sub.queue, sub.fn)
		if err != nil {
			return fmt.Errorf("natsproto: subscribe %s: %w", sub.what, err)
		}
		stops = append(stops, stop)
	}
	if err := s.tr.Flush(); err != nil {
		return fmt.Errorf("natsproto: flush subscriptions: %w", err)
	}
	s.mu.Lock()
	s.stopPub, s.stops = stops[3], []func() error{stops[2], stops[1], stops[0]}
	s.mu.Unlock()
	return nil
}

// stopPool stops the API pool, if it runs: what waits in it gets 503.
func (s *Server) stopPool() {
	s.mu.Lock()
	pool := s.pool
	s.pool = nil
	s.mu.Unlock()
	if pool != nil {
		pool.stop()
	}
}

// attach reads what the handlers need from b (Start; the tests' harness,
// which calls the handlers itself).
func (s *Server) attach(b *semantics.Broker) {
	cfg := b.Config()
	s.b, s.id, s.maxBytes, s.now = b, cfg.BrokerID, cfg.MaxMessageBytes, cfg.Now
	s.tx = cfg.Transactions != nil
	s.log = cfg.Logger
}

// StopPublishes stops taking publishes; acks and API calls still come in.
func (s *Server) StopPublishes() {
	s.mu.Lock()
	stop := s.stopPub
	s.stopPub = nil
	s.mu.Unlock()
	if stop != nil {
		_ = stop()
	}
}

// Stop stops taking anything.
func (s *Server) Stop() {
	s.StopPublishes()
	s.mu.Lock()
	stops := s.stops
	s.stops = nil
	s.mu.Unlock()
	for _, stop := range stops {
		_ = stop()
	}
	s.stopPool()
}

// Sync returns once what the server had routed to the adapter before the
// call has been handled (Transport.Sync), API calls included: a BIND the
// API pool had taken is answered first, so that a connection's close
// comes after the consumers that connection asked for.
func (s *Server) Sync(ctx context.Context) error {
	if err := s.tr.Sync(ctx); err != nil {
		return err
	}
	s.mu.Lock()
	pool := s.pool
	s.mu.Unlock()
	if pool == nil {
		return nil
	}
	return pool.barrier(ctx)
}

// Dropped counts what the server dropped before the adapter took it.
func (s *Server) Dropped() int64 { return s.tr.Dropped() }

// Tap republishes an accepted, committed message on $KQ.TAP for
// dashboards: at most once, affecting nothing.
func (s *Server) Tap(m *store.Message) {
	subject := s.tapSubject(m.Topic, m.MessageType)
	if s.loc != nil && !s.loc.Interested(subject) {
		return // nobody taps: skip building and sending the copy
	}
	_ = s.tr.Publish(&Msg{
		Subject: subject,
		Header:  DeliveryHeaders(m, 0),
		Data:    m.Body,
	})
}

// tapSubject is tapSubject(topic, messageType), built once per pair: Tap
// runs for every accepted message, and nobody tapping is the common case.
func (s *Server) tapSubject(topic, messageType string) string {
	k := tapKey{topic, messageType}
	s.tapMu.Lock()
	defer s.tapMu.Unlock()
	if subject, ok := s.tapSubs[k]; ok {
		return subject
	}
	subject := tapSubject(topic, messageType)
	if s.tapSubs == nil {
		s.tapSubs = make(map[tapKey]string)
	}
	if len(s.tapSubs) < maxTapSubjects {
		s.tapSubs[k] = subject
	}
	return subject
}

// reply publishes body on subject.
func (s *Server) reply(subject string, body []byte) {
	o := getOut()
	o.msg.Subject, o.msg.Data = subject, body
	if err := s.tr.Publish(&o.msg); err != nil {
		s.log.Debug("natsproto: reply failed", "subject", subject, "err", err)
	}
	o.put()
}

// publishOut publishes o.buf on subject and puts o back.
func (s *Server) publishOut(o *out, subject string) {
	o.msg.Subject, o.msg.Data = subject, o.buf
	if err := s.tr.Publish(&o.msg); err != nil {
		s.log.Debug("natsproto: reply failed", "subject", subject, "err", err)
	}
	o.put()
}

// out is the scratch space of one outbound message: Transport.Publish
// copies what it sends, so deliveries and replies reuse the message, its
// reply subject and its buffer instead of allocating them per message.
type out struct {
	msg   Msg
	reply []byte
	buf   []byte // header block or body
}

var outs = sync.Pool{New: func() any { return &out{reply: make([]byte, 0, 128), buf: make([]byte, 0, 512)} }}

func getOut() *out { return outs.Get().(*out) }

// put returns o to the pool, unless a message made its buffer too large to
// keep.
func (o *out) put() {
	o.msg = Msg{}
	if cap(o.buf) > 64<<10 || cap(o.reply) > 4<<10 {
		return
	}
	o.reply, o.buf = o.reply[:0], o.buf[:0]
	outs.Put(o)
}

// bytesString is b as a string without a copy; b must not change while the
// string is in use (here: until Transport.Publish returned).
func bytesString(b []byte) string { return unsafe.String(unsafe.SliceData(b), len(b)) }

// answer replies to an ack or API request that has a reply subject: an
// empty body for success, an error body otherwise.
func (s *Server) answer(reply string, err error) {
	if reply == "" {
		return
	}
	if err != nil {
		s.reply(reply, errorBody(err))
		return
	}
	s.reply(reply, nil)
}

// endpoint delivers to a NATS consumer's deliver subject, with the ack
// subject as reply: $KQ.ACK.<group>.<broker>.<consumer>.<delivery>.
type endpoint struct {
	s       *Server
	subject string
}

func (e endpoint) Deliver(d *semantics.Delivery) error {
	o := getOut()
	defer o.put()
	o.reply = append(o.reply, "$KQ.ACK."...)
	o.reply = appendToken(o.reply, d.Group)
	o.reply = append(append(append(append(append(append(o.reply, '.'), e.s.id...), '.'), d.Consumer...), '.'), d.ID...)
	o.buf = appendDeliveryHeader(o.buf, d.Message, d.Attempt)
	o.msg = Msg{Subject: e.subject, Reply: bytesString(o.reply), RawHeader: o.buf, Data: d.Message.Body}
	return e.s.tr.Publish(&o.msg)
}
