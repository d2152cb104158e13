// Package storetest is the conformance suite every store.Store backend passes.
//
// A backend's test calls Run with a Factory; each sub-test gets a fresh, empty
// store. Backends that survive a restart provide a reopen function, and the
// suite then also checks that everything written survives it.
package storetest

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kitenats/kitenats/store"
)

// Factory opens stores for the suite.
type Factory struct {
	// New opens an empty store in a fresh place (t.TempDir, a new database)
	// and registers its cleanup with t. reopen, nil for a backend that keeps
	// nothing across a restart, closes the given store and opens the same
	// place again.
	New func(t testing.TB) (s store.Store, reopen func() store.Store)
}

// Run runs the whole suite.
func Run(t *testing.T, f Factory) {
	tests := []struct {
		name string
		fn   func(*testing.T, Factory)
	}{
		{"SaveGet", testSaveGet},
		{"GetMissing", testGetMissing},
		{"Duplicate", testDuplicate},
		{"DuplicateOutlivesMessage", testDuplicateOutlivesMessage},
		{"DuplicateExpires", testDuplicateExpires},
		{"DuplicateInOneBatch", testDuplicateInOneBatch},
		{"NewIDSave", testNewIDSave},
		{"NoGroupsStoresNothing", testNoGroups},
		{"DuePerGroup", testDuePerGroup},
		{"DueOrderAndLimit", testDueOrderAndLimit},
		{"RetryMovesNextAttempt", testRetry},
		{"AckDeletesAfterLastGroup", testAck},
		{"DeadLetters", testDeadLetters},
		{"DeadLetterPaging", testDeadLetterPaging},
		{"Replay", testReplay},
		{"Discard", testDiscard},
		{"PreparedCommit", testPreparedCommit},
		{"PreparedRollback", testPreparedRollback},
		{"CommitWithoutGroupsDeletes", testCommitWithoutGroups},
		{"ChecksDue", testChecksDue},
		{"UpdatesOnMissingAreNoops", testUpdatesOnMissing},
		{"Stats", testStats},
		{"OddTopicNames", testOddTopics},
		{"LargeBody", testLargeBody},
		{"ConcurrentWrites", testConcurrentWrites},
		{"Reopen", testReopen},
		{"Bindings", testBindings},
		{"Randomized", testRandomized},
		{"Closed", testClosed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { tt.fn(t, f) })
	}
}

// t0 is the suite's clock origin, at millisecond precision: backends keep
// times at least to the millisecond.
var t0 = time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)

func at(d time.Duration) time.Time { return t0.Add(d) }

var idSeq struct {
	sync.Mutex
	n int
}

// newID returns a fresh 32-hex-digit id and its sequence number.
func newID() string {
	id, _ := nextID()
	return id
}

func nextID() (string, uint64) {
	idSeq.Lock()
	defer idSeq.Unlock()
	idSeq.n++
	return fmt.Sprintf("%032x", idSeq.n), uint64(idSeq.n)
}

// msg returns a committed message of topic with one pending state per group,
// all due at t0.
func msg(topic string, groups ...string) *store.Message {
	id, seq := nextID()
	m := &store.Message{
		Topic:        topic,
		ID:           id,
		MessageType:  "pay-succ",
		Group:        "p-trade",
		BodyType:     store.BodyBytes,
		Body:         []byte("hello"),
		Properties:   []store.Property{{Key: "b", Value: "2"}, {Key: "a", Value: "1"}},
		Created:      at(-time.Second),
		Expires:      at(7 * 24 * time.Hour),
		DeliverLimit: 100,
		Seq:          seq,
	}
	for _, g := range groups {
		m.Groups = append(m.Groups, store.GroupState{Group: g, NextAttempt: t0})
	}
	return m
}

func write(t testing.TB, s store.Store, now time.Time, saves []*store.Message, ups ...store.Update) []store.SaveResult {
	t.Helper()
	res, err := s.Write(context.Background(), &store.Batch{
		Now: now, DedupWindow: 2 * time.Minute, Saves: saves, Updates: ups,
	})
	require.NoError(t, err)
	require.Len(t, res, len(saves))
	return res
}

func save(t testing.TB, s store.Store, ms ...*store.Message) {
	t.Helper()
	for i, r := range write(t, s, t0, ms) {
		require.NoError(t, r.Err, "save %d", i)
		require.False(t, r.Duplicate, "save %d", i)
	}
}

func update(t testing.TB, s store.Store, now time.Time, ups ...store.Update) {
	t.Helper()
	write(t, s, now, nil, ups...)
}

func get(t testing.TB, s store.Store, topic, id string) *store.Message {
	t.Helper()
	m, err := s.Get(context.Background(), topic, id)
	require.NoError(t, err)
	return m
}

func requireMissing(t testing.TB, s store.Store, topic, id string) {
	t.Helper()
	_, err := s.Get(context.Background(), topic, id)
	require.ErrorIs(t, err, store.ErrNotFound)
}

func due(t testing.TB, s store.Store, group string, now time.Time, limit int) []string {
	t.Helper()
	ms, err := s.Due(context.Background(), group, now, limit)
	require.NoError(t, err)
	ids := make([]string, len(ms))
	for i, m := range ms {
		require.False(t, m.Prepared)
		_, ok := m.State(group)
		require.True(t, ok, "due message %s has no state for %s", m.ID, group)
		ids[i] = m.ID
	}
	return ids
}

// requireEqualMessage compares two messages, treating nil and empty slices
// alike and times by instant.
func requireEqualMessage(t testing.TB, want, got *store.Message) {
	t.Helper()
	norm := func(m *store.Message) store.Message {
		c := *m.Clone()
		if len(c.Body) == 0 {
			c.Body = nil
		}
		if len(c.Properties) == 0 {
			c.Properties = nil
		}
		if len(c.Groups) == 0 {
			c.Groups = nil
		}
		sort.Slice(c.Groups, func(i, j int) bool { return c.Groups[i].Group < c.Groups[j].Group })
		c.Created = c.Created.UTC()
		c.Expires = c.Expires.UTC()
		if c.NextCheck.IsZero() {
			c.NextCheck = time.Time{}
		} else {
			c.NextCheck = c.NextCheck.UTC()
		}
		for i := range c.Groups {
			c.Groups[i].NextAttempt = c.Groups[i].NextAttempt.UTC()
		}
		return c
	}
	require.Equal(t, norm(want), norm(got))
}
