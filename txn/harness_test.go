package txn_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/kitenats/kitenats/store"
	"github.com/kitenats/kitenats/store/memory"
	"github.com/kitenats/kitenats/txn"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// t0 is the fake clock's start.
var t0 = time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)

const (
	topic    = "trade"
	producer = "prod"
	consumer = "sub" // the group the fake Releaser commits to
)

// clock is a fake clock, advanced by the test.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// since formats t relative to t0, as "+15s".
func since(t time.Time) string {
	if t.IsZero() {
		return "zero"
	}
	return "+" + t.Sub(t0).String()
}

// checkCall is one call of the fake Checker.
type checkCall struct {
	ID     string
	At     time.Time
	Checks int // m.Checks: checks made before this one
}

// fakeChecker answers with answer (nil: Unknown) and records its calls.
type fakeChecker struct {
	clk *clock
	mu  sync.Mutex
	// answer decides the answer to a check; it runs without mu held.
	answer func(ctx context.Context, m *store.Message) (txn.Action, error)
	calls  []checkCall
}

func (f *fakeChecker) Check(ctx context.Context, m *store.Message) (txn.Action, error) {
	f.mu.Lock()
	f.calls = append(f.calls, checkCall{ID: m.ID, At: f.clk.Now(), Checks: m.Checks})
	answer := f.answer
	f.mu.Unlock()
	if answer == nil {
		return txn.Unknown, nil
	}
	return answer(ctx, m)
}

func (f *fakeChecker) setAnswer(fn func(ctx context.Context, m *store.Message) (txn.Action, error)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.answer = fn
}

// answerAll answers every check with a (and err).
func answerAll(a txn.Action, err error) func(context.Context, *store.Message) (txn.Action, error) {
	return func(context.Context, *store.Message) (txn.Action, error) { return a, err }
}

func (f *fakeChecker) all() []checkCall {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]checkCall(nil), f.calls...)
}

func (f *fakeChecker) callsOf(id string) []checkCall {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []checkCall
	for _, c := range f.calls {
		if c.ID == id {
			out = append(out, c)
		}
	}
	return out
}

// fakeReleaser commits to the one group "sub", like semantics would with a
// single matching binding, and counts releases.
type fakeReleaser struct {
	clk *clock
	w   *store.Batcher
	st  store.Store
	mu  sync.Mutex
	// before runs first in every Release, without mu held; an error fails
	// the release before anything is written.
	before   func(m *store.Message) error
	released map[string]int
	order    []string
}

func (r *fakeReleaser) Release(ctx context.Context, m *store.Message) error {
	r.mu.Lock()
	before := r.before
	r.mu.Unlock()
	if before != nil {
		if err := before(m); err != nil {
			return err
		}
	}
	if !m.Prepared {
		return fmt.Errorf("fake releaser: %s is not prepared", m.ID)
	}
	// The coordinator promises: the store holds it prepared right now.
	cur, err := r.st.Get(ctx, m.Topic, m.ID)
	if err != nil || !cur.Prepared {
		return fmt.Errorf("fake releaser: %s released while not prepared in the store (%v)", m.ID, err)
	}
	done := make(chan error, 1)
	u := store.Update{Op: store.OpCommit, Topic: m.Topic, ID: m.ID,
		Groups: []store.GroupState{{Group: consumer, NextAttempt: r.clk.Now()}}}
	if err := r.w.Update(u, func(err error) { done <- err }); err != nil {
		return err
	}
	if err := <-done; err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.released[m.ID]++
	r.order = append(r.order, m.ID)
	return nil
}

func (r *fakeReleaser) count(id string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.released[id]
}

func (r *fakeReleaser) setBefore(fn func(m *store.Message) error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.before = fn
}

// env is a coordinator over a memory store and a running Batcher.
type env struct {
	t   testing.TB
	cfg txn.Config
	clk *clock
	st  *memory.Store
	b   *store.Batcher
	w   txn.Writer  // what the coordinator writes through (b, or a wrapper)
	cst store.Store // the store the coordinator reads (st, or a wrapper)
	chk *fakeChecker
	rel *fakeReleaser
	c   *txn.Coordinator
}

// testConfig is the configuration of most tests: KiteQ's defaults, made
// explicit so tests read them.
func testConfig() txn.Config {
	return txn.Config{FirstCheck: 5 * time.Second, Interval: 10 * time.Second, MaxChecks: 3}
}

