package memory

import (
	"time"

	"github.com/kitenats/kitenats/store"
)

// apply performs one update; see store.Op for what each does.
// caller must hold s.mu
func (s *Store) apply(now time.Time, u store.Update) {
	k := key{u.Topic, u.ID}
	if u.Op == store.OpReplay || u.Op == store.OpDiscard {
		s.replay(now, u)
		return
	}
	m, ok := s.msgs[k]
	if !ok {
		return
	}
	switch u.Op {
	case store.OpRetry:
		for i := range m.Groups {
			if m.Groups[i].Group == u.Group && !m.Prepared {
				m.Groups[i].Attempts = u.Attempts
				m.Groups[i].NextAttempt = u.Next
				s.push(u.Group, m, u.Next)
			}
		}
	case store.OpAck, store.OpDead:
		i := groupIndex(m, u.Group)
		if i < 0 {
			return
		}
		if u.Op == store.OpDead {
			dl := m.Clone()
			dl.Groups = nil
			tg := tgKey{u.Topic, u.Group}
			s.dead[tg] = append(s.dead[tg], store.DeadLetter{Message: dl, Group: u.Group, Reason: u.Reason, At: now})
		}
		s.pending[tgKey{u.Topic, u.Group}]--
		s.bytes -= int64(m.Size())
		m.Groups = append(m.Groups[:i], m.Groups[i+1:]...)
		s.bytes += int64(m.Size())
		if len(m.Groups) == 0 {
			s.remove(m)
		}
	case store.OpCommit:
		if !m.Prepared {
			return
		}
		s.remove(m)
		m.Prepared = false
		m.Groups = append([]store.GroupState(nil), u.Groups...)
		if len(m.Groups) > 0 {
			s.insert(m)
		}
	case store.OpRollback:
		if m.Prepared {
			s.remove(m)
		}
	case store.OpCheck:
		if m.Prepared {
			m.Checks = u.Attempts
			m.NextCheck = u.Next
			s.checks.push(heapItem{at: u.Next, topic: m.Topic, id: m.ID})
		}
	case store.OpReplay:
		// handled above
	}
}

// replay moves a dead letter back to pending (OpReplay) or deletes it
// (OpDiscard).
// caller must hold s.mu
func (s *Store) replay(now time.Time, u store.Update) {
	tg := tgKey{u.Topic, u.Group}
	letters := s.dead[tg]
	i := 0
	for ; i < len(letters) && letters[i].Message.ID != u.ID; i++ {
	}
	if i == len(letters) {
		return
	}
	dl := letters[i]
	s.dead[tg] = append(letters[:i:i], letters[i+1:]...)
	if len(s.dead[tg]) == 0 {
		delete(s.dead, tg)
	}
	if u.Op == store.OpDiscard {
		return
	}
	g := store.GroupState{Group: u.Group, NextAttempt: u.Next}
	if m, ok := s.msgs[key{u.Topic, u.ID}]; ok {
		if groupIndex(m, u.Group) < 0 {
			s.bytes -= int64(m.Size())
			m.Groups = append(m.Groups, g)
			s.bytes += int64(m.Size())
			s.addPending(m, g)
		}
		return
	}
	m := dl.Message.Clone()
	m.Groups = []store.GroupState{g}
	s.insert(m)
	_ = now
}

func groupIndex(m *store.Message, group string) int {
	for i, g := range m.Groups {
		if g.Group == group {
			return i
		}
	}
	return -1
}
