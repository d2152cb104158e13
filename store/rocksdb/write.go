package rocksdb

import (
	"bytes"
	"context"
	"fmt"
	"time"

	"github.com/linxGnu/grocksdb"

	"github.com/kitenats/kitenats/store"
)

// Write implements store.Store. The whole batch is one RocksDB WriteBatch,
// written with the durability of the Store's mode. Entries of the batch see
// the effect of earlier ones. Write calls are serialized.
func (s *Store) Write(ctx context.Context, b *store.Batch) ([]store.SaveResult, error) {
	s.life.RLock()
	defer s.life.RUnlock()
	if s.closed {
		return nil, errClosed("write")
	}
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("rocksdb: write: %w", err)
	}
	t := s.newTx(b.Now)
	res, err := t.build(b)
	if err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("rocksdb: write: %w", err)
	}
	if t.wb.Count() > 0 {
		wb := grocksdb.NewWriteBatch()
		defer wb.Destroy()
		if t.wb.writeTo(wb) == 0 {
			s.commit(t)
			return res, nil
		}
		if err := s.db.Write(s.wo, wb); err != nil {
			s.recs.clear() // whatever RocksDB made of the batch, read it back
			return nil, fmt.Errorf("rocksdb: write: %w", err)
		}
	}
	s.commit(t)
	return res, nil
}

// commit applies to the in-memory state what t changed, once its batch is
// written. caller must hold s.writeMu
func (s *Store) commit(t *tx) {
	s.deadSeq = t.deadSeq
	if t.sweepFrom != nil {
		s.sweepFrom = t.sweepFrom
	}
	s.counters.merge(t.delta)
	s.hints.lower(t.duePuts)
	for k, v := range t.over {
		if k[0] == prefixMessage {
			s.recs.set(k, v)
		}
	}
}

// tx is the work of one Write: the WriteBatch being built, the values it
// wrote (so that later entries of the batch read them), and the changes to
// the in-memory state to apply once the batch is written.
type tx struct {
	s    *Store
	now  time.Time
	nowK uint64  // timeKey(now)
	wb   opBatch // the writes, sorted into a WriteBatch at the end

	// over holds every message, dedup and dead letter value the batch put
	// (nil when it deleted the key): a read goes here before the database.
	over map[string][]byte

	delta     counts
	duePuts   map[string]uint64 // group → lowest due time key put
	deadSeq   uint64            // last dead letter sequence used
	sweepFrom []byte            // new s.sweepFrom, if the sweep moved
}

// newTx starts a tx. caller must hold s.writeMu
func (s *Store) newTx(now time.Time) *tx {
	return &tx{
		s: s, now: now, nowK: timeKey(now),
		over:    make(map[string][]byte),
		delta:   newCounts(),
		duePuts: make(map[string]uint64),
		deadSeq: s.deadSeq,
	}
}

// build adds the whole batch to the WriteBatch: expired dedup entries
// first, then the saves, then the updates, in order.
func (t *tx) build(b *store.Batch) ([]store.SaveResult, error) {
	if err := t.sweep(sweepBudget + 2*len(b.Saves)); err != nil {
		return nil, err
	}
	res := make([]store.SaveResult, len(b.Saves))
	for i, m := range b.Saves {
		r, err := t.save(m, b.DedupWindow)
		if err != nil {
			return nil, err
		}
		res[i] = r
	}
	for _, u := range b.Updates {
		if err := t.apply(u); err != nil {
			return nil, fmt.Errorf("rocksdb: write: %s %s/%s: %w", u.Op, u.Topic, u.ID, err)
		}
	}
	return res, nil
}

// get reads k as this batch left it: nil when it is absent or deleted.
// Records the last Writes put come from s.recs.
func (t *tx) get(k []byte) ([]byte, error) {
	if v, ok := t.over[string(k)]; ok {
		return v, nil
	}
	if v, ok := t.s.recs.get(string(k)); ok {
		return v, nil
	}
	v, err := t.s.db.GetBytes(t.s.ro, k)
	if err != nil {
		return nil, fmt.Errorf("read %q: %w", k, err)
	}
	return v, nil
}

