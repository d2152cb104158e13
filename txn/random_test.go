package txn_test

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kitenats/kitenats/store"
	"github.com/kitenats/kitenats/txn"
)

var (
	seedFlag = flag.Uint64("txn.seed", 0, "run TestTxnRandom with this seed only")
	runsFlag = flag.Int("txn.runs", 16, "number of seeds TestTxnRandom runs (4 with -short)")
)

// TestTxnRandom drives one coordinator through random interleavings of
// prepares, producer resolves (sometimes the wrong way round), check
// answers, failing releases, acks, clock advances and restarts, checks the
// invariants after every step, then lets time run until every message is
// decided. Rerun a failure with -txn.seed=N.
func TestTxnRandom(t *testing.T) {
	seeds := []uint64{*seedFlag}
	if *seedFlag == 0 {
		base := uint64(time.Now().UnixNano())
		t.Logf("base seed %d", base)
		seeds = seeds[:0]
		runs := *runsFlag
		if testing.Short() {
			runs = min(runs, 4)
		}
		for i := range uint64(runs) {
			seeds = append(seeds, base+i)
		}
	}
	for _, seed := range seeds {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			t.Logf("seed %d (rerun with go test ./txn -run TestTxnRandom -txn.seed=%d)", seed, seed)
			newRandomRun(t, seed).run(400)
		})
	}
}

// model is what the test knows about one message.
type model struct {
	id       string
	prepared time.Time // when it was (last) prepared
	gen      int       // coordinator generation of the prepare
	// intent is what the producer will answer (Unknown: never).
	intent txn.Action
	// askedCommit is set before anyone (a Resolve or a check answer) asks
	// to commit: a release without it is a release before commit.
	askedCommit bool
	// outcome is the decision as the test observed it; decidedGen is the
	// coordinator generation that decided it.
	outcome    txn.Action
	decidedGen int
	// confirmed counts the nil Resolves of each action.
	confirmed map[txn.Action]int
	acked     bool
}

type randomRun struct {
	t      *testing.T
	rng    *rand.Rand
	e      *env
	gen    int
	msgs   []*model
	byID   map[string]*model
	failMu sync.Mutex
	failP  float64 // chance that a release fails before writing
	trace  []string
}

func newRandomRun(t *testing.T, seed uint64) *randomRun {
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	cfg := txn.Config{
		FirstCheck:  time.Duration(1+rng.IntN(5)) * time.Second,
		Interval:    time.Duration(1+rng.IntN(10)) * time.Second,
		MaxChecks:   1 + rng.IntN(4),
		FinalAction: txn.FinalAction(rng.IntN(2)),
		Page:        1 + rng.IntN(8),
	}
	r := &randomRun{t: t, rng: rng, e: newEnv(t, cfg), byID: map[string]*model{}}
	r.logf("config first=%v interval=%v max=%d final=%v page=%d",
		cfg.FirstCheck, cfg.Interval, cfg.MaxChecks, cfg.FinalAction, cfg.Page)
	r.e.chk.setAnswer(r.answer)
	r.e.rel.setBefore(r.beforeRelease)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("trace:\n%s", strings.Join(r.trace, "\n"))
		}
	})
	return r
}

func (r *randomRun) logf(format string, args ...any) {
	r.trace = append(r.trace, fmt.Sprintf("%s ", since(r.e.clk.Now()))+fmt.Sprintf(format, args...))
}

// answer is the producer's answer to a check: its intent or unknown, or a
// failure. The run is single-goroutine, so the rng is safe here.
func (r *randomRun) answer(_ context.Context, m *store.Message) (txn.Action, error) {
	md := r.byID[m.ID]
	require.NotNil(r.t, md, "check of unknown message %s", m.ID)
	require.False(r.t, r.e.clk.Now().Before(md.prepared.Add(r.e.cfg.FirstCheck)),
		"%s checked before FirstCheck", m.ID)
	require.Less(r.t, m.Checks, r.e.cfg.MaxChecks, "%s checked beyond MaxChecks", m.ID)
	a, err := txn.Unknown, error(nil)
	switch p := r.rng.Float64(); {
	case p < 0.15:
		err = errors.New("no responders")
	case p < 0.55:
		a = md.intent
	}
	if a == txn.Commit {
		md.askedCommit = true
	}
	r.logf("check %s (checks=%d) -> %v %v", m.ID, m.Checks, a, err)
	return a, err
}

func (r *randomRun) beforeRelease(m *store.Message) error {
	md := r.byID[m.ID]
	require.True(r.t, md.askedCommit, "%s released before any commit decision", m.ID)
	require.NotEqual(r.t, txn.Rollback, md.outcome, "%s released after its rollback", m.ID)
	require.Zero(r.t, r.e.rel.count(m.ID), "%s released twice", m.ID)
	r.failMu.Lock()
	fail := r.rng.Float64() < r.failP
	r.failMu.Unlock()
	if fail {
		r.logf("release %s fails", m.ID)
		return errors.New("release failed")
	}
	r.logf("release %s", m.ID)
	return nil
}

