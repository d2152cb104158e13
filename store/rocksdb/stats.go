package rocksdb

import (
	"bytes"
	"cmp"
	"context"
	"fmt"
	"math"
	"slices"
	"sync"

	"github.com/kitenats/kitenats/store"
)

type tgKey struct{ topic, group string }

type topicCount struct{ messages, prepared int64 }

// counts holds the statistics, or a change to them made by one Write.
type counts struct {
	pending map[tgKey]int64
	dead    map[tgKey]int64
	topics  map[string]topicCount
}

func newCounts() counts {
	return counts{
		pending: make(map[tgKey]int64),
		dead:    make(map[tgKey]int64),
		topics:  make(map[string]topicCount),
	}
}

// addMessage counts m (sign +1) or uncounts it (sign -1): the message, and
// one pending state per group it still has.
func (c *counts) addMessage(m *store.Message, sign int64) {
	tc := c.topics[m.Topic]
	tc.messages += sign
	if m.Prepared {
		tc.prepared += sign
	}
	c.topics[m.Topic] = tc
	for _, g := range m.Groups {
		c.pending[tgKey{m.Topic, g.Group}] += sign
	}
}

// merge adds d to c and forgets rows that fell to zero, so the maps stay
// as small as the set of live (topic, group) pairs.
func (c *counts) merge(d counts) {
	for k, n := range d.pending {
		if c.pending[k] += n; c.pending[k] == 0 {
			delete(c.pending, k)
		}
	}
	for k, n := range d.dead {
		if c.dead[k] += n; c.dead[k] == 0 {
			delete(c.dead, k)
		}
	}
	for k, n := range d.topics {
		tc := c.topics[k]
		tc.messages += n.messages
		tc.prepared += n.prepared
		if tc == (topicCount{}) {
			delete(c.topics, k)
		} else {
			c.topics[k] = tc
		}
	}
}

// counters are the statistics of the whole store, kept in memory: rebuilt
// by one scan at Open, changed by each Write after its batch is written.
type counters struct {
	mu sync.Mutex // guards c
	c  counts
}

func newCounters() counters { return counters{c: newCounts()} }

func (cs *counters) merge(d counts) {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	cs.c.merge(d)
}

func (cs *counters) deadCount(topic, group string) int64 {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	return cs.c.dead[tgKey{topic, group}]
}

// snapshot returns the statistics sorted by topic then group.
func (cs *counters) snapshot() store.Stats {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	rows := make(map[tgKey]*store.GroupStat)
	row := func(k tgKey) *store.GroupStat {
		if rows[k] == nil {
			rows[k] = &store.GroupStat{Topic: k.topic, Group: k.group}
		}
		return rows[k]
	}
	for k, n := range cs.c.pending {
		row(k).Pending = n
	}
	for k, n := range cs.c.dead {
		row(k).Dead = n
	}
	var st store.Stats
	for _, r := range rows {
		st.Groups = append(st.Groups, *r)
	}
	for t, n := range cs.c.topics {
		st.Topics = append(st.Topics, store.TopicStat{Topic: t, Messages: n.messages, Prepared: n.prepared})
	}
	slices.SortFunc(st.Groups, func(a, b store.GroupStat) int {
		return cmp.Or(cmp.Compare(a.Topic, b.Topic), cmp.Compare(a.Group, b.Group))
	})
	slices.SortFunc(st.Topics, func(a, b store.TopicStat) int { return cmp.Compare(a.Topic, b.Topic) })
	return st
}

// Stats implements store.Store. The counters live in memory (see doc.go):
// Stats costs O(topics × groups), never a scan.
func (s *Store) Stats(context.Context) (store.Stats, error) {
	s.life.RLock()
	defer s.life.RUnlock()
	if s.closed {
		return store.Stats{}, errClosed("stats")
	}
	return s.counters.snapshot(), nil
}

// rebuild recomputes the counters and the last dead letter sequence with
// one scan of the messages and the dead letter keys. Called by Open only.
func (s *Store) rebuild() error {
	v := s.newView(true)
	defer v.close()
	c := newCounts()
	var flagged [][]byte
	err := v.scan([]byte{prefixMessage}, []byte{prefixMessage + 1}, func(k, val []byte) error {
		m, err := decodeMessage(val)
		if err != nil {
			return fmt.Errorf("message key %q: %w", k, err)
		}
		c.addMessage(m, +1)
		if recordDeferred(val) {
			flagged = append(flagged, bytes.Clone(k))
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("rocksdb: open: rebuild: %w", err)
	}
	err = v.scan([]byte{prefixDead}, []byte{prefixDead + 1}, func(k, _ []byte) error {
		topic, group, seq, err := splitDeadKey(k)
		if err != nil {
			return fmt.Errorf("dead letter key %q: %w", k, err)
		}
		c.dead[tgKey{topic, group}]++
		s.deadSeq = max(s.deadSeq, seq)
		return nil
	})
	if err != nil {
		return fmt.Errorf("rocksdb: open: rebuild: %w", err)
	}
	s.counters.c = c
	if err := s.undefer(flagged); err != nil {
		return fmt.Errorf("rocksdb: open: write deferred due keys: %w", err)
	}
	return nil
}

// dueHints remembers, per group, a time key below which the group's due
// index has no entry, so that Due seeks past the tombstones that acked
// messages leave at the head of the index until compaction.
//
// A hint rises only when a Due scan ends, to the first key its snapshot
// showed, lowered by every due key a Write put while the scan ran (a Write
// lowers the hints after its batch is visible and before it returns, so a
// scan either sees the key in its snapshot or hears of it). It stays a
// lower bound of the live keys at all times.
type dueHints struct {
	mu    sync.Mutex // guards from and scans
	from  map[string]uint64
	scans map[string][]*dueScan // scans in progress, per group
}

// dueScan is one Due scan in progress.
type dueScan struct {
	group string
	low   uint64 // lowest due key put for group since the scan began
}

func newDueHints() dueHints {
	return dueHints{from: make(map[string]uint64), scans: make(map[string][]*dueScan)}
}

// begin registers a scan of group, before its snapshot is taken, and
// returns where the scan may start.
func (h *dueHints) begin(group string) (*dueScan, uint64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	sc := &dueScan{group: group, low: math.MaxUint64}
	h.scans[group] = append(h.scans[group], sc)
	return sc, h.from[group]
}

// end unregisters sc. When the scan completed, bound is a time key below
// which its snapshot had no entry, and the hint may rise to it.
func (h *dueHints) end(sc *dueScan, bound uint64, completed bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	scans := h.scans[sc.group]
	if i := slices.Index(scans, sc); i >= 0 {
		scans = slices.Delete(scans, i, i+1)
	}
	if len(scans) == 0 {
		delete(h.scans, sc.group)
	} else {
		h.scans[sc.group] = scans
	}
	if b := min(bound, sc.low); completed && b > h.from[sc.group] {
		h.from[sc.group] = b
	}
}

// lower accounts for the due keys a Write put: puts maps each group to the
// lowest time key put for it.
func (h *dueHints) lower(puts map[string]uint64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for g, tk := range puts {
		if cur, ok := h.from[g]; ok && tk < cur {
			h.from[g] = tk
		}
		for _, sc := range h.scans[g] {
			sc.low = min(sc.low, tk)
		}
	}
}
