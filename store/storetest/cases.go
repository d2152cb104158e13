package storetest

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kitenats/kitenats/store"
)

func testSaveGet(t *testing.T, f Factory) {
	s, _ := f.New(t)
	m := msg("trade", "s-a", "s-b")
	m.BodyType = store.BodyString
	m.Groups[1].Attempts = 2
	m.Groups[1].NextAttempt = at(5 * time.Second)
	save(t, s, m)
	requireEqualMessage(t, m, get(t, s, m.Topic, m.ID))

	// Returned messages are copies.
	got := get(t, s, m.Topic, m.ID)
	got.Body[0] = 'X'
	got.Groups[0].Attempts = 99
	requireEqualMessage(t, m, get(t, s, m.Topic, m.ID))
}

func testGetMissing(t *testing.T, f Factory) {
	s, _ := f.New(t)
	requireMissing(t, s, "trade", newID())
	m := msg("trade", "s-a")
	save(t, s, m)
	requireMissing(t, s, "other", m.ID)
}

func testDuplicate(t *testing.T, f Factory) {
	s, _ := f.New(t)
	m := msg("trade", "s-a")
	m.Seq = 41
	save(t, s, m)
	again := m.Clone()
	again.Seq = 42
	again.Body = []byte("different")
	res := write(t, s, at(time.Minute), []*store.Message{again})
	require.True(t, res[0].Duplicate)
	require.Equal(t, uint64(41), res[0].Seq)
	require.Equal(t, []byte("hello"), get(t, s, m.Topic, m.ID).Body)

	// The same id on another topic is another message.
	other := m.Clone()
	other.Topic = "trade2"
	save(t, s, other)
}

func testDuplicateOutlivesMessage(t *testing.T, f Factory) {
	s, _ := f.New(t)
	m := msg("trade", "s-a")
	save(t, s, m)
	update(t, s, t0, store.Update{Op: store.OpAck, Topic: m.Topic, ID: m.ID, Group: "s-a"})
	requireMissing(t, s, m.Topic, m.ID)
	res := write(t, s, at(time.Minute), []*store.Message{m.Clone()})
	require.True(t, res[0].Duplicate)
	require.Equal(t, m.Seq, res[0].Seq)
	requireMissing(t, s, m.Topic, m.ID)
}

func testDuplicateExpires(t *testing.T, f Factory) {
	s, _ := f.New(t)
	m := msg("trade", "s-a")
	save(t, s, m)
	update(t, s, t0, store.Update{Op: store.OpAck, Topic: m.Topic, ID: m.ID, Group: "s-a"})
	// Past the 2-minute window the id may be published again.
	again := m.Clone()
	again.Seq++
	res := write(t, s, at(3*time.Minute), []*store.Message{again})
	require.False(t, res[0].Duplicate)
	require.Equal(t, again.Seq, get(t, s, m.Topic, m.ID).Seq)
}

func testDuplicateInOneBatch(t *testing.T, f Factory) {
	s, _ := f.New(t)
	m := msg("trade", "s-a")
	twin := m.Clone()
	twin.Seq = m.Seq + 1000
	res := write(t, s, t0, []*store.Message{m, twin})
	require.False(t, res[0].Duplicate)
	require.True(t, res[1].Duplicate)
	require.Equal(t, m.Seq, res[1].Seq)
	require.Equal(t, m.Seq, get(t, s, m.Topic, m.ID).Seq)
}

// testNewIDSave: a save marked NewID (the broker made the id) may skip the
// duplicate check, but its dedup entry is written like any other: a later
// publish of that id is a duplicate.
func testNewIDSave(t *testing.T, f Factory) {
	s, _ := f.New(t)
	m := msg("trade", "s-a")
	m.NewID = true
	save(t, s, m)
	require.Equal(t, m.Seq, get(t, s, m.Topic, m.ID).Seq)
	update(t, s, t0, store.Update{Op: store.OpAck, Topic: m.Topic, ID: m.ID, Group: "s-a"})
	again := m.Clone()
	again.NewID = false
	again.Seq = m.Seq + 1
	res := write(t, s, at(time.Minute), []*store.Message{again})
	require.True(t, res[0].Duplicate, "the NewID save left its dedup entry")
	require.Equal(t, m.Seq, res[0].Seq)
}

