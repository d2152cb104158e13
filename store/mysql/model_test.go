package mysql

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sort"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kitenats/kitenats/store"
	"github.com/kitenats/kitenats/store/memory"
)

// TestStoreMySQLMatchesMemory applies random batches of saves and updates
// (several updates of one message per batch included) to this store and to
// the memory store, the reference, and compares everything observable
// after each batch. The seed is printed; set it in seed to replay a run.
func TestStoreMySQLMatchesMemory(t *testing.T) {
	t.Parallel()
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 0))
	cfg := testConfig(t, "broker-a")
	cfg.BatchUpdateSize, cfg.BatchDelSize = 3, 2 // exercise chunking
	my := openTest(t, cfg)
	ref := memory.New(memory.Config{})
	defer func() { _ = ref.Close() }()

	g := &gen{rng: rng, now: time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)}
	ctx := context.Background()
	for i := range 60 {
		b := g.batch()
		want, err := ref.Write(ctx, b)
		require.NoError(t, err)
		got, err := my.Write(ctx, b)
		require.NoError(t, err, "batch %d", i)
		require.Equal(t, want, got, "batch %d save results", i)
		compareStores(t, g, ref, my, fmt.Sprintf("after batch %d", i))
	}
}

type gen struct {
	rng *rand.Rand
	now time.Time
	seq uint64
}

var (
	genTopics = []string{"trade", "a\x00b"}
	genGroups = []string{"s-a", "s-b", "s:c"}
)

func (g *gen) id() string    { return fmt.Sprintf("%031x%x", 0xabc, g.rng.IntN(8)*2+1) }
func (g *gen) key() key      { return key{genTopics[g.rng.IntN(len(genTopics))], g.id()} }
func (g *gen) group() string { return genGroups[g.rng.IntN(len(genGroups))] }
func (g *gen) at() time.Time { return g.now.Add(time.Duration(g.rng.IntN(20)-5) * time.Second) }

func (g *gen) groups() []store.GroupState {
	var out []store.GroupState
	for _, name := range genGroups {
		if g.rng.IntN(2) == 0 {
			out = append(out, store.GroupState{Group: name, Attempts: g.rng.IntN(3), NextAttempt: g.at()})
		}
	}
	return out
}

func (g *gen) batch() *store.Batch {
	g.now = g.now.Add(time.Duration(1+g.rng.IntN(3)) * time.Second)
	b := &store.Batch{Now: g.now, DedupWindow: 10 * time.Second} // ids get published again
	for range g.rng.IntN(4) {
		k := g.key()
		g.seq++
		m := testMessage(k.id, k.topic, g.now)
		m.Seq = g.seq
		if g.rng.IntN(4) == 0 {
			m.Prepared, m.NextCheck = true, g.at()
		} else {
			m.Groups = g.groups()
		}
		b.Saves = append(b.Saves, m)
	}
	ops := []store.Op{store.OpRetry, store.OpAck, store.OpDead, store.OpCommit, store.OpRollback, store.OpCheck, store.OpReplay}
	for range g.rng.IntN(8) {
		k := g.key()
		u := store.Update{Op: ops[g.rng.IntN(len(ops))], Topic: k.topic, ID: k.id, Group: g.group(),
			Attempts: g.rng.IntN(5), Next: g.at(), Reason: fmt.Sprintf("r%d", g.rng.IntN(3))}
		if u.Op == store.OpCommit {
			u.Groups = g.groups()
		}
		b.Updates = append(b.Updates, u)
	}
	return b
}

// compareStores compares what both stores return for every key and group.
func compareStores(t *testing.T, g *gen, want, got store.Store, when string) {
	t.Helper()
	ctx := context.Background()
	for _, tp := range genTopics {
		for i := 0; i < 8; i++ {
			id := fmt.Sprintf("%031x%x", 0xabc, i*2+1)
			wm, werr := want.Get(ctx, tp, id)
			gm, gerr := got.Get(ctx, tp, id)
			require.Equal(t, werr == nil, gerr == nil, "%s: get %q/%s: %v vs %v", when, tp, id, werr, gerr)
			if werr == nil {
				require.Equal(t, normalize(wm), normalize(gm), "%s: get %q/%s", when, tp, id)
			}
		}
		for _, grp := range genGroups {
			wd, wt, err := want.DeadLetters(ctx, tp, grp, 0, 100)
			require.NoError(t, err)
			gd, gt, err := got.DeadLetters(ctx, tp, grp, 0, 100)
			require.NoError(t, err)
			require.Equal(t, wt, gt, "%s: dead letters %q/%s", when, tp, grp)
			require.Equal(t, deadSet(wd), deadSet(gd), "%s: dead letters %q/%s", when, tp, grp)
		}
	}
	later := g.now.Add(time.Hour)
	for _, grp := range genGroups {
		wd, err := want.Due(ctx, grp, g.now, 100)
		require.NoError(t, err)
		gd, err := got.Due(ctx, grp, g.now, 100)
		require.NoError(t, err)
		require.Equal(t, dueList(wd, grp), dueList(gd, grp), "%s: due %s", when, grp)
		wd, _ = want.Due(ctx, grp, later, 100)
		gd, _ = got.Due(ctx, grp, later, 100)
		require.Equal(t, dueList(wd, grp), dueList(gd, grp), "%s: due %s later", when, grp)
	}
	wc, err := want.DueChecks(ctx, g.now, 100)
	require.NoError(t, err)
	gc, err := got.DueChecks(ctx, g.now, 100)
	require.NoError(t, err)
	require.Equal(t, checkList(wc), checkList(gc), "%s: due checks", when)
	ws, err := want.Stats(ctx)
	require.NoError(t, err)
	gs, err := got.Stats(ctx)
	require.NoError(t, err)
	require.Equal(t, nonZeroStats(ws), nonZeroStats(gs), "%s: stats", when)
}

