// Package memory is the in-memory store.Store: nothing survives a restart.
//
// It is bounded by a message count and a byte size. When full it refuses a
// save with store.ErrFull and never evicts. Pending states are kept in one
// heap per group (and prepared messages in one heap of check times), with
// lazy deletion, so Due costs O(returned × log n) whatever the backlog.
//
// All state is guarded by one mutex; every method is safe for concurrent use.
package memory

import (
	"container/heap"
	"context"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/kitenats/kitenats/store"
)

var (
	_ store.Store        = (*Store)(nil)
	_ store.BindingStore = (*Store)(nil)
)

// Config bounds a memory store.
type Config struct {
	// MaxMessages is the most stored messages (prepared ones included).
	// Default 1,000,000.
	MaxMessages int
	// MaxBytes is the most bytes of stored messages, bodies included.
	// Default 1 GiB.
	MaxBytes int64
}

func (c *Config) setDefaults() {
	if c.MaxMessages <= 0 {
		c.MaxMessages = 1_000_000
	}
	if c.MaxBytes <= 0 {
		c.MaxBytes = 1 << 30
	}
}

type key struct{ topic, id string }

type tgKey struct{ topic, group string }

type dedupEntry struct {
	seq   uint64
	until time.Time
}

// Store is the memory backend.
type Store struct {
	cfg Config

	mu       sync.Mutex // guards everything below
	closed   bool
	msgs     map[key]*store.Message
	bytes    int64
	due      map[string]*timeHeap // group → pending states
	checks   timeHeap             // prepared messages by NextCheck
	dedup    map[key]dedupEntry
	dedupQ   []dedupRef // dedup entries in write order, for expiry
	dead     map[tgKey][]store.DeadLetter
	pending  map[tgKey]int64
	topics   map[string]*store.TopicStat
	bindings map[string][]byte
}

type dedupRef struct {
	k     key
	until time.Time
}

// New returns an empty store.
func New(cfg Config) *Store {
	cfg.setDefaults()
	return &Store{
		cfg:      cfg,
		msgs:     make(map[key]*store.Message),
		due:      make(map[string]*timeHeap),
		dedup:    make(map[key]dedupEntry),
		dead:     make(map[tgKey][]store.DeadLetter),
		pending:  make(map[tgKey]int64),
		topics:   make(map[string]*store.TopicStat),
		bindings: make(map[string][]byte),
	}
}

// Write implements store.Store.
func (s *Store) Write(_ context.Context, b *store.Batch) ([]store.SaveResult, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, fmt.Errorf("memory: write: %w", store.ErrClosed)
	}
	s.expireDedup(b.Now)
	res := make([]store.SaveResult, len(b.Saves))
	for i, m := range b.Saves {
		res[i] = s.save(b, m)
	}
	for _, u := range b.Updates {
		s.apply(b.Now, u)
	}
	return res, nil
}

// caller must hold s.mu
func (s *Store) save(b *store.Batch, m *store.Message) store.SaveResult {
	k := key{m.Topic, m.ID}
	if old, ok := s.msgs[k]; ok {
		return store.SaveResult{Duplicate: true, Seq: old.Seq}
	}
	if d, ok := s.dedup[k]; ok && d.until.After(b.Now) {
		return store.SaveResult{Duplicate: true, Seq: d.seq}
	}
	stored := len(m.Groups) > 0 || m.Prepared
	if stored && (len(s.msgs) >= s.cfg.MaxMessages || s.bytes+int64(m.Size()) > s.cfg.MaxBytes) {
		return store.SaveResult{Err: store.ErrFull}
	}
	until := b.Now.Add(b.DedupWindow)
	s.dedup[k] = dedupEntry{seq: m.Seq, until: until}
	s.dedupQ = append(s.dedupQ, dedupRef{k: k, until: until})
	if stored {
		s.insert(m.Clone())
	}
	return store.SaveResult{Seq: m.Seq}
}

// insert adds m, which the store owns from now on.
// caller must hold s.mu
func (s *Store) insert(m *store.Message) {
	s.msgs[key{m.Topic, m.ID}] = m
	s.bytes += int64(m.Size())
	ts := s.topic(m.Topic)
	ts.Messages++
	if m.Prepared {
		ts.Prepared++
		heap.Push(&s.checks, heapItem{at: m.NextCheck, topic: m.Topic, id: m.ID})
	}
	for _, g := range m.Groups {
		s.addPending(m, g)
	}
}

// caller must hold s.mu
func (s *Store) remove(m *store.Message) {
	delete(s.msgs, key{m.Topic, m.ID})
	s.bytes -= int64(m.Size())
	ts := s.topic(m.Topic)
	ts.Messages--
	if m.Prepared {
		ts.Prepared--
	}
	for _, g := range m.Groups {
		s.pending[tgKey{m.Topic, g.Group}]--
	}
	m.Groups = nil
}

// caller must hold s.mu
func (s *Store) addPending(m *store.Message, g store.GroupState) {
	s.pending[tgKey{m.Topic, g.Group}]++
	s.push(g.Group, m, g.NextAttempt)
}

// caller must hold s.mu
func (s *Store) push(group string, m *store.Message, at time.Time) {
	h := s.due[group]
	if h == nil {
		h = &timeHeap{}
		s.due[group] = h
	}
	heap.Push(h, heapItem{at: at, topic: m.Topic, id: m.ID})
}

// caller must hold s.mu
func (s *Store) topic(name string) *store.TopicStat {
	ts := s.topics[name]
	if ts == nil {
		ts = &store.TopicStat{Topic: name}
		s.topics[name] = ts
	}
	return ts
}