func testNoGroups(t *testing.T, f Factory) {
	s, _ := f.New(t)
	m := msg("trade") // nobody is bound: only the dedup entry is kept
	save(t, s, m)
	requireMissing(t, s, m.Topic, m.ID)
	res := write(t, s, t0, []*store.Message{m.Clone()})
	require.True(t, res[0].Duplicate)
}

func testDuePerGroup(t *testing.T, f Factory) {
	s, _ := f.New(t)
	a := msg("trade", "s-a")
	ab := msg("trade", "s-a", "s-b")
	later := msg("trade", "s-b")
	later.Groups[0].NextAttempt = at(time.Minute)
	save(t, s, a, ab, later)
	require.ElementsMatch(t, []string{a.ID, ab.ID}, due(t, s, "s-a", t0, 10))
	require.Equal(t, []string{ab.ID}, due(t, s, "s-b", t0, 10))
	require.ElementsMatch(t, []string{ab.ID, later.ID}, due(t, s, "s-b", at(time.Minute), 10))
	require.Empty(t, due(t, s, "s-c", at(time.Hour), 10))
}

func testDueOrderAndLimit(t *testing.T, f Factory) {
	s, _ := f.New(t)
	var want []string
	var ms []*store.Message
	for i := 0; i < 20; i++ {
		m := msg("trade", "s-a")
		// Ids ascend while due times descend, so order must come from time.
		m.Groups[0].NextAttempt = at(time.Duration(20-i) * time.Second)
		ms = append(ms, m)
	}
	for i := 19; i >= 0; i-- {
		want = append(want, ms[i].ID)
	}
	save(t, s, ms...)
	require.Equal(t, want[:5], due(t, s, "s-a", at(time.Hour), 5))
	require.Equal(t, want, due(t, s, "s-a", at(time.Hour), 100))
	require.Equal(t, want[:10], due(t, s, "s-a", at(10*time.Second), 100))
}

func testRetry(t *testing.T, f Factory) {
	s, _ := f.New(t)
	m := msg("trade", "s-a", "s-b")
	save(t, s, m)
	update(t, s, t0, store.Update{Op: store.OpRetry, Topic: m.Topic, ID: m.ID, Group: "s-a", Attempts: 4, Next: at(5 * time.Second)})
	require.Empty(t, due(t, s, "s-a", at(4*time.Second), 10))
	require.Equal(t, []string{m.ID}, due(t, s, "s-a", at(5*time.Second), 10))
	require.Equal(t, []string{m.ID}, due(t, s, "s-b", t0, 10), "another group is untouched")
	got := get(t, s, m.Topic, m.ID)
	st, ok := got.State("s-a")
	require.True(t, ok)
	require.Equal(t, 4, st.Attempts)
	require.True(t, st.NextAttempt.Equal(at(5*time.Second)))
	st, _ = got.State("s-b")
	require.Equal(t, 0, st.Attempts)
}

func testAck(t *testing.T, f Factory) {
	s, _ := f.New(t)
	m := msg("trade", "s-a", "s-b")
	save(t, s, m)
	update(t, s, t0, store.Update{Op: store.OpAck, Topic: m.Topic, ID: m.ID, Group: "s-a"})
	require.Empty(t, due(t, s, "s-a", at(time.Hour), 10))
	got := get(t, s, m.Topic, m.ID)
	require.Len(t, got.Groups, 1)
	// Acking again, or acking a group that is not pending, changes nothing.
	update(t, s, t0,
		store.Update{Op: store.OpAck, Topic: m.Topic, ID: m.ID, Group: "s-a"},
		store.Update{Op: store.OpAck, Topic: m.Topic, ID: m.ID, Group: "s-zzz"})
	require.Len(t, get(t, s, m.Topic, m.ID).Groups, 1)
	update(t, s, t0, store.Update{Op: store.OpAck, Topic: m.Topic, ID: m.ID, Group: "s-b"})
	requireMissing(t, s, m.Topic, m.ID)
	require.Empty(t, due(t, s, "s-b", at(time.Hour), 10))
}