func newEnv(t testing.TB, cfg txn.Config) *env {
	t.Helper()
	clk := &clock{now: t0}
	cfg.Now = clk.Now
	st := memory.New(memory.Config{})
	b := store.NewBatcher(st, store.BatcherConfig{Now: clk.Now})
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		_ = b.Run(ctx)
	}()
	t.Cleanup(func() {
		cancel()
		wg.Wait()
		_ = st.Close()
	})
	e := &env{t: t, cfg: cfg, clk: clk, st: st, b: b, w: b, cst: st,
		chk: &fakeChecker{clk: clk},
		rel: &fakeReleaser{clk: clk, w: b, st: st, released: map[string]int{}},
	}
	e.restart()
	return e
}

// restart replaces the coordinator by a new one over the same store, as a
// broker restart with a durable store would.
func (e *env) restart() {
	e.t.Helper()
	c, err := txn.New(e.cfg, e.cst, e.w, e.chk, e.rel)
	require.NoError(e.t, err)
	e.c = c
}

// prepare stores a prepared message published now, as semantics would.
func (e *env) prepare(id string) {
	e.t.Helper()
	e.prepareAt(id, e.c.NextCheck(e.clk.Now()))
}

func (e *env) prepareAt(id string, next time.Time) {
	e.t.Helper()
	m := &store.Message{Topic: topic, ID: id, MessageType: "order", Group: producer,
		BodyType: store.BodyString, Body: []byte("body of " + id), Created: e.clk.Now(),
		Expires: e.clk.Now().Add(24 * time.Hour), DeliverLimit: 10,
		Prepared: true, NextCheck: next}
	done := make(chan error, 1)
	require.NoError(e.t, e.b.Save(m, func(r store.SaveResult, err error) {
		if err == nil {
			err = r.Err
		}
		if err == nil && r.Duplicate {
			err = errors.New("duplicate")
		}
		done <- err
	}))
	require.NoError(e.t, <-done)
}

// update writes u through the Batcher and waits.
func (e *env) update(u store.Update) {
	e.t.Helper()
	done := make(chan error, 1)
	require.NoError(e.t, e.b.Update(u, func(err error) { done <- err }))
	require.NoError(e.t, <-done)
}

// ack acknowledges the committed message for its one group, deleting it.
func (e *env) ack(id string) {
	e.t.Helper()
	e.update(store.Update{Op: store.OpAck, Topic: topic, ID: id, Group: consumer})
}

func (e *env) get(id string) (*store.Message, error) {
	return e.st.Get(context.Background(), topic, id)
}

// requirePrepared asserts id is stored, prepared, with checks and next.
func (e *env) requirePrepared(id string, checks int, next time.Time) {
	e.t.Helper()
	m, err := e.get(id)
	require.NoError(e.t, err)
	require.True(e.t, m.Prepared, "%s should be prepared", id)
	require.Equal(e.t, checks, m.Checks, "checks of %s", id)
	require.Equal(e.t, since(next), since(m.NextCheck), "next check of %s", id)
}

// requireCommitted asserts id is stored, committed, pending for "sub".
func (e *env) requireCommitted(id string) {
	e.t.Helper()
	m, err := e.get(id)
	require.NoError(e.t, err)
	require.False(e.t, m.Prepared)
	_, ok := m.State(consumer)
	require.True(e.t, ok, "%s should be pending for %s", id, consumer)
}

func (e *env) requireGone(id string) {
	e.t.Helper()
	_, err := e.get(id)
	require.ErrorIs(e.t, err, store.ErrNotFound)
}

func (e *env) resolve(id string, commit bool) error {
	return e.c.Resolve(context.Background(), topic, id, commit)
}

func (e *env) tick() { e.c.Tick(context.Background()) }

// tickAt advances the clock to t0+d and ticks.
func (e *env) tickAt(d time.Duration) {
	e.t.Helper()
	now := e.clk.Now()
	require.False(e.t, t0.Add(d).Before(now), "clock would go back")
	e.clk.Advance(t0.Add(d).Sub(now))
	e.tick()
}

// prepared returns the number of prepared messages the store counts.
func (e *env) prepared() int64 {
	e.t.Helper()
	s, err := e.st.Stats(context.Background())
	require.NoError(e.t, err)
	var n int64
	for _, ts := range s.Topics {
		n += ts.Prepared
	}
	return n
}
