package rocksdb

import (
	"context"
	"fmt"
	"time"

	"github.com/linxGnu/grocksdb"

	"github.com/kitenats/kitenats/store"
)

// Write implements store.Store. The whole batch is one journal record,
// appended (and in Sync mode synced) before anything is applied; then the
// message records go to s.hot and the other writes to RocksDB, in one
// WriteBatch without RocksDB's WAL. Entries of the batch see the effect of
// earlier ones. Write calls are serialized.
func (s *Store) Write(ctx context.Context, b *store.Batch) ([]store.SaveResult, error) {
	s.life.RLock()
	defer s.life.RUnlock()
	if s.closed {
		return nil, errClosed("write")
	}
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	if err := s.Failed(); err != nil {
		return nil, err
	}
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
	if err := s.apply(t); err != nil {
		return nil, err
	}
	s.commit(t)
	switch {
	case s.jrnl.length() >= s.cfg.JournalSegmentSize:
		s.rotate()
	case int64(s.hot.bytes) >= s.cfg.JournalSegmentSize/4:
		_ = s.moveHot() // a failure fails the store, and the next Write
	}
	return res, nil
}

// apply journals the writes of t and applies them. caller must hold
// s.writeMu
func (s *Store) apply(t *tx) error {
	if t.wb.Count() == 0 {
		return nil
	}
	wb := grocksdb.NewWriteBatch()
	defer wb.Destroy()
	rec, recs := append(s.rec[:0], make([]byte, recordHeader)...), s.recOps[:0]
	n := t.wb.each(func(o op) {
		rec = o.appendTo(rec)
		if o.isRecord() {
			recs = append(recs, o)
		} else {
			o.addTo(wb)
		}
	})
	s.rec, s.recOps = rec, recs
	defer clear(recs) // let the GC have the batch's values
	if n == 0 {
		return nil
	}
	if err := s.jrnl.append(rec, s.cfg.Durability == Sync); err != nil {
		if s.jrnl.isBroken() {
			return s.fail("journal append", err)
		}
		return fmt.Errorf("rocksdb: write: journal append: %w", err) // nothing applied
	}
	s.hot.apply(recs, t.wb.isFresh)
	if wb.Count() > 0 {
		if err := s.db.Write(s.wj, wb); err != nil {
			return s.fail("write", err)
		}
	}
	return nil
}

// Failed implements store.Failer: the failure that made the store refuse
// every Write (see Store.failed), or nil.
func (s *Store) Failed() error {
	if p := s.failed.Load(); p != nil {
		return *p
	}
	return nil
}

// fail makes every later Write fail with err: see Store.failed.
func (s *Store) fail(what string, err error) error {
	failed := fmt.Errorf("rocksdb: %s: %w (the store refuses writes until it is reopened)", what, err)
	s.failed.Store(&failed)
	s.log.Error("store failed: reopen to recover from the journal", "during", what, "err", err)
	return failed
}

// commit applies to the in-memory state what t changed, once its batch is
// written. caller must hold s.writeMu
func (s *Store) commit(t *tx) {
	s.deadSeq = t.deadSeq
	if t.swept > s.swept {
		s.swept = t.swept
		s.filters.drop(s.swept)
	}
	s.counters.merge(t.delta)
	s.deferred.apply(t.deferAdds, t.deferDels)
	s.hints.lower(t.duePuts)
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
	duePuts   map[string]uint64   // group → lowest due time key put
	deadSeq   uint64              // last dead letter sequence used
	swept     uint64              // new s.swept, if the sweep moved
	deferAdds map[dueRef]struct{} // due keys this batch deferred
	deferDels map[dueRef]struct{} // deferred due keys this batch dropped
}

