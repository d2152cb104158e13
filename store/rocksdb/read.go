package rocksdb

import (
	"bytes"
	"context"
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/kitenats/kitenats/store"
)

// Get implements store.Store: one point read.
func (s *Store) Get(ctx context.Context, topic, id string) (*store.Message, error) {
	s.life.RLock()
	defer s.life.RUnlock()
	if s.closed {
		return nil, errClosed("get")
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("rocksdb: get %s/%s: %w", topic, id, err)
	}
	rec, err := s.hot.read(s.db, s.ro, msgKey(topic, id))
	if err != nil {
		return nil, fmt.Errorf("rocksdb: get %s/%s: %w", topic, id, err)
	}
	if rec == nil {
		return nil, fmt.Errorf("rocksdb: get %s/%s: %w", topic, id, store.ErrNotFound)
	}
	m, err := decodeMessage(rec)
	if err != nil {
		return nil, fmt.Errorf("rocksdb: get %s/%s: %w", topic, id, err)
	}
	return m, nil
}

// Due implements store.Store: a seek into the group's due index, at the
// group's hint (see dueHints), and a scan of the keys up to now, reading
// one record per key, at one snapshot.
func (s *Store) Due(ctx context.Context, group string, now time.Time, limit int) ([]*store.Message, error) {
	s.life.RLock()
	defer s.life.RUnlock()
	if s.closed {
		return nil, errClosed("due")
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("rocksdb: due %s: %w", group, err)
	}
	if limit <= 0 {
		return nil, nil
	}
	sc, from := s.hints.begin(group)
	v := s.newView(true)
	defer v.close()
	pick := func(tk uint64, rec []byte) (*store.Message, error) {
		m, err := decodeMessage(rec)
		if err != nil || m.Prepared {
			return nil, err
		}
		if st, ok := m.State(group); !ok || timeKey(st.NextAttempt) != tk {
			return nil, nil
		}
		return m, nil
	}
	nowK := timeKey(now)
	out, bound, err := v.scanTimeIndex(ctx, duePrefix(group), from, nowK, limit, pick)
	s.hints.end(sc, bound, err == nil)
	if err != nil {
		return nil, fmt.Errorf("rocksdb: due %s: %w", group, err)
	}
	// Due keys kept in memory (deferredIndex), read at the same snapshot.
	refs := s.deferred.due(group, nowK, limit)
	for _, r := range refs {
		rec, err := v.get(msgKey(r.topic, r.id))
		if err != nil {
			return nil, fmt.Errorf("rocksdb: due %s: %w", group, err)
		}
		if rec == nil {
			continue // written after the snapshot
		}
		m, err := pick(r.tk, rec)
		if err != nil {
			return nil, fmt.Errorf("rocksdb: due %s: record %s/%s: %w", group, r.topic, r.id, err)
		}
		if m != nil {
			out = append(out, m)
		}
	}
	if len(refs) > 0 {
		slices.SortStableFunc(out, func(a, b *store.Message) int {
			x, _ := a.State(group)
			y, _ := b.State(group)
			return x.NextAttempt.Compare(y.NextAttempt)
		})
		out = out[:min(len(out), limit)]
	}
	return out, nil
}

// DueChecks implements store.Store: a seek to the start of the check index
// and a scan of the keys up to now.
func (s *Store) DueChecks(ctx context.Context, now time.Time, limit int) ([]*store.Message, error) {
	s.life.RLock()
	defer s.life.RUnlock()
	if s.closed {
		return nil, errClosed("due checks")
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("rocksdb: due checks: %w", err)
	}
	if limit <= 0 {
		return nil, nil
	}
	v := s.newView(true)
	defer v.close()
	pick := func(tk uint64, rec []byte) (*store.Message, error) {
		m, err := decodeMessage(rec)
		if err != nil || !m.Prepared || timeKey(m.NextCheck) != tk {
			return nil, err
		}
		return m, nil
	}
	out, _, err := v.scanTimeIndex(ctx, []byte{prefixCheck}, 0, timeKey(now), limit, pick)
	if err != nil {
		return nil, fmt.Errorf("rocksdb: due checks: %w", err)
	}
	return out, nil
}

// ctxCheckEvery is how many index keys a scan reads between two looks at
// its context.
const ctxCheckEvery = 64