func testDeadLetters(t *testing.T, f Factory) {
	s, _ := f.New(t)
	ctx := context.Background()
	m := msg("trade", "s-a", "s-b")
	save(t, s, m)
	update(t, s, at(time.Second), store.Update{Op: store.OpDead, Topic: m.Topic, ID: m.ID, Group: "s-a", Reason: "deliver limit"})
	require.Empty(t, due(t, s, "s-a", at(time.Hour), 10))
	require.Len(t, get(t, s, m.Topic, m.ID).Groups, 1)

	dl, total, err := s.DeadLetters(ctx, "trade", "s-a", 0, 10)
	require.NoError(t, err)
	require.Equal(t, 1, total)
	require.Len(t, dl, 1)
	require.Equal(t, "s-a", dl[0].Group)
	require.Equal(t, "deliver limit", dl[0].Reason)
	require.True(t, dl[0].At.Equal(at(time.Second)))
	want := m.Clone()
	want.Groups = nil
	requireEqualMessage(t, want, dl[0].Message)

	_, total, err = s.DeadLetters(ctx, "trade", "s-b", 0, 10)
	require.NoError(t, err)
	require.Zero(t, total)

	// The last group's dead letter deletes the message; both letters stay.
	update(t, s, at(2*time.Second), store.Update{Op: store.OpDead, Topic: m.Topic, ID: m.ID, Group: "s-b", Reason: "expired"})
	requireMissing(t, s, m.Topic, m.ID)
	_, total, err = s.DeadLetters(ctx, "trade", "s-b", 0, 10)
	require.NoError(t, err)
	require.Equal(t, 1, total)
}

func testDeadLetterPaging(t *testing.T, f Factory) {
	s, _ := f.New(t)
	var ids []string
	for i := 0; i < 7; i++ {
		m := msg("trade", "s-a")
		save(t, s, m)
		update(t, s, at(time.Duration(i)*time.Second), store.Update{Op: store.OpDead, Topic: m.Topic, ID: m.ID, Group: "s-a", Reason: "term"})
		ids = append(ids, m.ID)
	}
	var got []string
	for off := 0; off < 7; off += 3 {
		page, total, err := s.DeadLetters(context.Background(), "trade", "s-a", off, 3)
		require.NoError(t, err)
		require.Equal(t, 7, total)
		for _, d := range page {
			got = append(got, d.Message.ID)
		}
	}
	require.Equal(t, ids, got, "oldest first, each once")
}

func testReplay(t *testing.T, f Factory) {
	s, _ := f.New(t)
	ctx := context.Background()
	m := msg("trade", "s-a", "s-b")
	save(t, s, m)
	update(t, s, t0,
		store.Update{Op: store.OpDead, Topic: m.Topic, ID: m.ID, Group: "s-a", Reason: "term"},
		store.Update{Op: store.OpAck, Topic: m.Topic, ID: m.ID, Group: "s-b"})
	requireMissing(t, s, m.Topic, m.ID)

	has := func(group string) bool {
		t.Helper()
		ok, err := s.HasDeadLetter(ctx, m.Topic, group, m.ID)
		require.NoError(t, err)
		return ok
	}
	require.True(t, has("s-a"))
	require.False(t, has("s-b"), "acked, not dead")
	update(t, s, at(time.Minute), store.Update{Op: store.OpReplay, Topic: m.Topic, ID: m.ID, Group: "s-a", Next: at(time.Minute)})
	require.False(t, has("s-a"), "replayed")
	_, total, err := s.DeadLetters(ctx, "trade", "s-a", 0, 10)
	require.NoError(t, err)
	require.Zero(t, total)
	require.Equal(t, []string{m.ID}, due(t, s, "s-a", at(time.Minute), 10))
	require.Empty(t, due(t, s, "s-b", at(time.Hour), 10), "replay is for that group only")
	got := get(t, s, m.Topic, m.ID)
	require.Len(t, got.Groups, 1)
	require.Equal(t, 0, got.Groups[0].Attempts)
	require.Equal(t, m.Body, got.Body)

	// Replaying what is not a dead letter changes nothing.
	update(t, s, at(time.Minute), store.Update{Op: store.OpReplay, Topic: m.Topic, ID: m.ID, Group: "s-b", Next: at(time.Minute)})
	require.Len(t, get(t, s, m.Topic, m.ID).Groups, 1)
}

