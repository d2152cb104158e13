package rocksdb

import (
	"bytes"
	"maps"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/kitenats/kitenats/store"
)

// dbState is every key of a store, grouped by what it is.
type dbState struct {
	msgs    map[string]*store.Message // by message key
	due     map[string]bool
	checks  map[string]bool
	dead    map[string]store.DeadLetter // by dead letter key
	refs    map[string][]uint64         // by reference key
	dedup   map[string]bool
	flagged map[string]bool // records with flagDeferred
	unknown []string
}

// readState reads every key of s at one snapshot. Caller holds s.life.
func readState(t testing.TB, s *Store) dbState {
	t.Helper()
	st := dbState{
		msgs: map[string]*store.Message{}, due: map[string]bool{}, checks: map[string]bool{},
		dead: map[string]store.DeadLetter{}, refs: map[string][]uint64{},
		dedup: map[string]bool{}, flagged: map[string]bool{},
	}
	v := s.newView(true)
	defer v.close()
	err := v.scan([]byte{0}, []byte{0xFF}, func(k, val []byte) error {
		ks, val := string(k), bytes.Clone(val)
		var err error
		switch k[0] {
		case prefixMessage:
			st.msgs[ks], err = decodeMessage(val)
			st.flagged[ks] = recordDeferred(val)
		case prefixDue:
			st.due[ks] = true
		case prefixCheck:
			st.checks[ks] = true
		case prefixDead:
			st.dead[ks], err = decodeDead(val)
		case prefixDeadRef:
			st.refs[ks], err = decodeSeqs(val)
		case prefixDedup:
			st.dedup[ks] = true
		case prefixBinding, prefixMeta:
		default:
			st.unknown = append(st.unknown, ks)
		}
		return err
	})
	require.NoError(t, err)
	// The records put since the journal last rotated are in s.hot.
	s.hot.mu.RLock()
	defer s.hot.mu.RUnlock()
	for k, r := range s.hot.m {
		delete(st.msgs, k)
		delete(st.flagged, k)
		if r.val != nil {
			st.msgs[k], err = decodeMessage(r.val)
			require.NoError(t, err)
			st.flagged[k] = recordDeferred(r.val)
		}
	}
	return st
}

// checkInvariants verifies that the indexes, the dead letter references
// and the in-memory counters agree with the stored records.
func checkInvariants(t testing.TB, s *Store) {
	t.Helper()
	s.life.RLock()
	defer s.life.RUnlock()
	if s.closed {
		return
	}
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	st := readState(t, s)
	require.Empty(t, st.unknown, "keys with an unknown prefix")
	want := newCounts()
	wantDue, wantChecks := map[string]bool{}, map[string]bool{}
	for k, m := range st.msgs {
		require.Equal(t, string(msgKey(m.Topic, m.ID)), k, "record stored under its own key")
		require.True(t, m.Prepared || len(m.Groups) > 0, "a stored message has a group or is prepared: %s", m.ID)
		seen := map[string]bool{}
		for _, g := range m.Groups {
			require.False(t, seen[g.Group], "group %q twice in %s", g.Group, m.ID)
			seen[g.Group] = true
			if !m.Prepared {
				wantDue[string(dueKey(g.Group, timeKey(g.NextAttempt), m.Topic, m.ID))] = true
			}
		}
		if m.Prepared {
			wantChecks[string(checkKey(timeKey(m.NextCheck), m.Topic, m.ID))] = true
		}
		want.addMessage(m, +1)
	}
	// The due index is the "d" keys plus the deferred ones, never both, and
	// a record with a deferred key is flagged.
	due := maps.Clone(st.due)
	s.deferred.mu.Lock()
	for name, g := range s.deferred.groups {
		for r := range g.keys {
			k := string(r.key())
			require.Equal(t, name, r.group, "deferred key %q filed under its group", k)
			require.False(t, st.due[k], "due key %q both written and deferred", k)
			require.True(t, st.flagged[string(msgKey(r.topic, r.id))], "record of deferred key %q flagged", k)
			require.GreaterOrEqual(t, r.tk, g.min, "group min is a lower bound")
			due[k] = true
		}
	}
	s.deferred.mu.Unlock()
	require.Equal(t, wantDue, due, "due index = pending states of committed messages")
	require.Equal(t, wantChecks, st.checks, "check index = prepared messages")
	checkDead(t, s, st, &want)
	s.counters.mu.Lock()
	defer s.counters.mu.Unlock()
	require.Equal(t, want, s.counters.c, "in-memory counters = a recount")
}

// checkDead verifies that each dead letter is referenced exactly once, by
// the reference of its own (topic, group, id), and counts the letters.
func checkDead(t testing.TB, s *Store, st dbState, want *counts) {
	t.Helper()
	referenced := map[string]bool{}
	for rk, seqs := range st.refs {
		for _, seq := range seqs {
			var dl store.DeadLetter
			for lk, d := range st.dead {
				if _, _, n, _ := splitDeadKey([]byte(lk)); n == seq {
					dl = d
					require.False(t, referenced[lk], "letter %q referenced twice", lk)
					referenced[lk] = true
				}
			}
			require.NotNil(t, dl.Message, "reference %q to missing letter %d", rk, seq)
			require.Equal(t, string(deadRefKey(dl.Message.Topic, dl.Group, dl.Message.ID)), rk)
		}
	}
	for lk, dl := range st.dead {
		require.True(t, referenced[lk], "letter %q not referenced", lk)
		topic, group, seq, err := splitDeadKey([]byte(lk))
		require.NoError(t, err)
		require.Equal(t, dl.Message.Topic, topic)
		require.Equal(t, dl.Group, group)
		require.Empty(t, dl.Message.Groups)
		require.LessOrEqual(t, seq, s.deadSeq)
		want.dead[tgKey{topic, group}]++
	}
}

// logicalState is readState with the deferred due keys counted as written
// and no record flagged: what a reopen turns the store into.
func logicalState(t testing.TB, s *Store) dbState {
	t.Helper()
	st := readState(t, s)
	s.deferred.mu.Lock()
	defer s.deferred.mu.Unlock()
	for _, g := range s.deferred.groups {
		for r := range g.keys {
			st.due[string(r.key())] = true
		}
	}
	for k := range st.flagged {
		st.flagged[k] = false
	}
	return st
}
