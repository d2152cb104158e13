package storetest

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sort"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kitenats/kitenats/store"
)

// model is the simplest store that could work: maps and scans. The
// randomized test checks a backend against it.
type model struct {
	msgs  map[[2]string]*store.Message
	dedup map[[2]string]time.Time // until
	seqs  map[[2]string]uint64
	dead  map[[3]string][]*store.Message // (topic, group, id) → letters, oldest first
}

func newModel() *model {
	return &model{
		msgs:  make(map[[2]string]*store.Message),
		dedup: make(map[[2]string]time.Time),
		seqs:  make(map[[2]string]uint64),
		dead:  make(map[[3]string][]*store.Message),
	}
}

func (md *model) save(now time.Time, m *store.Message) store.SaveResult {
	k := [2]string{m.Topic, m.ID}
	if old, ok := md.msgs[k]; ok {
		return store.SaveResult{Duplicate: true, Seq: old.Seq}
	}
	if until, ok := md.dedup[k]; ok && until.After(now) {
		return store.SaveResult{Duplicate: true, Seq: md.seqs[k]}
	}
	md.dedup[k], md.seqs[k] = now.Add(2*time.Minute), m.Seq
	if len(m.Groups) > 0 || m.Prepared {
		md.msgs[k] = m.Clone()
	}
	return store.SaveResult{Seq: m.Seq}
}

func (md *model) apply(u store.Update) {
	k := [2]string{u.Topic, u.ID}
	m := md.msgs[k]
	idx := -1
	if m != nil {
		for i, g := range m.Groups {
			if g.Group == u.Group {
				idx = i
			}
		}
	}
	switch u.Op {
	case store.OpRetry:
		if idx >= 0 && !m.Prepared {
			m.Groups[idx].Attempts, m.Groups[idx].NextAttempt = u.Attempts, u.Next
		}
	case store.OpAck, store.OpDead:
		if idx < 0 {
			return
		}
		if u.Op == store.OpDead {
			d := m.Clone()
			d.Groups = nil
			dk := [3]string{u.Topic, u.Group, u.ID}
			md.dead[dk] = append(md.dead[dk], d)
		}
		m.Groups = append(m.Groups[:idx], m.Groups[idx+1:]...)
		if len(m.Groups) == 0 {
			delete(md.msgs, k)
		}
	case store.OpCommit:
		if m == nil || !m.Prepared {
			return
		}
		m.Prepared = false
		m.Groups = append([]store.GroupState(nil), u.Groups...)
		if len(m.Groups) == 0 {
			delete(md.msgs, k)
		}
	case store.OpRollback:
		if m != nil && m.Prepared {
			delete(md.msgs, k)
		}
	case store.OpCheck:
		if m != nil && m.Prepared {
			m.Checks, m.NextCheck = u.Attempts, u.Next
		}
	case store.OpReplay, store.OpDiscard:
		dk := [3]string{u.Topic, u.Group, u.ID}
		letters := md.dead[dk]
		if len(letters) == 0 {
			return
		}
		d := letters[0]
		if md.dead[dk] = letters[1:]; len(letters) == 1 {
			delete(md.dead, dk)
		}
		if u.Op == store.OpDiscard {
			return
		}
		g := store.GroupState{Group: u.Group, NextAttempt: u.Next}
		if m == nil {
			m = d.Clone()
			md.msgs[k] = m
		}
		if idx < 0 {
			m.Groups = append(m.Groups, g)
		}
	}
}

// due lists the ids due for group at now, as Due must (any order).
func (md *model) due(group string, now time.Time) []string {
	var ids []string
	for _, m := range md.msgs {
		if st, ok := m.State(group); ok && !m.Prepared && !st.NextAttempt.After(now) {
			ids = append(ids, m.ID)
		}
	}
	sort.Strings(ids)
	return ids
}