func testDiscard(t *testing.T, f Factory) {
	s, _ := f.New(t)
	ctx := context.Background()
	m, n := msg("trade", "s-a", "s-b"), msg("trade", "s-a")
	save(t, s, m)
	save(t, s, n)
	update(t, s, t0,
		store.Update{Op: store.OpDead, Topic: m.Topic, ID: m.ID, Group: "s-a", Reason: "term"},
		store.Update{Op: store.OpDead, Topic: n.Topic, ID: n.ID, Group: "s-a", Reason: "term"})
	_, total, err := s.DeadLetters(ctx, "trade", "s-a", 0, 10)
	require.NoError(t, err)
	require.Equal(t, 2, total)

	update(t, s, at(time.Minute), store.Update{Op: store.OpDiscard, Topic: m.Topic, ID: m.ID, Group: "s-a"})
	page, total, err := s.DeadLetters(ctx, "trade", "s-a", 0, 10)
	require.NoError(t, err)
	require.Equal(t, 1, total, "that letter only")
	require.Equal(t, n.ID, page[0].Message.ID)
	require.Equal(t, []string{m.ID}, due(t, s, "s-b", at(time.Hour), 10), "the other group's state is kept")
	require.Empty(t, due(t, s, "s-a", at(time.Hour), 10), "nothing is re-queued")
	stats, err := s.Stats(ctx)
	require.NoError(t, err)
	for _, g := range stats.Groups {
		if g.Topic == "trade" && g.Group == "s-a" {
			require.Equal(t, int64(1), g.Dead)
		}
	}

	// A discarded letter cannot be replayed, and discarding again is a no-op.
	update(t, s, at(time.Minute),
		store.Update{Op: store.OpReplay, Topic: m.Topic, ID: m.ID, Group: "s-a", Next: at(time.Minute)},
		store.Update{Op: store.OpDiscard, Topic: m.Topic, ID: m.ID, Group: "s-a"})
	require.Empty(t, due(t, s, "s-a", at(time.Hour), 10))
	_, total, err = s.DeadLetters(ctx, "trade", "s-a", 0, 10)
	require.NoError(t, err)
	require.Equal(t, 1, total)
}

func prepared(topic string) *store.Message {
	m := msg(topic)
	m.Prepared = true
	m.NextCheck = at(5 * time.Second)
	return m
}

func testPreparedCommit(t *testing.T, f Factory) {
	s, _ := f.New(t)
	m := prepared("trade")
	save(t, s, m)
	requireEqualMessage(t, m, get(t, s, m.Topic, m.ID))
	require.Empty(t, due(t, s, "s-a", at(time.Hour), 10))

	groups := []store.GroupState{{Group: "s-a", NextAttempt: at(time.Second)}}
	update(t, s, at(time.Second), store.Update{Op: store.OpCommit, Topic: m.Topic, ID: m.ID, Groups: groups})
	got := get(t, s, m.Topic, m.ID)
	require.False(t, got.Prepared)
	require.Len(t, got.Groups, 1)
	require.Equal(t, []string{m.ID}, due(t, s, "s-a", at(time.Second), 10))
	checks, err := s.DueChecks(context.Background(), at(time.Hour), 10)
	require.NoError(t, err)
	require.Empty(t, checks)

	// A second commit, or a rollback, of a committed message changes nothing.
	update(t, s, at(time.Second),
		store.Update{Op: store.OpCommit, Topic: m.Topic, ID: m.ID, Groups: []store.GroupState{{Group: "s-x"}}},
		store.Update{Op: store.OpRollback, Topic: m.Topic, ID: m.ID})
	got = get(t, s, m.Topic, m.ID)
	require.Len(t, got.Groups, 1)
	require.Equal(t, "s-a", got.Groups[0].Group)
}

