package semantics

import (
	"time"

	"github.com/kitenats/kitenats/kqerr"
	"github.com/kitenats/kitenats/store"
)

// AckKind is what a consumer said about a delivery.
type AckKind uint8

// The outcomes of a delivery (NATS-PROTOCOL.md §4 writes them in
// JetStream's ack grammar, which natsproto parses; a KiteQ ack is AckOK or
// AckNak).
const (
	AckUnknown  AckKind = iota // a payload the adapter did not understand: changes nothing
	AckOK                      // done for this group
	AckNak                     // redeliver per schedule, not before Ack.Delay
	AckProgress                // restart the ack timer
	AckTerm                    // never redeliver to this group
)

// String names the kind (for logs; each adapter has its own spelling).
func (k AckKind) String() string {
	switch k {
	case AckOK:
		return "ok"
	case AckNak:
		return "nak"
	case AckProgress:
		return "progress"
	case AckTerm:
		return "term"
	default:
		return "unknown"
	}
}

// Ack is a consumer's acknowledgement of one delivery.
type Ack struct {
	Kind   AckKind
	Delay  time.Duration // AckNak: not before this
	Reason string        // AckTerm
}

// Ack applies a consumer's acknowledgement of delivery id. done is called
// once the outcome is durable, with nil or an *kqerr.Error (409 for an unknown,
// stale or used id; 400 for an unknown payload). done may be nil when
// nobody waits for the outcome (a NATS ack with no reply subject, the
// usual case): the ack then costs no callback.
func (b *Broker) Ack(group, consumerID, id string, a Ack, done func(error)) {
	if a.Kind == AckUnknown {
		call(done, kqerr.New(kqerr.BadRequest, nil, "unknown ack payload"))
		return
	}
	b.mu.Lock()
	f, ok := b.inflight[id]
	if !ok || f.c.id != consumerID || f.d.Group != group || f.deadline.IsZero() {
		prev, used := b.used.get(id)
		b.mu.Unlock()
		if used && prev == a.Kind {
			call(done, nil) // the same terminal reply again: same answer
			return
		}
		call(done, kqerr.New(kqerr.Conflict, nil, "unknown, stale or used delivery id %s", id))
		return
	}
	now := b.cfg.Now()
	if a.Kind == AckProgress {
		f.deadline = now.Add(f.c.ackWait)
		b.mu.Unlock()
		call(done, nil)
		return
	}
	b.used.add(id, a.Kind)
	if answer := done; answer != nil {
		done = func(err error) {
			if err != nil {
				err = storeError(err)
			}
			answer(err)
		}
	}
	var more []*flight
	m := f.d.Message
	switch a.Kind {
	case AckOK:
		b.unreserve(f)
		b.counters.acked.Add(1)
		if b.cfg.Observer != nil {
			b.cfg.Observer.Acked(m.Topic, now.Sub(f.sent))
		}
		if f.fly {
			call(done, nil)
		} else {
			b.update(store.Update{Op: store.OpAck, Topic: m.Topic, ID: m.ID, Group: group}, done)
		}
	case AckNak:
		b.counters.nacked.Add(1)
		more = b.fail(f, RedeliverNak, a.Delay, false, done)
	case AckTerm:
		b.unreserve(f)
		if f.fly {
			call(done, nil)
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

// call calls done with err, unless done is nil.
func call(done func(error), err error) {
	if done != nil {
		done(err)
	}
}
