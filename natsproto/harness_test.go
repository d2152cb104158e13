package natsproto

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/kitenats/kitenats/registry"
	"github.com/kitenats/kitenats/semantics"
	"github.com/kitenats/kitenats/store"
	"github.com/kitenats/kitenats/store/memory"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

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

// fakeTransport records what the adapter publishes.
type fakeTransport struct {
	mu  sync.Mutex
	out []*Msg
}

func (t *fakeTransport) Publish(m *Msg) error {
	// Copy, as Transport's contract says: the adapter reuses m, its reply
	// and its buffers once Publish returned.
	c := Msg{Subject: strings.Clone(m.Subject), Reply: strings.Clone(m.Reply), Header: m.Header,
		RawHeader: bytes.Clone(m.RawHeader), Data: bytes.Clone(m.Data)}
	if c.RawHeader != nil {
		c.Header = decodeHeader(c.RawHeader)
	}
	m = &c
	t.mu.Lock()
	defer t.mu.Unlock()
	t.out = append(t.out, m)
	return nil
}

// decodeHeader reads a header block as a NATS client does: every value of
// every key, in order.
func decodeHeader(b []byte) map[string][]string {
	lines := strings.Split(strings.TrimSuffix(string(b), "\r\n\r\n"), "\r\n")
	if len(lines) == 0 || lines[0] != "NATS/1.0" {
		panic(fmt.Sprintf("bad header block %q", b))
	}
	h := map[string][]string{}
	for _, l := range lines[1:] {
		k, v, ok := strings.Cut(l, ": ")
		if !ok {
			panic(fmt.Sprintf("bad header line %q in %q", l, b))
		}
		h[k] = append(h[k], v)
	}
	return h
}

func (t *fakeTransport) Flush() error { return nil }

func (t *fakeTransport) Dropped() int64 { return 0 }

// Sync has nothing to wait for: the tests call the handlers themselves.
// (The broker's use of it, ordering a close behind the acks before it, is
// tested in package semantics.)
func (t *fakeTransport) Sync(context.Context) error { return nil }

func (t *fakeTransport) Subscribe(string, string, func(*Msg)) (func() error, error) {
	return func() error { return nil }, nil
}

// take returns and forgets the messages published on subjects with prefix.
func (t *fakeTransport) take(prefix string) []*Msg {
	t.mu.Lock()
	defer t.mu.Unlock()
	var got, rest []*Msg
	for _, m := range t.out {
		if strings.HasPrefix(m.Subject, prefix) {
			got = append(got, m)
		} else {
			rest = append(rest, m)
		}
	}
	t.out = rest
	return got
}

type fakeLocator map[string][]uint64

func (l fakeLocator) Holders(s string) ([]uint64, error) { return l[s], nil }

func (l fakeLocator) Interested(string) bool { return true }

type fakeKeeper struct {
	mu   sync.Mutex
	kept map[string][]registry.Binding
	err  error
}

func (k *fakeKeeper) KeepBindings(_ context.Context, g string, bs []registry.Binding) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.err != nil {
		return k.err
	}
	if k.kept == nil {
		k.kept = make(map[string][]registry.Binding)
	}
	k.kept[g] = bs
	return nil
}

// harness is the adapter over a broker over a memory store, a fake
// transport and a fake clock. The store writer runs; the recover loop only
// runs through tick; the tests call the adapter's handlers as its
// subscriptions would.
type harness struct {
	t      *testing.T
	s      *Server
	b      *semantics.Broker
	w      *store.Batcher
	clk    *fakeClock
	tr     *fakeTransport
	loc    fakeLocator
	keeper *fakeKeeper
	st     *memory.Store
	ctx    context.Context
}

var t0 = time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)

func newHarness(t *testing.T, mod func(*semantics.Config)) *harness {
	return newHarnessOver(t, mod, nil)
}