func testPreparedRollback(t *testing.T, f Factory) {
	s, _ := f.New(t)
	m := prepared("trade")
	save(t, s, m)
	update(t, s, t0, store.Update{Op: store.OpRollback, Topic: m.Topic, ID: m.ID})
	requireMissing(t, s, m.Topic, m.ID)
	checks, err := s.DueChecks(context.Background(), at(time.Hour), 10)
	require.NoError(t, err)
	require.Empty(t, checks)
	// The dedup entry stays: a retried prepare is a duplicate.
	res := write(t, s, t0, []*store.Message{m.Clone()})
	require.True(t, res[0].Duplicate)
}

func testCommitWithoutGroups(t *testing.T, f Factory) {
	s, _ := f.New(t)
	m := prepared("trade")
	save(t, s, m)
	update(t, s, t0, store.Update{Op: store.OpCommit, Topic: m.Topic, ID: m.ID})
	requireMissing(t, s, m.Topic, m.ID)
}

func testChecksDue(t *testing.T, f Factory) {
	s, _ := f.New(t)
	ctx := context.Background()
	a, b := prepared("trade"), prepared("trade")
	b.NextCheck = at(10 * time.Second)
	save(t, s, a, b, msg("trade", "s-a"))
	checks, err := s.DueChecks(ctx, at(5*time.Second), 10)
	require.NoError(t, err)
	require.Len(t, checks, 1)
	require.Equal(t, a.ID, checks[0].ID)

	update(t, s, at(5*time.Second), store.Update{Op: store.OpCheck, Topic: a.Topic, ID: a.ID, Attempts: 1, Next: at(20 * time.Second)})
	checks, err = s.DueChecks(ctx, at(15*time.Second), 10)
	require.NoError(t, err)
	require.Len(t, checks, 1)
	require.Equal(t, b.ID, checks[0].ID)
	checks, err = s.DueChecks(ctx, at(time.Minute), 1)
	require.NoError(t, err)
	require.Len(t, checks, 1)
	require.Equal(t, b.ID, checks[0].ID, "earliest first")
	got := get(t, s, a.Topic, a.ID)
	require.Equal(t, 1, got.Checks)
	require.True(t, got.NextCheck.Equal(at(20*time.Second)))
}

func testUpdatesOnMissing(t *testing.T, f Factory) {
	s, _ := f.New(t)
	id := newID()
	update(t, s, t0,
		store.Update{Op: store.OpRetry, Topic: "trade", ID: id, Group: "s-a", Attempts: 3, Next: t0},
		store.Update{Op: store.OpAck, Topic: "trade", ID: id, Group: "s-a"},
		store.Update{Op: store.OpDead, Topic: "trade", ID: id, Group: "s-a", Reason: "x"},
		store.Update{Op: store.OpCommit, Topic: "trade", ID: id, Groups: []store.GroupState{{Group: "s-a"}}},
		store.Update{Op: store.OpRollback, Topic: "trade", ID: id},
		store.Update{Op: store.OpCheck, Topic: "trade", ID: id, Attempts: 1, Next: t0},
		store.Update{Op: store.OpReplay, Topic: "trade", ID: id, Group: "s-a", Next: t0},
		store.Update{Op: store.OpDiscard, Topic: "trade", ID: id, Group: "s-a"},
	)
	requireMissing(t, s, "trade", id)
	_, total, err := s.DeadLetters(context.Background(), "trade", "s-a", 0, 10)
	require.NoError(t, err)
	require.Zero(t, total)
	// A retry of a group that is not pending does not add it.
	m := msg("trade", "s-a")
	save(t, s, m)
	update(t, s, t0, store.Update{Op: store.OpRetry, Topic: m.Topic, ID: m.ID, Group: "s-b", Attempts: 1, Next: t0})
	require.Len(t, get(t, s, m.Topic, m.ID).Groups, 1)
}

