package rocksdb

import (
	"bytes"
	"fmt"

	"github.com/kitenats/kitenats/store"
)

// apply adds one update to the batch; see store.Op for what each does. An
// update whose target is missing, or not in the state it applies to, adds
// nothing.
func (t *tx) apply(u store.Update) error {
	if u.Op == store.OpReplay || u.Op == store.OpDiscard {
		return t.replay(u)
	}
	m, err := t.load(u.Topic, u.ID)
	if err != nil || m == nil {
		return err
	}
	switch u.Op {
	case store.OpRetry:
		t.retry(m, u)
	case store.OpAck, store.OpDead:
		return t.finish(m, u)
	case store.OpCommit:
		if m.Prepared {
			t.remove(m)
			m.Prepared = false
			m.Groups = uniqueGroups(u.Groups)
			if len(m.Groups) > 0 {
				t.insert(m)
			}
		}
	case store.OpRollback:
		if m.Prepared {
			t.remove(m)
		}
	case store.OpCheck:
		t.check(m, u)
	case store.OpReplay, store.OpDiscard:
		// handled above
	default:
		// An unknown op changes nothing, as in the memory backend: failing
		// would fail every other request of the group-committed batch.
	}
	return nil
}

// load returns the message as this batch left it, or nil.
func (t *tx) load(topic, id string) (*store.Message, error) {
	rec, err := t.get(msgKey(topic, id))
	if err != nil || rec == nil {
		return nil, err
	}
	m, err := decodeMessage(rec)
	if err != nil {
		return nil, fmt.Errorf("stored record: %w", err)
	}
	return m, nil
}

// insert stores m, which is not stored yet, with its index keys: a check
// key when prepared, else one due key per group.
func (t *tx) insert(m *store.Message) {
	k := msgKey(m.Topic, m.ID)
	_, seen := t.over[string(k)]
	if !seen {
		// Not stored (the caller read it) and not deleted by this batch:
		// absent before the batch, and so are its index keys.
		t.wb.markFresh(k)
	}
	deferred := false
	if m.Prepared {
		t.wb.Put(checkKey(timeKey(m.NextCheck), m.Topic, m.ID), nil)
	} else {
		for _, g := range m.Groups {
			deferred = t.putDue(m, g) || deferred
		}
	}
	// An inserted message had no due keys: its deferred ones are those just put.
	t.put(k, encodeRecord(m, deferred))
	t.delta.addMessage(m, +1)
}

// encode encodes the record of a stored m, flagged when one of its due
// keys is deferred.
func (t *tx) encode(m *store.Message) []byte {
	return encodeRecord(m, t.anyDeferred(m))
}

// anyDeferred reports whether a due key of m is deferred, as this batch
// leaves the deferred index.
func (t *tx) anyDeferred(m *store.Message) bool {
	if m.Prepared || (t.s.deferred.size() == 0 && len(t.deferAdds) == 0) {
		return false
	}
	for _, g := range m.Groups {
		r := dueRef{group: g.Group, tk: timeKey(g.NextAttempt), topic: m.Topic, id: m.ID}
		if _, ok := t.deferAdds[r]; ok {
			return true
		}
		if _, gone := t.deferDels[r]; !gone && t.s.deferred.has(r) {
			return true
		}
	}
	return false
}

// remove deletes the stored m and its index keys.
func (t *tx) remove(m *store.Message) {
	t.del(msgKey(m.Topic, m.ID))
	if m.Prepared {
		t.wb.Delete(checkKey(timeKey(m.NextCheck), m.Topic, m.ID))
	} else {
		for _, g := range m.Groups {
			t.delDue(m, g)
		}
	}
	t.delta.addMessage(m, -1)
}

// putDue adds the due key of (m, g): to the deferred index when the state
// is not due yet and the index has room (it then reports true), else to
// the batch.
func (t *tx) putDue(m *store.Message, g store.GroupState) bool {
	tk := timeKey(g.NextAttempt)
	if tk > t.nowK && t.s.deferred.size()+len(t.deferAdds) < deferCap {
		r := dueRef{group: g.Group, tk: tk, topic: m.Topic, id: m.ID}
		t.deferAdds[r] = struct{}{}
		return true
	}
	if t.wb.isFresh(msgKey(m.Topic, m.ID)) {
		t.wb.PutFresh(dueKey(g.Group, tk, m.Topic, m.ID), nil)
	} else {
		t.wb.Put(dueKey(g.Group, tk, m.Topic, m.ID), nil)
	}
	if cur, ok := t.duePuts[g.Group]; !ok || tk < cur {
		t.duePuts[g.Group] = tk
	}
	return false
}

// delDue removes the due key of (m, g), from wherever putDue put it.
func (t *tx) delDue(m *store.Message, g store.GroupState) {
	r := dueRef{group: g.Group, tk: timeKey(g.NextAttempt), topic: m.Topic, id: m.ID}
	if _, ok := t.deferAdds[r]; ok {
		// Deferred by this batch, never written. (Had it been deferred
		// before, the batch deleted that first: it is in deferDels.)
		delete(t.deferAdds, r)
		return
	}
	if _, gone := t.deferDels[r]; !gone && t.s.deferred.has(r) {
		t.deferDels[r] = struct{}{}
		return
	}
	t.wb.Delete(r.key())
}