// testRandomized runs random operations against the backend and the model
// and compares them after every batch. The seed is printed; rerun one with
// KITENATS_STORE_SEED.
func testRandomized(t *testing.T, f Factory) {
	s, reopen := f.New(t)
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	r := rand.New(rand.NewPCG(seed, 7))
	md := newModel()
	ctx := context.Background()
	groups := []string{"s-a", "s-b", "s-c"}
	topics := []string{"t1", "t2"}
	var ids []string // ids ever used (a small pool so that ops collide)
	for i := 0; i < 24; i++ {
		ids = append(ids, newID())
	}
	now := t0
	for step := 0; step < 300; step++ {
		now = now.Add(time.Duration(r.IntN(20)) * time.Second)
		b := &store.Batch{Now: now, DedupWindow: 2 * time.Minute}
		for n := r.IntN(4) + 1; n > 0; n-- {
			topic, id, group := topics[r.IntN(len(topics))], ids[r.IntN(len(ids))], groups[r.IntN(len(groups))]
			if r.IntN(3) == 0 {
				m := msg(topic)
				m.ID = id
				if r.IntN(4) == 0 {
					m.Prepared, m.NextCheck = true, now.Add(time.Duration(r.IntN(30))*time.Second)
				} else {
					for _, g := range groups[:r.IntN(len(groups))+1] {
						m.Groups = append(m.Groups, store.GroupState{Group: g, NextAttempt: now.Add(time.Duration(r.IntN(30)) * time.Second)})
					}
				}
				b.Saves = append(b.Saves, m)
				continue
			}
			u := store.Update{Op: store.Op(r.IntN(int(store.OpDiscard)) + 1), Topic: topic, ID: id, Group: group,
				Attempts: r.IntN(5), Next: now.Add(time.Duration(r.IntN(60)) * time.Second)}
			if u.Op == store.OpCommit && r.IntN(3) > 0 {
				u.Groups = []store.GroupState{{Group: group, NextAttempt: now}}
			}
			b.Updates = append(b.Updates, u)
		}
		res, err := s.Write(ctx, b)
		require.NoError(t, err, "seed %d step %d", seed, step)
		for i, m := range b.Saves {
			want := md.save(now, m)
			require.Equal(t, want.Duplicate, res[i].Duplicate, "seed %d step %d save %s", seed, step, m.ID)
			require.Equal(t, want.Seq, res[i].Seq, "seed %d step %d save %s", seed, step, m.ID)
		}
		for _, u := range b.Updates {
			md.apply(u)
		}
		if reopen != nil && step%97 == 96 {
			s = reopen()
		}
		compareModel(t, s, md, now, groups, topics, ids, fmt.Sprintf("seed %d step %d", seed, step))
	}
}

func compareModel(t *testing.T, s store.Store, md *model, now time.Time, groups, topics, ids []string, where string) {
	t.Helper()
	ctx := context.Background()
	for _, topic := range topics {
		for _, id := range ids {
			got, err := s.Get(ctx, topic, id)
			want, ok := md.msgs[[2]string{topic, id}]
			if !ok {
				require.ErrorIs(t, err, store.ErrNotFound, "%s: %s/%s", where, topic, id)
				continue
			}
			require.NoError(t, err, "%s: %s/%s", where, topic, id)
			requireEqualMessage(t, want, got)
		}
		for _, g := range groups {
			n := 0
			for k, letters := range md.dead {
				if k[0] == topic && k[1] == g {
					n += len(letters)
				}
			}
			_, total, err := s.DeadLetters(ctx, topic, g, 0, 1)
			require.NoError(t, err)
			require.Equal(t, n, total, "%s: dead letters of %s/%s", where, topic, g)
		}
	}
	for _, g := range groups {
		ms, err := s.Due(ctx, g, now, 1000)
		require.NoError(t, err)
		var got []string
		for _, m := range ms {
			got = append(got, m.ID)
		}
		sort.Strings(got)
		require.Equal(t, md.due(g, now), got, "%s: due for %s", where, g)
	}
}