func testStats(t *testing.T, f Factory) {
	s, _ := f.New(t)
	a1, a2 := msg("trade", "s-a", "s-b"), msg("trade", "s-a")
	save(t, s, a1, a2, msg("user", "s-a"), prepared("trade"))
	update(t, s, t0,
		store.Update{Op: store.OpDead, Topic: a1.Topic, ID: a1.ID, Group: "s-a", Reason: "term"},
		store.Update{Op: store.OpAck, Topic: a2.Topic, ID: a2.ID, Group: "s-a"})
	st, err := s.Stats(context.Background())
	require.NoError(t, err)
	require.Equal(t, []store.GroupStat{
		{Topic: "trade", Group: "s-a", Pending: 0, Dead: 1},
		{Topic: "trade", Group: "s-b", Pending: 1, Dead: 0},
		{Topic: "user", Group: "s-a", Pending: 1, Dead: 0},
	}, nonZero(st.Groups))
	require.Equal(t, []store.TopicStat{
		{Topic: "trade", Messages: 2, Prepared: 1},
		{Topic: "user", Messages: 1, Prepared: 0},
	}, nonZeroTopics(st.Topics))
}

// nonZero drops all-zero rows: a backend may keep or forget a (topic, group)
// whose counts fell to zero.
func nonZero(gs []store.GroupStat) []store.GroupStat {
	var out []store.GroupStat
	for _, g := range gs {
		if g.Pending != 0 || g.Dead != 0 {
			out = append(out, g)
		}
	}
	return out
}

func nonZeroTopics(ts []store.TopicStat) []store.TopicStat {
	var out []store.TopicStat
	for _, x := range ts {
		if x.Messages != 0 || x.Prepared != 0 {
			out = append(out, x)
		}
	}
	return out
}

func testOddTopics(t *testing.T, f Factory) {
	s, _ := f.New(t)
	topics := []string{"a:b", "a/b", "pay.succ 200", "ünï", "a", "ab", "a\x00b"}
	var ms []*store.Message
	for _, tp := range topics {
		m := msg(tp, "s:a/b")
		m.MessageType = tp + "-type"
		ms = append(ms, m)
	}
	save(t, s, ms...)
	for _, m := range ms {
		requireEqualMessage(t, m, get(t, s, m.Topic, m.ID))
	}
	require.Len(t, due(t, s, "s:a/b", t0, 100), len(topics))
	require.Empty(t, due(t, s, "s:a", t0, 100))
	for _, m := range ms {
		update(t, s, t0, store.Update{Op: store.OpAck, Topic: m.Topic, ID: m.ID, Group: "s:a/b"})
		requireMissing(t, s, m.Topic, m.ID)
	}
}

func testLargeBody(t *testing.T, f Factory) {
	s, _ := f.New(t)
	m := msg("trade", "s-a")
	m.Body = []byte(strings.Repeat("0123456789abcdef", 1<<16)) // 1 MiB
	save(t, s, m)
	require.Equal(t, m.Body, get(t, s, m.Topic, m.ID).Body)
}

func testConcurrentWrites(t *testing.T, f Factory) {
	s, _ := f.New(t)
	const writers, each = 8, 50
	var wg sync.WaitGroup
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < each; i++ {
				m := msg(fmt.Sprintf("t%d", w%2), "s-a")
				if _, err := s.Write(context.Background(), &store.Batch{Now: t0, DedupWindow: time.Minute, Saves: []*store.Message{m}}); err != nil {
					t.Error(err)
					return
				}
				if i%2 == 0 {
					_, err := s.Write(context.Background(), &store.Batch{Now: t0, Updates: []store.Update{{Op: store.OpAck, Topic: m.Topic, ID: m.ID, Group: "s-a"}}})
					if err != nil {
						t.Error(err)
						return
					}
				}
			}
		}()
	}
	wg.Wait()
	require.Len(t, due(t, s, "s-a", t0, 10*writers*each), writers*each/2)
}