func normalize(m *store.Message) store.Message {
	c := *m.Clone()
	sort.Slice(c.Groups, func(i, j int) bool { return c.Groups[i].Group < c.Groups[j].Group })
	for i := range c.Groups {
		c.Groups[i].NextAttempt = c.Groups[i].NextAttempt.UTC()
	}
	c.Created, c.Expires, c.NextCheck = c.Created.UTC(), c.Expires.UTC(), c.NextCheck.UTC()
	if len(c.Groups) == 0 {
		c.Groups = nil
	}
	if len(c.Body) == 0 {
		c.Body = nil
	}
	return c
}

// dueList is "time id/topic" per message, sorted: the stores break ties
// between equal times differently.
func dueList(ms []*store.Message, group string) []string {
	var out []string
	for _, m := range ms {
		st, _ := m.State(group)
		out = append(out, fmt.Sprintf("%d %s/%q a%d", st.NextAttempt.UnixNano(), m.ID, m.Topic, st.Attempts))
	}
	sort.Strings(out)
	return out
}

func checkList(ms []*store.Message) []string {
	var out []string
	for _, m := range ms {
		out = append(out, fmt.Sprintf("%d %s/%q c%d", m.NextCheck.UnixNano(), m.ID, m.Topic, m.Checks))
	}
	sort.Strings(out)
	return out
}

func deadSet(ds []store.DeadLetter) []string {
	var out []string
	for _, d := range ds {
		m := normalize(d.Message)
		out = append(out, fmt.Sprintf("%s %s %d %+v", d.Group, d.Reason, d.At.UnixNano(), m))
	}
	sort.Strings(out)
	return out
}

func nonZeroStats(st store.Stats) store.Stats {
	var out store.Stats
	for _, g := range st.Groups {
		if g.Pending != 0 || g.Dead != 0 {
			out.Groups = append(out.Groups, g)
		}
	}
	for _, tp := range st.Topics {
		if tp.Messages != 0 || tp.Prepared != 0 {
			out.Topics = append(out.Topics, tp)
		}
	}
	return out
}

// TestStoreMySQLReplayEdges runs by hand the rare sequences the random
// test seldom draws, against the memory store as the reference: a letter
// of a message that a replay recreated in the same batch, and a replay
// that recreates an older publish of an id over a newer one.
func TestStoreMySQLReplayEdges(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t, "broker-a")
	my := openTest(t, cfg)
	ref := memory.New(memory.Config{})
	defer func() { _ = ref.Close() }()
	ctx := context.Background()
	g := &gen{now: time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)}
	id := fmt.Sprintf("%031x%x", 0xabc, 3)
	up := func(op store.Op, group string) store.Update {
		return store.Update{Op: op, Topic: "trade", ID: id, Group: group, Reason: "r-" + group, Next: g.now}
	}
	v1 := testMessage(id, "trade", g.now, "s-a", "s-b")
	v1.Seq, v1.Body = 1, []byte("v1")
	v2 := testMessage(id, "trade", g.now, "s-a", "s-b")
	v2.Seq, v2.Body = 2, []byte("v2")
	steps := []struct {
		after time.Duration
		saves []*store.Message
		ups   []store.Update
	}{
		{0, []*store.Message{v1}, nil},
		{time.Second, nil, []store.Update{up(store.OpDead, "s-a"), up(store.OpAck, "s-b")}},
		// Recreated from the letter, dead again, all in one batch.
		{time.Second, nil, []store.Update{up(store.OpReplay, "s-a"), up(store.OpDead, "s-a")}},
		// The id again, past its dedup window.
		{time.Hour, []*store.Message{v2}, nil},
		// Deleted, then recreated from v1's letter (the oldest), within one
		// batch; the second replay finds s-a pending already.
		{time.Second, nil, []store.Update{up(store.OpDead, "s-a"), up(store.OpAck, "s-b"), up(store.OpReplay, "s-a"), up(store.OpReplay, "s-a")}},
		{time.Second, nil, []store.Update{up(store.OpReplay, "s-b"), up(store.OpAck, "s-a")}},
		{time.Second, nil, []store.Update{up(store.OpReplay, "s-a"), up(store.OpAck, "s-a")}},
	}
	for i, st := range steps {
		g.now = g.now.Add(st.after)
		b := &store.Batch{Now: g.now, DedupWindow: time.Minute, Saves: st.saves, Updates: st.ups}
		want, err := ref.Write(ctx, b)
		require.NoError(t, err)
		got, err := my.Write(ctx, b)
		require.NoError(t, err, "step %d", i)
		require.Equal(t, want, got, "step %d", i)
		compareStores(t, g, ref, my, fmt.Sprintf("step %d", i))
		wm, werr := ref.Get(ctx, "trade", id)
		gm, gerr := my.Get(ctx, "trade", id)
		require.Equal(t, werr == nil, gerr == nil, "step %d", i)
		if werr == nil {
			require.Equal(t, normalize(wm), normalize(gm), "step %d", i)
		}
	}
}
