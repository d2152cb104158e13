package semantics

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	mrand "math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"

	"github.com/kitenats/kitenats/kqerr"
	"github.com/kitenats/kitenats/registry"
	"github.com/kitenats/kitenats/store"
)

// Intake is a protocol adapter that feeds the broker from connections
// the broker does not own (natsproto.Server: NATS publishes, acks and API
// calls over the broker's own NATS connection). Run starts it, and stops it
// in two steps so that acks keep coming in while deliveries drain.
type Intake interface {
	// Start begins feeding b (its handlers call b's exported methods) and
	// returns once what is sent from now on is taken.
	Start(b *Broker) error
	// StopPublishes stops taking publishes: Run calls it when shutdown
	// begins, before it waits for the deliveries in flight.
	StopPublishes()
	// Stop stops taking anything; Run calls it last.
	Stop()
	// Sync returns once everything the intake had received before the call
	// has been handled (or dropped over its limits). It orders a
	// connection's close behind the acks that connection sent before
	// closing (ConnClosed). It returns early with an error when ctx ends
	// or the intake fails.
	Sync(ctx context.Context) error
	// Dropped counts what the intake lost before the broker took it
	// (Stat.IntakeDropped).
	Dropped() int64
}

// Tapper is told of every accepted, committed message (natsproto.Server
// republishes it for dashboards). Tap must not block and must not call the
// Broker; it is called on the goroutine that accepted the message.
type Tapper interface {
	Tap(m *store.Message)
}

// BindingKeeper makes the bindings declared by BIND durable: in the store
// while no registry is configured, else in the registry. A static registry
// returns registry.ErrStatic.
type BindingKeeper interface {
	KeepBindings(ctx context.Context, group string, bs []registry.Binding) error
}

// Config configures a Broker. Zero fields take the defaults given.
type Config struct {
	// BrokerID names this broker (in STAT, and in the NATS adapter's ack
	// subjects, hence one token). Default: random.
	BrokerID string
	// Topics served; empty serves every topic (the standalone default).
	Topics []string
	// AckWait is how long a consumer has to acknowledge a delivery, unless
	// its BIND says otherwise. Default 5 s (KiteQ's deliverySeconds).
	AckWait time.Duration
	// LeaseMargin is added to the ack wait in the stored next-attempt time
	// of an in-flight delivery, so that after a crash it is redelivered
	// once the lease ends. Default 2 s.
	LeaseMargin time.Duration
	// MaxInflight is the default number of unacknowledged deliveries per
	// consumer. Default 1000.
	MaxInflight int
	// Windows is the redelivery schedule. Default KiteQWindows.
	Windows []Window
	// AcceptRate is the broker-wide limit of accepted publishes per second
	// (burst half of it), KiteQ's recievePermitsPerSecond. 0 = off.
	AcceptRate int
	// MaxMessageBytes bounds headers plus body. Default 4 MiB.
	MaxMessageBytes int
	// TickInterval is the period of the recover loop. Default 100 ms.
	TickInterval time.Duration
	// RecoverPage is the most messages read from the store per group and
	// pass. Default 512.
	RecoverPage int
	// DrainTimeout bounds how long shutdown waits for in-flight
	// deliveries. Default 5 s.
	DrainTimeout time.Duration
	// Transactions enables two-phase commit (prepares and their
	// resolution). nil: a prepare is answered 501.
	Transactions Transactions
	// Intake is the adapter Run starts and stops with the broker, and
	// whose Sync orders connection closes (nil: none; adapters such as
	// compat then drive the broker on their own goroutines).
	Intake Intake
	// Tap is told of accepted messages (nil: nobody).
	Tap Tapper
	// Observer is told of latencies and redeliveries, for metrics (nil:
	// nothing is observed, at no cost).
	Observer Observer
	// Cluster, when set, gives the cluster section of STAT (this broker's
	// name, its route and its peers), which the broker does not know: the
	// daemon fills it from the NATS routes. Default nil: no section.
	Cluster func() *ClusterStat
	// Now is the clock of every timing decision. Default time.Now.
	Now func() time.Time
	// Seed seeds the random choice of consumers and the warmup draws.
	// Default: random.
	Seed uint64
	// Logger receives lifecycle logs. Default: discard.
	Logger *slog.Logger
	// Limits bound bindings and consumers per group, topic and connection.
	Limits Limits
}

// flyAttempts is the most delivery attempts of a fly message per group.
const flyAttempts = 3