func testReopen(t *testing.T, f Factory) {
	s, reopen := f.New(t)
	if reopen == nil {
		t.Skip("backend keeps nothing across a restart")
	}
	m := msg("trade", "s-a", "s-b")
	p := prepared("trade")
	d := msg("trade", "s-a")
	gone := msg("trade", "s-a")
	save(t, s, m, p, d, gone)
	update(t, s, t0,
		store.Update{Op: store.OpRetry, Topic: m.Topic, ID: m.ID, Group: "s-a", Attempts: 5, Next: at(10 * time.Second)},
		store.Update{Op: store.OpDead, Topic: d.Topic, ID: d.ID, Group: "s-a", Reason: "limit"},
		store.Update{Op: store.OpAck, Topic: gone.Topic, ID: gone.ID, Group: "s-a"})
	want := get(t, s, m.Topic, m.ID)

	s = reopen()
	requireEqualMessage(t, want, get(t, s, m.Topic, m.ID))
	requireEqualMessage(t, p, get(t, s, p.Topic, p.ID))
	requireMissing(t, s, gone.Topic, gone.ID)
	require.Equal(t, []string{m.ID}, due(t, s, "s-b", t0, 10))
	require.Equal(t, []string{m.ID}, due(t, s, "s-a", at(10*time.Second), 10))
	checks, err := s.DueChecks(context.Background(), at(time.Hour), 10)
	require.NoError(t, err)
	require.Len(t, checks, 1)
	_, total, err := s.DeadLetters(context.Background(), "trade", "s-a", 0, 10)
	require.NoError(t, err)
	require.Equal(t, 1, total)
	res := write(t, s, at(time.Minute), []*store.Message{gone.Clone()})
	require.True(t, res[0].Duplicate, "the dedup window survives a restart")
	st, err := s.Stats(context.Background())
	require.NoError(t, err)
	require.Equal(t, []store.TopicStat{{Topic: "trade", Messages: 2, Prepared: 1}}, nonZeroTopics(st.Topics))
}

func testBindings(t *testing.T, f Factory) {
	s, reopen := f.New(t)
	bs, ok := s.(store.BindingStore)
	if !ok {
		t.Skip("backend does not keep bindings")
	}
	ctx := context.Background()
	require.NoError(t, bs.SaveBindings(ctx, "s-a", []byte(`[1]`)))
	require.NoError(t, bs.SaveBindings(ctx, "s-b", []byte(`[2]`)))
	require.NoError(t, bs.SaveBindings(ctx, "s-a", []byte(`[3]`)))
	require.NoError(t, bs.SaveBindings(ctx, "s-c", []byte(`[4]`)))
	require.NoError(t, bs.SaveBindings(ctx, "s-c", nil))
	all, err := bs.LoadBindings(ctx)
	require.NoError(t, err)
	require.Equal(t, map[string][]byte{"s-a": []byte(`[3]`), "s-b": []byte(`[2]`)}, all)
	if reopen == nil {
		return
	}
	bs = reopen().(store.BindingStore)
	all, err = bs.LoadBindings(ctx)
	require.NoError(t, err)
	require.Equal(t, map[string][]byte{"s-a": []byte(`[3]`), "s-b": []byte(`[2]`)}, all)
}

func testClosed(t *testing.T, f Factory) {
	s, _ := f.New(t)
	require.NoError(t, s.Close())
	require.NoError(t, s.Close(), "Close is idempotent")
	_, err := s.Write(context.Background(), &store.Batch{Now: t0, Saves: []*store.Message{msg("trade", "s-a")}})
	require.ErrorIs(t, err, store.ErrClosed)
	_, err = s.Get(context.Background(), "trade", newID())
	require.ErrorIs(t, err, store.ErrClosed)
	_, err = s.Due(context.Background(), "s-a", t0, 1)
	require.ErrorIs(t, err, store.ErrClosed)
}