func (r *randomRun) run(steps int) {
	for range steps {
		switch p := r.rng.Float64(); {
		case p < 0.15:
			r.prepare()
		case p < 0.35:
			r.resolve()
		case p < 0.60:
			r.logf("tick")
			r.e.tick()
		case p < 0.85:
			d := time.Duration(r.rng.Int64N(int64(2 * r.e.cfg.Interval)))
			r.e.clk.Advance(d)
		case p < 0.90:
			r.ack()
		case p < 0.95:
			r.gen++
			r.logf("restart")
			r.e.restart()
		default:
			r.failMu.Lock()
			r.failP = []float64{0, 0, 0.3}[r.rng.IntN(3)]
			r.failMu.Unlock()
		}
		r.observe()
	}
	// Let time run: every message must end decided.
	r.failMu.Lock()
	r.failP = 0
	r.failMu.Unlock()
	for range r.e.cfg.MaxChecks + 2 {
		r.e.clk.Advance(r.e.cfg.FirstCheck + r.e.cfg.Interval)
		for range len(r.msgs)/r.e.cfg.Page + 1 {
			r.e.tick()
		}
		r.observe()
	}
	require.Zero(r.t, r.e.prepared(), "undecided messages left")
	left, err := r.e.st.DueChecks(context.Background(), time.Unix(1<<40, 0), 1)
	require.NoError(r.t, err)
	require.Empty(r.t, left)
	for _, md := range r.msgs {
		n := r.e.rel.count(md.id)
		require.LessOrEqual(r.t, n, 1)
		require.NotEqual(r.t, txn.Unknown, md.outcome, "%s undecided", md.id)
		if md.outcome == txn.Commit {
			require.Equal(r.t, 1, n, "%s committed, released %d times", md.id, n)
		} else {
			require.Zero(r.t, n, "%s rolled back but released", md.id)
		}
		if md.intent == txn.Unknown && md.confirmed[txn.Commit] == 0 {
			require.Zero(r.t, n, "%s released although nobody committed it", md.id)
		}
		require.LessOrEqual(r.t, len(r.e.chk.callsOf(md.id)), r.e.cfg.MaxChecks)
	}
}

func (r *randomRun) prepare() {
	id := fmt.Sprintf("m%03d", len(r.msgs))
	md := &model{id: id, prepared: r.e.clk.Now(), gen: r.gen,
		intent: txn.Action(r.rng.IntN(3)), confirmed: map[txn.Action]int{}}
	r.msgs = append(r.msgs, md)
	r.byID[id] = md
	r.logf("prepare %s intent=%v", id, md.intent)
	r.e.prepare(id)
}

// resolve sends a producer's resolve: usually its intent, sometimes the
// other way (a confused or duplicated producer).
func (r *randomRun) resolve() {
	if len(r.msgs) == 0 {
		return
	}
	md := r.msgs[r.rng.IntN(len(r.msgs))]
	want := md.intent
	if want == txn.Unknown || r.rng.Float64() < 0.2 {
		want = txn.Action(1 + r.rng.IntN(2))
	}
	if want == txn.Commit {
		md.askedCommit = true
	}
	err := r.e.resolve(md.id, want == txn.Commit)
	r.logf("resolve %s %v -> %v", md.id, want, err)
	r.observe()
	_, getErr := r.e.get(md.id)
	gone := errors.Is(getErr, store.ErrNotFound)
	switch {
	case err == nil:
		require.Equal(r.t, want, md.outcome, "%s: resolve %v confirmed, outcome %v", md.id, want, md.outcome)
		md.confirmed[want]++
	case errors.Is(err, txn.ErrConflict):
		require.NotEqual(r.t, txn.Unknown, md.outcome)
		require.NotEqual(r.t, want, md.outcome, "%s: conflict for the same outcome", md.id)
	case errors.Is(err, txn.ErrNotFound):
		require.True(r.t, gone, "%s: not found while stored", md.id)
		require.Less(r.t, md.decidedGen, r.gen, "%s: outcome forgotten without a restart", md.id)
	default:
		require.ErrorContains(r.t, err, "release failed")
		require.Equal(r.t, txn.Unknown, md.outcome, "%s: a failed resolve decided", md.id)
	}
	require.Zero(r.t, md.confirmed[txn.Commit]*md.confirmed[txn.Rollback],
		"%s confirmed both ways", md.id)
}

// ack acknowledges a committed message, deleting it from the store.
func (r *randomRun) ack() {
	for _, md := range r.msgs {
		if md.outcome == txn.Commit && !md.acked {
			md.acked = true
			r.logf("ack %s", md.id)
			r.e.ack(md.id)
			return
		}
	}
}