func groupIndex(m *store.Message, group string) int {
	for i, g := range m.Groups {
		if g.Group == group {
			return i
		}
	}
	return -1
}

// retry sets Attempts and NextAttempt of a pending group of a committed
// message, moving its due key.
func (t *tx) retry(m *store.Message, u store.Update) {
	i := groupIndex(m, u.Group)
	if i < 0 || m.Prepared {
		return
	}
	old := m.Groups[i]
	m.Groups[i].Attempts = u.Attempts
	m.Groups[i].NextAttempt = u.Next
	if timeKey(old.NextAttempt) != timeKey(u.Next) {
		t.delDue(m, old)
		t.putDue(m, m.Groups[i])
	}
	t.put(msgKey(m.Topic, m.ID), t.encode(m))
}

// finish ends the pending group of an OpAck or OpDead, recording the dead
// letter of an OpDead, and deletes the message when no group is left.
func (t *tx) finish(m *store.Message, u store.Update) error {
	i := groupIndex(m, u.Group)
	if i < 0 {
		return nil
	}
	if u.Op == store.OpDead {
		if err := t.addDead(m, u); err != nil {
			return err
		}
	}
	g := m.Groups[i]
	if !m.Prepared {
		t.delDue(m, g)
	}
	t.delta.pending[tgKey{m.Topic, g.Group}]--
	m.Groups = append(m.Groups[:i:i], m.Groups[i+1:]...)
	if len(m.Groups) == 0 {
		t.remove(m)
		return nil
	}
	t.put(msgKey(m.Topic, m.ID), t.encode(m))
	return nil
}

// check sets Checks and NextCheck of a prepared message, moving its check
// key.
func (t *tx) check(m *store.Message, u store.Update) {
	if !m.Prepared {
		return
	}
	oldK, newK := timeKey(m.NextCheck), timeKey(u.Next)
	m.Checks = u.Attempts
	m.NextCheck = u.Next
	if oldK != newK {
		t.wb.Delete(checkKey(oldK, m.Topic, m.ID))
		t.wb.Put(checkKey(newK, m.Topic, m.ID), nil)
	}
	t.put(msgKey(m.Topic, m.ID), t.encode(m))
}

// addDead records the dead letter of (m, u.Group) at the batch's time under
// the next sequence number, and references it from (topic, group, id) so
// that OpReplay finds it with a point read.
func (t *tx) addDead(m *store.Message, u store.Update) error {
	rk := deadRefKey(m.Topic, u.Group, m.ID)
	ref, err := t.get(rk)
	if err != nil {
		return err
	}
	if ref != nil {
		if _, err := decodeSeqs(ref); err != nil {
			return fmt.Errorf("dead letter reference: %w", err)
		}
	}
	t.deadSeq++
	msg := *m
	msg.Groups = nil
	dl := store.DeadLetter{Message: &msg, Group: u.Group, Reason: u.Reason, At: t.now}
	t.put(deadKey(m.Topic, u.Group, t.deadSeq), encodeDead(dl))
	t.put(rk, appendU64(bytes.Clone(ref), t.deadSeq))
	t.delta.dead[tgKey{m.Topic, u.Group}]++
	return nil
}

// replay moves the oldest dead letter of (u.Topic, u.Group, u.ID) back to
// pending, recreating the message when it was deleted (OpReplay), or
// deletes it (OpDiscard).
func (t *tx) replay(u store.Update) error {
	rk := deadRefKey(u.Topic, u.Group, u.ID)
	ref, err := t.get(rk)
	if err != nil || ref == nil {
		return err
	}
	seqs, err := decodeSeqs(ref)
	if err != nil {
		return fmt.Errorf("dead letter reference: %w", err)
	}
	if len(seqs) > 1 {
		t.put(rk, encodeSeqs(seqs[1:]))
	} else {
		t.del(rk)
	}
	lk := deadKey(u.Topic, u.Group, seqs[0])
	letter, err := t.get(lk)
	if err != nil || letter == nil {
		return err // a reference to a missing letter is dropped above
	}
	t.del(lk)
	t.delta.dead[tgKey{u.Topic, u.Group}]--
	if u.Op == store.OpDiscard {
		return nil
	}
	return t.revive(u, letter)
}

// revive makes u.Group pending again for the message of a replayed letter.
func (t *tx) revive(u store.Update, letter []byte) error {
	g := store.GroupState{Group: u.Group, NextAttempt: u.Next}
	m, err := t.load(u.Topic, u.ID)
	if err != nil {
		return err
	}
	if m != nil {
		if groupIndex(m, u.Group) >= 0 {
			return nil
		}
		m.Groups = append(m.Groups, g)
		if !m.Prepared {
			t.putDue(m, g)
		}
		t.delta.pending[tgKey{u.Topic, u.Group}]++
		t.put(msgKey(m.Topic, m.ID), t.encode(m))
		return nil
	}
	dl, err := decodeDead(letter)
	if err != nil {
		return fmt.Errorf("dead letter: %w", err)
	}
	dl.Message.Groups = []store.GroupState{g}
	t.insert(dl.Message)
	return nil
}
