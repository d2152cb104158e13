package semantics

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/kitenats/kitenats/registry"
	"github.com/kitenats/kitenats/store"
	"github.com/kitenats/kitenats/store/memory"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// The tests of this package drive the core through its own API (Publish,
// Join, Ack, ConnClosed, Tick), with no protocol: the NATS adapter's tests
// (package natsproto) drive it through NATS messages.

// fakeClock is a settable clock.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// fakeIntake stands for an adapter. What a test routes (route) stands for
// messages the adapter has received but not yet handed to the broker: they
// are handled at the next Sync.
type fakeIntake struct {
	mu     sync.Mutex
	routed []func()
	syncs  int
}

func (in *fakeIntake) Start(*Broker) error { return nil }
func (in *fakeIntake) StopPublishes()      {}
func (in *fakeIntake) Stop()               {}
func (in *fakeIntake) Dropped() int64      { return 0 }

func (in *fakeIntake) Sync(context.Context) error {
	in.mu.Lock()
	fs := in.routed
	in.routed = nil
	in.syncs++
	in.mu.Unlock()
	for _, f := range fs {
		f()
	}
	return nil
}

// route queues handle until the next Sync.
func (in *fakeIntake) route(handle func()) {
	in.mu.Lock()
	defer in.mu.Unlock()
	in.routed = append(in.routed, handle)
}

// recorder is an Endpoint that keeps what it is sent.
type recorder struct {
	mu  sync.Mutex
	got []*Delivery
}

func (r *recorder) Deliver(d *Delivery) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.got = append(r.got, d)
	return nil
}

// take returns and forgets the deliveries received so far.
func (r *recorder) take() []*Delivery {
	r.mu.Lock()
	defer r.mu.Unlock()
	got := r.got
	r.got = nil
	return got
}

type fakeKeeper struct {
	mu   sync.Mutex
	kept map[string][]registry.Binding
}

func (k *fakeKeeper) KeepBindings(_ context.Context, g string, bs []registry.Binding) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.kept == nil {
		k.kept = make(map[string][]registry.Binding)
	}
	k.kept[g] = bs
	return nil
}

// harness is a broker over a memory store, a fake intake and a fake clock.
// The store writer runs; the recover loop and the closer only run through
// tick and connClosed.
type harness struct {
	t   *testing.T
	b   *Broker
	w   *store.Batcher
	clk *fakeClock
	in  *fakeIntake
	st  *memory.Store
	ctx context.Context
}

var t0 = time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)

func newHarness(t *testing.T, mod func(*Config)) *harness {
	t.Helper()
	h := &harness{t: t, clk: &fakeClock{t: t0}, in: &fakeIntake{}, st: memory.New(memory.Config{})}
	cfg := Config{BrokerID: "b1", Now: h.clk.Now, Seed: 7, Intake: h.in}
	if mod != nil {
		mod(&cfg)
	}
	h.w = store.NewBatcher(h.st, store.BatcherConfig{Now: h.clk.Now})
	b, err := New(cfg, h.st, h.w, &fakeKeeper{}, nil)
	require.NoError(t, err)
	h.b = b
	ctx, cancel := context.WithCancel(context.Background())
	h.ctx = ctx
	done := make(chan struct{})
	go func() { _ = h.w.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return h
}

// settle waits until every store write queued so far has been applied and
// its callbacks have run.
func (h *harness) settle() {
	h.t.Helper()
	done := make(chan struct{}, 1)
	require.NoError(h.t, h.w.Update(store.Update{Op: store.OpAck, Topic: "\x00", ID: "\x00"}, func(error) { done <- struct{}{} }))
	<-done
}

func (h *harness) tick() {
	h.settle()
	h.b.Tick(h.ctx, true)
	h.settle()
}

// join adds bindings to group and joins a consumer with key on conn; it
// returns the consumer's id and the recorder its deliveries go to.
func (h *harness) join(group, key string, conn uint64, maxInflight int, bindings ...registry.Binding) (string, *recorder) {
	h.t.Helper()
	for i := range bindings {
		bindings[i].GroupID = group
		bindings[i] = bindings[i].Normalize()
	}
	require.NoError(h.t, h.b.AddBindings(h.ctx, group, bindings))
	r := &recorder{}
	id, err := h.b.Join(ConsumerSpec{Group: group, Key: key, Conn: conn, MaxInflight: maxInflight, Endpoint: r})
	require.NoError(h.t, err)
	return id, r
}

// publish publishes body on (topic, messageType) with a broker-made id and
// the default limits, and waits for its ack.
func (h *harness) publish(topic, messageType, body string) PubAck {
	h.t.Helper()
	return h.publishMessage(&Publication{Message: h.message(topic, messageType, body, h.clk.Now()), NewID: true})
}

// message is a message published at now with a broker-made id and the
// default limits, as an adapter builds one.
func (h *harness) message(topic, messageType, body string, now time.Time) *store.Message {
	return &store.Message{ID: NewMessageID(), Topic: topic, MessageType: messageType, BodyType: store.BodyBytes,
		Body: []byte(body), Created: now.Truncate(time.Second), Expires: now.Add(MaxExpiry), DeliverLimit: MaxDeliverLimit}
}

// publishMessage publishes p and waits for its ack.
func (h *harness) publishMessage(p *Publication) PubAck {
	h.t.Helper()
	type res struct {
		ack PubAck
		err error
	}
	got := make(chan res, 1)
	h.b.Publish(p, func(a PubAck, err error) { got <- res{a, err} })
	h.settle()
	r := <-got
	require.NoError(h.t, r.err)
	return r.ack
}

// connClosed reports that conn closed and does the closer's work (Run's
// goroutine, which the harness does not run).
func (h *harness) connClosed(conns ...uint64) {
	h.t.Helper()
	for _, c := range conns {
		h.b.ConnClosed(c)
	}
	h.b.closeConns(h.ctx)
	h.settle()
}

func (h *harness) stat() *Stat {
	h.t.Helper()
	s, err := h.b.Stat(context.Background())
	require.NoError(h.t, err)
	return s
}

func (h *harness) groupStat(topic, group string) GroupStat {
	for _, g := range h.stat().Groups {
		if g.Topic == topic && g.Group == group {
			return g
		}
	}
	return GroupStat{Topic: topic, Group: group}
}

func direct(topic, mt string, persistent bool) registry.Binding {
	return registry.Binding{Topic: topic, MessageType: mt, BindType: registry.Direct, Persistent: persistent}
}