// scanTimeIndex scans the time index under prefix (keys prefix tk topic id)
// from time key from through nowK, and returns up to limit messages that
// pick accepts from their records, in key order. pick rejects a record
// that no longer matches its key, which a snapshot never shows but a
// damaged index could. bound is a time key below which the index had no
// key at or above from.
func (v *view) scanTimeIndex(ctx context.Context, prefix []byte, from, nowK uint64, limit int,
	pick func(tk uint64, rec []byte) (*store.Message, error),
) (out []*store.Message, bound uint64, err error) {
	if from > nowK {
		return nil, from, nil
	}
	bound = nowK
	if nowK < math.MaxUint64 {
		bound++
	}
	seen := 0
	err = v.scan(appendU64(bytes.Clone(prefix), from), afterTime(prefix, nowK), func(k, _ []byte) error {
		tk, topic, id, err := timeIndexKey(k[len(prefix):])
		if err != nil {
			return fmt.Errorf("index key %q: %w", k, err)
		}
		if seen++; seen == 1 {
			bound = tk
		} else if seen%ctxCheckEvery == 0 && ctx.Err() != nil {
			return ctx.Err()
		}
		rec, err := v.get(msgKey(topic, id))
		if err != nil || rec == nil {
			return err
		}
		m, err := pick(tk, rec)
		if err != nil {
			return fmt.Errorf("record %s/%s: %w", topic, id, err)
		}
		if m != nil {
			if out = append(out, m); len(out) >= limit {
				return errStop
			}
		}
		return nil
	})
	return out, bound, err
}

// HasDeadLetter implements store.Store: one read of the dead letter's
// reference key.
func (s *Store) HasDeadLetter(ctx context.Context, topic, group, id string) (bool, error) {
	s.life.RLock()
	defer s.life.RUnlock()
	if s.closed {
		return false, errClosed("dead letter")
	}
	if err := ctx.Err(); err != nil {
		return false, fmt.Errorf("rocksdb: dead letter: %w", err)
	}
	v, err := s.db.GetBytes(s.ro, deadRefKey(topic, group, id))
	if err != nil {
		return false, fmt.Errorf("rocksdb: dead letter %s/%s of %s: %w", topic, id, group, err)
	}
	return v != nil, nil
}

// DeadLetters implements store.Store. The total comes from the in-memory
// counters; the page is a seek to the (topic, group) range and a scan of
// offset+limit letters, oldest first.
func (s *Store) DeadLetters(ctx context.Context, topic, group string, offset, limit int) ([]store.DeadLetter, int, error) {
	s.life.RLock()
	defer s.life.RUnlock()
	if s.closed {
		return nil, 0, errClosed("dead letters")
	}
	if err := ctx.Err(); err != nil {
		return nil, 0, fmt.Errorf("rocksdb: dead letters: %w", err)
	}
	total := int(s.counters.deadCount(topic, group))
	if offset < 0 || limit <= 0 || offset >= total {
		return nil, total, nil
	}
	v := s.newView(true)
	defer v.close()
	p := deadPrefix(topic, group)
	var out []store.DeadLetter
	skip := offset
	err := v.scan(p, prefixEnd(p), func(k, val []byte) error {
		if skip > 0 {
			skip--
			return nil
		}
		dl, err := decodeDead(bytes.Clone(val))
		if err != nil {
			return fmt.Errorf("key %q: %w", k, err)
		}
		out = append(out, dl)
		if len(out) >= limit {
			return errStop
		}
		return nil
	})
	if err != nil {
		return nil, 0, fmt.Errorf("rocksdb: dead letters %s/%s: %w", topic, group, err)
	}
	return out, total, nil
}

// SaveBindings implements store.BindingStore, with the durability of the
// Store's mode.
func (s *Store) SaveBindings(ctx context.Context, group string, doc []byte) error {
	s.life.RLock()
	defer s.life.RUnlock()
	if s.closed {
		return errClosed("save bindings")
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("rocksdb: save bindings %s: %w", group, err)
	}
	var err error
	if len(doc) == 0 {
		err = s.db.Delete(s.wo, bindingKey(group))
	} else {
		err = s.db.Put(s.wo, bindingKey(group), doc)
	}
	if err != nil {
		return fmt.Errorf("rocksdb: save bindings %s: %w", group, err)
	}
	return nil
}

// LoadBindings implements store.BindingStore.
func (s *Store) LoadBindings(ctx context.Context) (map[string][]byte, error) {
	s.life.RLock()
	defer s.life.RUnlock()
	if s.closed {
		return nil, errClosed("load bindings")
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("rocksdb: load bindings: %w", err)
	}
	v := s.newView(true)
	defer v.close()
	out := make(map[string][]byte)
	err := v.scan([]byte{prefixBinding}, []byte{prefixBinding + 1}, func(k, val []byte) error {
		group, rest, err := readStr(k[1:])
		if err != nil || len(rest) != 0 {
			return fmt.Errorf("binding key %q: %w", k, errCorrupt)
		}
		out[group] = bytes.Clone(val)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("rocksdb: load bindings: %w", err)
	}
	return out, nil
}
