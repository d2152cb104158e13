package rocksdb

import (
	"fmt"
	"slices"
	"sync"

	"github.com/linxGnu/grocksdb"
)

// deferredIndex keeps, in memory, the due keys of group states whose next
// attempt was still to come when they were written: a delivery's lease or
// a retry window. The broker nearly always writes such a state again before
// it is due (the consumer acks, or the delivery fails), so its "d" key would
// be put and deleted again at once: two memtable inserts per delivery that
// this index saves. Due reads it beside the "d" range.
//
// Crash safety: a record with a deferred due key carries flagDeferred, in
// the same WriteBatch that would have put the key. Open writes the "d" keys
// of every flagged record (those not there yet) and clears the flag
// (undefer), so after a restart every pending state is in the "d" range
// again. A flag may be stale (set with nothing deferred any more); that
// costs Open a point read, nothing else.
//
// The index is bounded (deferCap keys): past it, due keys are written as
// before. Its changes are applied by commit, after the WriteBatch is
// written, under writeMu; Due reads it under mu.
type deferredIndex struct {
	mu     sync.Mutex
	groups map[string]*deferredGroup
	n      int
}

// deferCap bounds the deferred keys of a Store.
const deferCap = 1 << 16

type deferredGroup struct {
	keys map[dueRef]struct{}
	min  uint64 // no key has a time key below it (may be low)
}

// dueRef is one due key, split: the index's map key, so that a lookup
// builds no key bytes (dueKey encodes it when it is written).
type dueRef struct {
	group     string
	tk        uint64
	topic, id string
}

func (r dueRef) key() []byte { return dueKey(r.group, r.tk, r.topic, r.id) }

func newDeferredIndex() *deferredIndex {
	return &deferredIndex{groups: make(map[string]*deferredGroup)}
}

// has reports whether due key r is deferred.
func (d *deferredIndex) has(r dueRef) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	g := d.groups[r.group]
	if g == nil {
		return false
	}
	_, ok := g.keys[r]
	return ok
}

// size is the number of deferred keys.
func (d *deferredIndex) size() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.n
}

// apply adds and removes keys, once the batch that deferred (or dropped)
// them is written.
func (d *deferredIndex) apply(adds, dels map[dueRef]struct{}) {
	if len(adds) == 0 && len(dels) == 0 {
		return
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	for r := range dels {
		if g := d.groups[r.group]; g != nil {
			if _, ok := g.keys[r]; ok {
				delete(g.keys, r)
				d.n--
			}
			if len(g.keys) == 0 {
				delete(d.groups, r.group)
			}
		}
	}
	for r := range adds {
		g := d.groups[r.group]
		if g == nil {
			g = &deferredGroup{keys: make(map[dueRef]struct{}), min: r.tk}
			d.groups[r.group] = g
		}
		if _, ok := g.keys[r]; !ok {
			d.n++
		}
		g.keys[r] = struct{}{}
		g.min = min(g.min, r.tk)
	}
}

// due returns up to limit deferred keys of group with a time key at or
// below nowK, earliest first. It costs nothing while the group's earliest
// key is later (the usual case: leases run for seconds), else one pass
// over the group's keys.
func (d *deferredIndex) due(group string, nowK uint64, limit int) []dueRef {
	d.mu.Lock()
	defer d.mu.Unlock()
	g := d.groups[group]
	if g == nil || g.min > nowK {
		return nil
	}
	var out []dueRef
	low := ^uint64(0)
	for r := range g.keys {
		low = min(low, r.tk)
		if r.tk <= nowK {
			out = append(out, r)
		}
	}
	g.min = low // exact again
	slices.SortFunc(out, compareDue)
	if len(out) > limit {
		out = out[:limit]
	}
	return out
}

func compareDue(a, b dueRef) int {
	switch {
	case a.tk < b.tk:
		return -1
	case a.tk > b.tk:
		return 1
	case a.topic != b.topic:
		if a.topic < b.topic {
			return -1
		}
		return 1
	case a.id < b.id:
		return -1
	case a.id > b.id:
		return 1
	}
	return 0
}

// undeferChunk is how many flagged records one Open batch rewrites.
const undeferChunk = 1024

// undefer writes the due keys of the records under keys (flagged records,
// found by Open) that are not written yet, and clears their flag, a chunk
// per WriteBatch: a record is either flagged or has all its due keys.
// caller owns s exclusively (Open)
func (s *Store) undefer(keys [][]byte) error {
	for len(keys) > 0 {
		chunk := keys[:min(len(keys), undeferChunk)]
		keys = keys[len(chunk):]
		wb := grocksdb.NewWriteBatch()
		err := func() error {
			for _, k := range chunk {
				rec, err := s.db.GetBytes(s.ro, k)
				if err != nil || rec == nil {
					return err
				}
				m, err := decodeMessage(rec)
				if err != nil {
					return fmt.Errorf("record %q: %w", k, err)
				}
				if !m.Prepared {
					for _, g := range m.Groups {
						dk := dueKey(g.Group, timeKey(g.NextAttempt), m.Topic, m.ID)
						if v, err := s.db.GetBytes(s.ro, dk); err != nil {
							return err
						} else if v == nil {
							wb.Put(dk, nil)
						}
					}
				}
				wb.Put(k, encodeMessage(m))
			}
			return s.db.Write(s.wo, wb)
		}()
		wb.Destroy()
		if err != nil {
			return err
		}
	}
	return nil
}