// newHarnessOver is newHarness with the memory store wrapped by wrap.
func newHarnessOver(t *testing.T, mod func(*semantics.Config), wrap func(store.Store) store.Store) *harness {
	t.Helper()
	h := &harness{t: t, clk: &fakeClock{t: t0}, tr: &fakeTransport{}, loc: fakeLocator{}, keeper: &fakeKeeper{}, st: memory.New(memory.Config{})}
	h.s = New(h.tr, h.loc, Config{})
	cfg := semantics.Config{BrokerID: "b1", Now: h.clk.Now, Seed: 7, Intake: h.s, Tap: h.s}
	if mod != nil {
		mod(&cfg)
	}
	var st store.Store = h.st
	if wrap != nil {
		st = wrap(st)
	}
	h.w = store.NewBatcher(st, store.BatcherConfig{Now: h.clk.Now})
	b, err := semantics.New(cfg, st, h.w, h.keeper, nil)
	require.NoError(t, err)
	h.b = b
	h.s.attach(b)
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
	// The callback's error is dropped: an injected store failure is the
	// test's business.
	done := make(chan struct{}, 1)
	require.NoError(h.t, h.w.Update(store.Update{Op: store.OpAck, Topic: "\x00", ID: "\x00"}, func(error) { done <- struct{}{} }))
	<-done
}

func (h *harness) tick() {
	h.settle()
	h.b.Tick(h.ctx, true)
	h.settle()
}

// bind makes a consumer of group on its own connection and returns its
// deliver subject and id.
func (h *harness) bind(group, deliver string, conn uint64, extra string, bindings ...string) string {
	h.t.Helper()
	h.loc[deliver] = []uint64{conn}
	body := `{"deliver":"` + deliver + `","bindings":[` + strings.Join(bindings, ",") + `]` + extra + `}`
	res := h.api("BIND."+group, body)
	var r struct{ Consumer string }
	require.NoError(h.t, json.Unmarshal(res, &r), string(res))
	require.NotEmpty(h.t, r.Consumer, string(res))
	return r.Consumer
}

// api calls $KQ.API.<call> and returns the reply body.
func (h *harness) api(call, body string) []byte {
	h.t.Helper()
	h.s.handleAPI(&Msg{Subject: "$KQ.API." + call, Reply: "_INBOX.api", Data: []byte(body)})
	h.settle()
	rs := h.tr.take("_INBOX.api")
	require.Len(h.t, rs, 1)
	return rs[0].Data
}

// admin calls $KQ.ADMIN.<call> and returns the reply body.
func (h *harness) admin(call, body string) []byte {
	h.t.Helper()
	h.s.handleAdmin(&Msg{Subject: "$KQ.ADMIN." + call, Reply: "_INBOX_admin.api", Data: []byte(body)})
	h.settle()
	rs := h.tr.take("_INBOX_admin.api")
	require.Len(h.t, rs, 1)
	return rs[0].Data
}

// publish sends a publish with a reply subject and returns the reply.
func (h *harness) publish(subject string, hdr map[string][]string, body string) []byte {
	h.t.Helper()
	h.s.handlePublish(&Msg{Subject: subject, Reply: "_INBOX.pub", Header: hdr, Data: []byte(body)})
	h.settle()
	rs := h.tr.take("_INBOX.pub")
	require.Len(h.t, rs, 1)
	return rs[0].Data
}

// ack sends payload as the reply to delivery d and returns the answer.
func (h *harness) ack(d *Msg, payload string) []byte {
	h.t.Helper()
	h.s.handleAck(&Msg{Subject: d.Reply, Reply: "_INBOX.ack", Data: []byte(payload)})
	h.settle()
	rs := h.tr.take("_INBOX.ack")
	require.Len(h.t, rs, 1)
	return rs[0].Data
}

func (h *harness) deliveries(deliver string) []*Msg { return h.tr.take(deliver) }

func (h *harness) stat() *semantics.Stat {
	h.t.Helper()
	s, err := h.b.Stat(context.Background())
	require.NoError(h.t, err)
	return s
}

func (h *harness) groupStat(topic, group string) semantics.GroupStat {
	for _, g := range h.stat().Groups {
		if g.Topic == topic && g.Group == group {
			return g
		}
	}
	return semantics.GroupStat{Topic: topic, Group: group}
}

func direct(topic, mt string, persistent bool) string {
	p := "false"
	if persistent {
		p = "true"
	}
	return `{"topic":"` + topic + `","messageType":"` + mt + `","bindType":"direct","persistent":` + p + `}`
}

func errCode(t *testing.T, body []byte) int {
	t.Helper()
	var r struct {
		Error *apiError `json:"error"`
	}
	require.NoError(t, json.Unmarshal(body, &r), string(body))
	if r.Error == nil {
		return 0
	}
	return r.Error.Code
}