// newTx starts a tx, reusing the maps and buffers of the last one (their
// capacity follows the batch size, and growing them again for every Write
// was a tenth of the store's CPU). caller must hold s.writeMu
func (s *Store) newTx(now time.Time) *tx {
	t := s.spare
	if t == nil {
		t = &tx{
			over:      make(map[string][]byte),
			delta:     newCounts(),
			duePuts:   make(map[string]uint64),
			deferAdds: make(map[dueRef]struct{}),
			deferDels: make(map[dueRef]struct{}),
		}
		s.spare = t
	} else {
		clear(t.over)
		clear(t.delta.pending)
		clear(t.delta.dead)
		clear(t.delta.topics)
		clear(t.duePuts)
		clear(t.deferAdds)
		clear(t.deferDels)
		t.wb.reset()
	}
	t.s, t.now, t.nowK = s, now, timeKey(now)
	t.deadSeq, t.swept = s.deadSeq, 0
	return t
}

// build adds the whole batch to the WriteBatch: expired dedup entries
// first, then the saves, then the updates, in order.
func (t *tx) build(b *store.Batch) ([]store.SaveResult, error) {
	t.sweep()
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
// Records written since they last moved to RocksDB come from s.hot.
func (t *tx) get(k []byte) ([]byte, error) {
	if v, ok := t.over[string(k)]; ok {
		return v, nil
	}
	if isRecordKey(k) {
		if v, ok := t.s.hot.get(k); ok {
			return v, nil
		}
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
	untilK := timeKey(t.now.Add(window))
	if !m.NewID {
		if dup, seq, err := t.duplicate(m, untilK); err != nil || dup {
			return store.SaveResult{Duplicate: dup, Seq: seq}, err
		}
	}
	t.put(dedupKey(untilK, m.Topic, m.ID), encodeDedup(untilK, m.Seq))
	t.s.filters.add(bucketKey(untilK), m.Topic, m.ID)
	if len(m.Groups) > 0 || m.Prepared {
		c := *m
		c.Groups = uniqueGroups(m.Groups)
		t.insert(&c)
	}
	return store.SaveResult{Seq: m.Seq}, nil
}

// duplicate reports whether m's id is stored, or within its dedup window,
// and the original's seq. untilK is the expiry a save now would get: an
// entry still in force expires after now and by then (give or take a
// bucket, should the batch clock have gone back), so it is in one of the
// buckets from now's to untilK's plus one.
func (t *tx) duplicate(m *store.Message, untilK uint64) (bool, uint64, error) {
	rec, err := t.get(msgKey(m.Topic, m.ID))
	if err != nil {
		return false, 0, fmt.Errorf("rocksdb: write: save %s/%s: %w", m.Topic, m.ID, err)
	}
	if rec != nil {
		seq, err := recordSeq(rec)
		if err != nil {
			return false, 0, fmt.Errorf("rocksdb: write: save %s/%s: stored record: %w", m.Topic, m.ID, err)
		}
		return true, seq, nil
	}
	first := bucketKey(t.nowK)
	n := (bucketKey(untilK)-first)/dedupBucket + 2
	for b := first; n > 0 && b >= first; b, n = b+dedupBucket, n-1 { // b < first: wrapped
		if !t.s.filters.mayHave(b, m.Topic, m.ID) {
			continue
		}
		dv, err := t.get(dedupKey(b, m.Topic, m.ID))
		if err != nil {
			return false, 0, fmt.Errorf("rocksdb: write: save %s/%s: %w", m.Topic, m.ID, err)
		}
		if dv != nil {
			until, seq, err := decodeDedup(dv)
			if err == nil && until > t.nowK {
				return true, seq, nil
			}
		}
	}
	return false, 0, nil
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

// sweep drops, with one range delete, every dedup bucket that ended by
// now, once per bucket: every entry in them expired.
func (t *tx) sweep() {
	b := bucketKey(t.nowK)
	if b <= t.s.swept {
		return
	}
	t.wb.DeleteRange([]byte{prefixDedup}, appendU64([]byte{prefixDedup}, b))
	t.swept = b
}