// observe derives outcomes from the store: a message no longer prepared is
// committed (still stored, or released) or rolled back (gone, never
// released).
func (r *randomRun) observe() {
	for _, md := range r.msgs {
		m, err := r.e.get(md.id)
		released := r.e.rel.count(md.id) > 0
		var now txn.Action
		switch {
		case err == nil && m.Prepared:
			require.False(r.t, released, "%s released but still prepared", md.id)
		case err == nil:
			require.True(r.t, released, "%s committed without a release", md.id)
			now = txn.Commit
		default:
			require.ErrorIs(r.t, err, store.ErrNotFound)
			if released {
				require.True(r.t, md.acked, "%s released, then deleted without an ack", md.id)
				now = txn.Commit
			} else {
				now = txn.Rollback
			}
		}
		if md.outcome == txn.Unknown && now != txn.Unknown {
			md.outcome, md.decidedGen = now, r.gen
		}
		require.True(r.t, now == txn.Unknown && md.outcome == txn.Unknown || now == md.outcome,
			"%s: outcome changed from %v to %v", md.id, md.outcome, now)
	}
}

// TestTxnRandomConcurrent races producers resolving random messages both
// ways against a goroutine that ticks (checks answering at random) and
// advances the clock, then checks that every message got one outcome,
// agreed by every confirmed resolve and by the releases.
func TestTxnRandomConcurrent(t *testing.T) {
	seed := *seedFlag
	if seed == 0 {
		seed = uint64(time.Now().UnixNano())
	}
	t.Logf("seed %d (rerun with -txn.seed=%d)", seed, seed)
	const msgs, producers, resolves = 40, 8, 60
	e := newEnv(t, txn.Config{FirstCheck: time.Second, Interval: time.Second, MaxChecks: 3, Page: 16,
		FinalAction: txn.FinalAction(seed % 2)})

	var mu sync.Mutex // guards asked, confirmed and violations
	asked := map[string]bool{}
	var violations []string
	confirmed := map[string]map[bool]int{}
	for i := range msgs {
		id := fmt.Sprintf("m%02d", i)
		confirmed[id] = map[bool]int{}
		e.prepare(id)
	}
	e.rel.setBefore(func(m *store.Message) error {
		mu.Lock()
		defer mu.Unlock()
		if !asked[m.ID] {
			violations = append(violations, m.ID)
			return fmt.Errorf("%s released before any commit decision", m.ID)
		}
		return nil
	})
	var rngMu sync.Mutex
	rng := rand.New(rand.NewPCG(seed, seed+1))
	intn := func(n int) int {
		rngMu.Lock()
		defer rngMu.Unlock()
		return rng.IntN(n)
	}
	e.chk.setAnswer(func(_ context.Context, m *store.Message) (txn.Action, error) {
		a := txn.Action(intn(3))
		if a == txn.Commit {
			mu.Lock()
			asked[m.ID] = true
			mu.Unlock()
		}
		return a, nil
	})

	var wg sync.WaitGroup
	stop := make(chan struct{})
	wg.Go(func() {
		for {
			select {
			case <-stop:
				return
			default:
			}
			e.clk.Advance(time.Duration(intn(500)) * time.Millisecond)
			e.tick()
		}
	})
	var pw sync.WaitGroup
	for range producers {
		pw.Go(func() {
			for range resolves {
				id := fmt.Sprintf("m%02d", intn(msgs))
				commit := intn(2) == 0
				if commit {
					mu.Lock()
					asked[id] = true
					mu.Unlock()
				}
				err := e.resolve(id, commit)
				if err == nil {
					mu.Lock()
					confirmed[id][commit]++
					mu.Unlock()
				} else if !errors.Is(err, txn.ErrConflict) {
					t.Errorf("resolve %s commit=%v: %v", id, commit, err)
				}
			}
		})
	}
	pw.Wait()
	close(stop)
	wg.Wait()
	for range 5 {
		e.clk.Advance(2 * time.Second)
		for range msgs/16 + 1 {
			e.tick()
		}
	}
	require.Zero(t, e.prepared())
	require.Empty(t, violations, "released before any commit decision")
	for id, c := range confirmed {
		n := e.rel.count(id)
		require.LessOrEqual(t, n, 1, id)
		require.False(t, c[true] > 0 && c[false] > 0, "%s confirmed both ways", id)
		if c[true] > 0 {
			require.Equal(t, 1, n, "%s commit confirmed, not released", id)
		}
		if c[false] > 0 {
			require.Zero(t, n, "%s rollback confirmed, released", id)
		}
		_, err := e.get(id)
		require.Equal(t, n == 1, err == nil, "%s: stored iff released", id)
	}
}