func (c *Config) setDefaults() {
	if c.BrokerID == "" {
		c.BrokerID = randomToken(6)
	}
	if c.AckWait <= 0 {
		c.AckWait = 5 * time.Second
	}
	if c.LeaseMargin <= 0 {
		c.LeaseMargin = 2 * time.Second
	}
	if c.MaxInflight <= 0 {
		c.MaxInflight = 1000
	}
	if c.Windows == nil {
		c.Windows = KiteQWindows
	}
	if c.MaxMessageBytes <= 0 {
		c.MaxMessageBytes = 4 << 20
	}
	if c.TickInterval <= 0 {
		c.TickInterval = 100 * time.Millisecond
	}
	if c.RecoverPage <= 0 {
		c.RecoverPage = 512
	}
	if c.DrainTimeout <= 0 {
		c.DrainTimeout = 5 * time.Second
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Seed == 0 {
		var b [8]byte
		_, _ = rand.Read(b[:])
		for _, x := range b {
			c.Seed = c.Seed<<8 | uint64(x)
		}
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	c.Limits.setDefaults()
}

// Validate reports a configuration the broker cannot run with.
func (c *Config) Validate() error {
	if !tokenOK(c.BrokerID) {
		return fmt.Errorf("semantics: broker id %q must be one subject token of letters, digits, - or _", c.BrokerID)
	}
	if c.AcceptRate < 0 {
		return fmt.Errorf("semantics: negative accept rate %d", c.AcceptRate)
	}
	_, err := NewSchedule(c.Windows)
	return err
}

// Broker applies KiteQ's semantics to what its adapters (natsproto,
// compat) hand it: it and stores publishes, dispatches each message to
// one consumer of every matching group, tracks acknowledgements, and
// redelivers on the schedule until the deliver limit or expiry.
//
// Locks: Broker.mu guards the broker's state (see doc.go); it is never held
// across store I/O or Endpoint.Deliver, but an Ack's done may be called
// while it is held. The id generator's lock (tokens) and the unmatched
// counts' lock are leaves: nothing is called while they are held.
type Broker struct {
	cfg    Config
	log    *slog.Logger
	sched  Schedule
	st     store.Store
	w      Writer
	keeper BindingKeeper
	tx     Transactions    // nil: two-phase commit answers 501
	served map[string]bool // empty: every topic
	accept *rate.Limiter   // nil: no accept limit
	kick   chan struct{}   // capacity 1: wakes the recover loop early
	closed chan struct{}   // capacity 1: wakes the closer (ConnClosed)
	ready  chan struct{}   // closed once Run's subscriptions are in place

	seq         atomic.Uint64
	counters    counters
	limitCounts limitCounts
	unmatched   unmatchedTopics

	mu        sync.Mutex // guards everything below
	rnd       *mrand.Rand
	groups    map[string]*group
	routes    map[string][]route          // topic → bindings of every group on it
	matches   map[string]map[string]match // topic → messageType → matching's answer
	consumers map[string]*consumer
	byConn    map[uint64][]*consumer
	closing   []uint64              // conns reported closed, their consumers not yet removed
	inflight  map[string]*flight    // delivery id → flight
	flying    map[flightKey]string  // (topic, id, group) → delivery id
	settling  map[flightKey]*settle // (topic, id, group) → its queued writes
	gen       uint64                // counts writes that became durable
	used      *usedIDs
	draining  bool
}

// Writer is the group-commit writer the broker saves and updates through
// (*store.Batcher, which the caller builds, runs and shares with the
// transaction coordinator, so that commits and acks share batches). Save
// and Update call done exactly once, on the writer's callback goroutine,
// unless they return an error themselves; done must not block.
type Writer interface {
	Save(m *store.Message, done func(store.SaveResult, error)) error
	Update(u store.Update, done func(error)) error
	// Pending is the number of queued requests (Stat's WriteQueue).
	Pending() int
}

// New builds a broker over st, writing through w. It starts nothing: call
// Run, with w running from before Run is called until after it returned.
// initial holds the bindings loaded from the store or the registry, by
// group.
func New(cfg Config, st store.Store, w Writer, keeper BindingKeeper, initial map[string][]registry.Binding) (*Broker, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if w == nil {
		return nil, errors.New("semantics: New needs a writer")
	}
	sched, _ := NewSchedule(cfg.Windows)
	b := &Broker{
		cfg:       cfg,
		log:       cfg.Logger,
		sched:     sched,
		st:        st,
		w:         w,
		keeper:    keeper,
		tx:        cfg.Transactions,
		served:    make(map[string]bool),
		kick:      make(chan struct{}, 1),
		closed:    make(chan struct{}, 1),
		ready:     make(chan struct{}),
		rnd:       mrand.New(mrand.NewPCG(cfg.Seed, cfg.Seed^0x9e3779b97f4a7c15)),
		groups:    make(map[string]*group),
		routes:    make(map[string][]route),
		consumers: make(map[string]*consumer),
		byConn:    make(map[uint64][]*consumer),
		inflight:  make(map[string]*flight),
		flying:    make(map[flightKey]string),
		settling:  make(map[flightKey]*settle),
		used:      newUsedIDs(1 << 16),
	}
	for _, t := range cfg.Topics {
		b.served[t] = true
	}
	if cfg.AcceptRate > 0 {
		b.accept = rate.NewLimiter(rate.Limit(cfg.AcceptRate), max(1, cfg.AcceptRate/2))
	}
	b.seq.Store(uint64(cfg.Now().UnixMicro()))
	for g, bs := range initial {
		b.group(g).setBindings(compileBindings(bs))
	}
	b.rebuildRoutes()
	return b, nil
}

// Ready is closed once Run serves: its Intake takes messages.
func (b *Broker) Ready() <-chan struct{} { return b.ready }

// ID returns the broker's id (Config.BrokerID).
func (b *Broker) ID() string { return b.cfg.BrokerID }

// Config returns the broker's configuration, defaults applied: an adapter
// reads its limits and clock once, when it starts.
func (b *Broker) Config() Config { return b.cfg }

// CountRefused counts a publish an adapter refused before it reached
// Publish, or answered with Publish's error (Stat.Refused).
func (b *Broker) CountRefused() { b.counters.refused.Add(1) }

// Run serves until ctx ends, then shuts down in order: stop taking
// publishes (Intake.StopPublishes), wait (up to DrainTimeout) for in-flight deliveries, stop the
// closer, the recover loop and the intake. It returns the first error that
// stopped it. The writer must run until Run returned: the caller stops it
// then, and it writes what was accepted first.
func (b *Broker) Run(ctx context.Context) error {
	in := b.cfg.Intake
	if in != nil {
		if err := in.Start(b); err != nil {
			return fmt.Errorf("semantics: start intake: %w", err)
		}
		defer in.Stop()
	}
	// The closer outlives the recover loop: consumers that leave while
	// deliveries drain give theirs back at once.
	cctx, stopCloser := context.WithCancel(context.WithoutCancel(ctx))
	closerDone := make(chan struct{})
	go func() { defer close(closerDone); b.closer(cctx) }()
	close(b.ready)
	b.log.Info("semantics: serving", "broker", b.cfg.BrokerID)

	b.loop(ctx)

	if in != nil {
		in.StopPublishes()
	}
	b.drain()
	stopCloser()
	<-closerDone
	return nil
}

// loop runs the recover loop until ctx ends.
func (b *Broker) loop(ctx context.Context) {
	t := time.NewTicker(b.cfg.TickInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			b.Tick(ctx, true)
		case <-b.kick:
			b.Tick(ctx, false)
		}
	}
}

// drain waits for in-flight deliveries to end, up to DrainTimeout.
func (b *Broker) drain() {
	b.mu.Lock()
	b.draining = true
	b.mu.Unlock()
	deadline := time.Now().Add(b.cfg.DrainTimeout)
	for time.Now().Before(deadline) {
		b.mu.Lock()
		n := len(b.inflight)
		b.mu.Unlock()
		if n == 0 {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	b.log.Warn("semantics: shutdown with deliveries in flight; they are redelivered after restart")
}

// wake asks the recover loop for an early pass.
func (b *Broker) wake() {
	select {
	case b.kick <- struct{}{}:
	default:
	}
}

// nextSeq returns the next publish sequence: increasing for the life of the
// broker and, since it starts at the clock in microseconds, across restarts.
func (b *Broker) nextSeq() uint64 { return b.seq.Add(1) }

// NewMessageID makes a message id of 32 lower-case hex digits: the clock in
// nanoseconds, then 64 random bits. Ids made later sort later, so the
// store's keys for a topic's messages (record, dedup entry) are inserted
// next to each other, not all over its index: in RocksDB that was 9 % of
// the CPU of a message.
func NewMessageID() string {
	var buf [16]byte
	binary.BigEndian.PutUint64(buf[:8], uint64(time.Now().UnixNano()))
	randomFill(buf[8:])
	var out [32]byte
	hex.Encode(out[:], buf[:])
	return string(out[:]) // one allocation: EncodeToString makes two
}

// tokens is the source of ids: ChaCha8 (a cryptographically strong
// generator) seeded once from the OS, so that the hot path makes no
// getrandom system call per message and per delivery.
var tokens = struct {
	sync.Mutex
	r *mrand.ChaCha8
}{r: mrand.NewChaCha8(seed32())}

func seed32() (s [32]byte) {
	_, _ = rand.Read(s[:])
	return s
}

// randomToken returns n random bytes (at most 32) as lower-case hex.
func randomToken(n int) string {
	var buf [32]byte
	var out [64]byte
	randomFill(buf[:n])
	hex.Encode(out[:], buf[:n])
	return string(out[:2*n]) // one allocation: EncodeToString makes two
}

// randomFill fills b from tokens.
func randomFill(b []byte) {
	tokens.Lock()
	_, _ = tokens.r.Read(b)
	tokens.Unlock()
}

// tokenOK reports whether s is letters, digits, - and _ only: a broker id
// is one token of the NATS adapter's ack subjects, written unescaped.
func tokenOK(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// Serves reports whether topic is served here (Config.Topics).
func (b *Broker) Serves(topic string) bool {
	return len(b.served) == 0 || b.served[topic]
}

// storeError maps a store failure to its wire error.
func storeError(err error) *kqerr.Error {
	switch {
	case errors.Is(err, store.ErrFull):
		return kqerr.New(kqerr.Unavailable, err, "store full")
	case errors.Is(err, store.ErrBusy):
		return kqerr.New(kqerr.Unavailable, err, "store busy: too many writes waiting")
	case errors.Is(err, store.ErrClosed):
		return kqerr.New(kqerr.Unavailable, err, "broker shutting down")
	default:
		return kqerr.New(kqerr.Unavailable, err, "store unavailable")
	}
}