// caller must hold s.mu
func (s *Store) expireDedup(now time.Time) {
	n := 0
	for ; n < len(s.dedupQ) && !s.dedupQ[n].until.After(now); n++ {
		r := s.dedupQ[n]
		if d, ok := s.dedup[r.k]; ok && d.until.Equal(r.until) {
			delete(s.dedup, r.k)
		}
	}
	if n > 0 {
		s.dedupQ = append(s.dedupQ[:0:0], s.dedupQ[n:]...)
	}
}

// Get implements store.Store.
func (s *Store) Get(_ context.Context, topic, id string) (*store.Message, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, fmt.Errorf("memory: get: %w", store.ErrClosed)
	}
	m, ok := s.msgs[key{topic, id}]
	if !ok {
		return nil, fmt.Errorf("memory: get %s/%s: %w", topic, id, store.ErrNotFound)
	}
	return m.Clone(), nil
}

// Due implements store.Store.
func (s *Store) Due(_ context.Context, group string, now time.Time, limit int) ([]*store.Message, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, fmt.Errorf("memory: due: %w", store.ErrClosed)
	}
	h := s.due[group]
	if h == nil {
		return nil, nil
	}
	valid := func(it heapItem) (*store.Message, bool) {
		m, ok := s.msgs[key{it.topic, it.id}]
		if !ok || m.Prepared {
			return nil, false
		}
		g, ok := m.State(group)
		return m, ok && g.NextAttempt.Equal(it.at)
	}
	return popDue(h, now, limit, valid), nil
}

// DueChecks implements store.Store.
func (s *Store) DueChecks(_ context.Context, now time.Time, limit int) ([]*store.Message, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, fmt.Errorf("memory: due checks: %w", store.ErrClosed)
	}
	valid := func(it heapItem) (*store.Message, bool) {
		m, ok := s.msgs[key{it.topic, it.id}]
		return m, ok && m.Prepared && m.NextCheck.Equal(it.at)
	}
	return popDue(&s.checks, now, limit, valid), nil
}

// popDue returns clones of up to limit valid messages due at now, earliest
// first. Stale items are dropped; valid ones are pushed back.
func popDue(h *timeHeap, now time.Time, limit int, valid func(heapItem) (*store.Message, bool)) []*store.Message {
	var out []*store.Message
	var keep []heapItem
	seen := make(map[key]bool)
	for h.Len() > 0 && len(out) < limit && !(*h)[0].at.After(now) {
		it := heap.Pop(h).(heapItem)
		m, ok := valid(it)
		if !ok || seen[key{it.topic, it.id}] {
			continue
		}
		seen[key{it.topic, it.id}] = true
		keep = append(keep, it)
		out = append(out, m.Clone())
	}
	for _, it := range keep {
		heap.Push(h, it)
	}
	return out
}

// DeadLetters implements store.Store.
func (s *Store) DeadLetters(_ context.Context, topic, group string, offset, limit int) ([]store.DeadLetter, int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, 0, fmt.Errorf("memory: dead letters: %w", store.ErrClosed)
	}
	all := s.dead[tgKey{topic, group}]
	var out []store.DeadLetter
	for i := offset; i >= 0 && i < len(all) && len(out) < limit; i++ {
		d := all[i]
		d.Message = d.Message.Clone()
		out = append(out, d)
	}
	return out, len(all), nil
}

// HasDeadLetter implements store.Store.
func (s *Store) HasDeadLetter(_ context.Context, topic, group, id string) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false, fmt.Errorf("memory: dead letter: %w", store.ErrClosed)
	}
	for _, d := range s.dead[tgKey{topic, group}] {
		if d.Message.ID == id {
			return true, nil
		}
	}
	return false, nil
}

// Stats implements store.Store.
func (s *Store) Stats(context.Context) (store.Stats, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return store.Stats{}, fmt.Errorf("memory: stats: %w", store.ErrClosed)
	}
	rows := make(map[tgKey]*store.GroupStat)
	row := func(k tgKey) *store.GroupStat {
		if rows[k] == nil {
			rows[k] = &store.GroupStat{Topic: k.topic, Group: k.group}
		}
		return rows[k]
	}
	for k, n := range s.pending {
		row(k).Pending = n
	}
	for k, d := range s.dead {
		row(k).Dead = int64(len(d))
	}
	var st store.Stats
	for _, r := range rows {
		st.Groups = append(st.Groups, *r)
	}
	for _, t := range s.topics {
		st.Topics = append(st.Topics, *t)
	}
	sort.Slice(st.Groups, func(i, j int) bool {
		a, b := st.Groups[i], st.Groups[j]
		return a.Topic < b.Topic || a.Topic == b.Topic && a.Group < b.Group
	})
	sort.Slice(st.Topics, func(i, j int) bool { return st.Topics[i].Topic < st.Topics[j].Topic })
	return st, nil
}

// SaveBindings implements store.BindingStore.
func (s *Store) SaveBindings(_ context.Context, group string, doc []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return fmt.Errorf("memory: save bindings: %w", store.ErrClosed)
	}
	if len(doc) == 0 {
		delete(s.bindings, group)
	} else {
		s.bindings[group] = append([]byte(nil), doc...)
	}
	return nil
}

// LoadBindings implements store.BindingStore.
func (s *Store) LoadBindings(context.Context) (map[string][]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, fmt.Errorf("memory: load bindings: %w", store.ErrClosed)
	}
	out := make(map[string][]byte, len(s.bindings))
	for g, d := range s.bindings {
		out[g] = append([]byte(nil), d...)
	}
	return out, nil
}

// Close implements store.Store. Everything stored is dropped.
func (s *Store) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	s.msgs, s.dedup, s.due = nil, nil, nil
	return nil
}