// put and del write a key that later entries of the batch may read; v is
// never empty.
func (t *tx) put(k, v []byte) { t.wb.Put(k, v); t.over[string(k)] = v }
func (t *tx) del(k []byte)    { t.wb.Delete(k); t.over[string(k)] = nil }

// save stores m unless it is a duplicate; see store.Batch.
func (t *tx) save(m *store.Message, window time.Duration) (store.SaveResult, error) {
	rec, err := t.get(msgKey(m.Topic, m.ID))
	if err != nil {
		return store.SaveResult{}, fmt.Errorf("rocksdb: write: save %s/%s: %w", m.Topic, m.ID, err)
	}
	if rec != nil {
		seq, err := recordSeq(rec)
		if err != nil {
			return store.SaveResult{}, fmt.Errorf("rocksdb: write: save %s/%s: stored record: %w", m.Topic, m.ID, err)
		}
		return store.SaveResult{Duplicate: true, Seq: seq}, nil
	}
	dk := dedupKey(m.Topic, m.ID)
	dv, err := t.get(dk)
	if err != nil {
		return store.SaveResult{}, fmt.Errorf("rocksdb: write: save %s/%s: %w", m.Topic, m.ID, err)
	}
	if dv != nil {
		until, seq, err := decodeDedup(dv)
		if err == nil && until > t.nowK {
			return store.SaveResult{Duplicate: true, Seq: seq}, nil
		}
	}
	untilK := timeKey(t.now.Add(window))
	t.put(dk, encodeDedup(untilK, m.Seq))
	t.wb.Put(dedupExpKey(untilK, m.Topic, m.ID), nil)
	if len(m.Groups) > 0 || m.Prepared {
		c := *m
		c.Groups = uniqueGroups(m.Groups)
		t.insert(&c)
	}
	return store.SaveResult{Seq: m.Seq}, nil
}

// uniqueGroups drops the later states of a group named twice: the store
// keeps one state per (message, group).
func uniqueGroups(gs []store.GroupState) []store.GroupState {
	for i := 1; i < len(gs); i++ {
		for j := 0; j < i; j++ {
			if gs[i].Group == gs[j].Group {
				return dedupGroups(gs)
			}
		}
	}
	return gs
}

func dedupGroups(gs []store.GroupState) []store.GroupState {
	seen := make(map[string]bool, len(gs))
	out := make([]store.GroupState, 0, len(gs))
	for _, g := range gs {
		if !seen[g.Group] {
			seen[g.Group] = true
			out = append(out, g)
		}
	}
	return out
}

// sweepBudget is the least number of expired dedup entries a Write
// removes; it also removes two per save, so the sweep keeps up with any
// publish rate.
const sweepBudget = 1024

// sweep deletes up to budget dedup entries whose window ended by now,
// oldest first, from where the last sweep stopped: a seek and a scan of
// what it deletes.
func (t *tx) sweep(budget int) error {
	upper := afterTime([]byte{prefixDedupExp}, t.nowK)
	if bytes.Compare(t.s.sweepFrom, upper) >= 0 {
		return nil
	}
	v := t.s.newView(false)
	defer v.close()
	var expired [][]byte
	err := v.scan(t.s.sweepFrom, upper, func(k, _ []byte) error {
		expired = append(expired, bytes.Clone(k))
		if len(expired) >= budget {
			return errStop
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("rocksdb: write: sweep dedup: %w", err)
	}
	for _, k := range expired {
		if err := t.expire(k); err != nil {
			return fmt.Errorf("rocksdb: write: sweep dedup: %w", err)
		}
	}
	if n := len(expired); n > 0 {
		t.sweepFrom = append(expired[n-1], 0x00) // the least key after it
	}
	return nil
}

// expire deletes one dedup expiry key, and its dedup entry unless a later
// save of the same id renewed it.
func (t *tx) expire(xk []byte) error {
	t.wb.Delete(xk)
	tk, topic, id, err := timeIndexKey(xk[1:])
	if err != nil {
		return nil // not ours to read; deleting it is all we can do
	}
	dk := dedupKey(topic, id)
	dv, err := t.get(dk)
	if err != nil || dv == nil {
		return err
	}
	if until, _, err := decodeDedup(dv); err != nil || until == tk {
		t.del(dk)
	}
	return nil
}
