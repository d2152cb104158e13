package semantics

import (
	"strings"

	"github.com/kitenats/kitenats/kqerr"
	"github.com/kitenats/kitenats/store"
)

// handleAck takes a consumer's reply on
// $KQ.ACK.<group>.<broker>.<consumer>.<delivery>.
func (b *Broker) handleAck(msg *Msg) {
	var tok [6]string
	if !splitTokens(msg.Subject, tok[:]) {
		return
	}
	group, err := DecodeToken(tok[2])
	if err != nil {
		b.answer(msg.Reply, kqerr.New(kqerr.BadRequest, err, "bad ack subject %s", msg.Subject))
		return
	}
	b.Ack(group, tok[4], tok[5], ParseAck(msg.Data), func(err error) { b.answer(msg.Reply, err) })
}

// answer replies to an ack or API request that has a reply subject: an
// empty body for success, an error body otherwise.
func (b *Broker) answer(reply string, err error) {
	if reply == "" {
		return
	}
	if err != nil {
		b.reply(reply, errorBody(err))
		return
	}
	b.reply(reply, nil)
}

// Ack applies a consumer's acknowledgement of delivery id. done is called
// once the outcome is durable, with nil or an *kqerr.Error (409 for an unknown,
// stale or used id; 400 for an unknown payload).
func (b *Broker) Ack(group, consumerID, id string, a Ack, done func(error)) {
	if a.Kind == AckUnknown {
		done(kqerr.New(kqerr.BadRequest, nil, "unknown ack payload"))
		return
	}
	b.mu.Lock()
	f, ok := b.inflight[id]
	if !ok || f.c.id != consumerID || f.d.Group != group || f.deadline.IsZero() {
		prev, used := b.used.get(id)
		b.mu.Unlock()
		if used && prev == a.Kind {
			done(nil) // the same terminal reply again: same answer
			return
		}
		done(kqerr.New(kqerr.Conflict, nil, "unknown, stale or used delivery id %s", id))
		return
	}
	now := b.cfg.Now()
	if a.Kind == AckProgress {
		f.deadline = now.Add(f.c.ackWait)
		b.mu.Unlock()
		done(nil)
		return
	}
	b.used.add(id, a.Kind)
	answer := done
	done = func(err error) {
		if err != nil {
			err = storeError(err)
		}
		answer(err)
	}
	var more []*flight
	m := f.d.Message
	switch a.Kind {
	case AckOK:
		b.unreserve(f)
		b.counters.acked.Add(1)
		if f.fly {
			done(nil)
		} else {
			b.update(store.Update{Op: store.OpAck, Topic: m.Topic, ID: m.ID, Group: group}, done)
		}
	case AckNak:
		b.counters.nacked.Add(1)
		more = b.fail(f, a.Delay, false, done)
	case AckTerm:
		b.unreserve(f)
		if f.fly {
			done(nil)
		} else {
			reason := "terminated by consumer"
			if a.Reason != "" {
				reason += ": " + a.Reason
			}
			b.update(store.Update{Op: store.OpDead, Topic: m.Topic, ID: m.ID, Group: group, Reason: reason}, done)
		}
	}
	g := f.c.group
	wake := !g.drained
	b.mu.Unlock()
	b.send(more)
	if wake {
		b.wake() // capacity was freed while the store may hold due messages
	}
}

// splitTokens splits subject at its dots into exactly len(tok) tokens, in
// place; it reports false for any other number of tokens.
func splitTokens(subject string, tok []string) bool {
	for i := range tok[:len(tok)-1] {
		j := strings.IndexByte(subject, '.')
		if j < 0 {
			return false
		}
		tok[i], subject = subject[:j], subject[j+1:]
	}
	if strings.IndexByte(subject, '.') >= 0 {
		return false
	}
	tok[len(tok)-1] = subject
	return true
}
