package semantics

import (
	"context"
	"time"

	"github.com/kitenats/kitenats/store"
)

// Tick does the broker's timed work at the clock's now: it fails the
// deliveries whose ack wait is over and feeds each group's free capacity
// from the messages the store holds due for it. A full tick looks at every
// group; an early one (after an ack freed capacity) skips groups whose due
// messages were already drained. Tests drive it with a fake clock.
//
// Its cost is O(in flight + due messages delivered), never O(backlog): the
// store is asked for at most as many messages as the group can take.
func (b *Broker) Tick(ctx context.Context, full bool) {
	now := b.cfg.Now()
	b.mu.Lock()
	var more []*flight
	for _, f := range b.inflight {
		if !f.deadline.IsZero() && !now.Before(f.deadline) {
			b.counters.timeouts.Add(1)
			more = append(more, b.fail(f, RedeliverTimeout, 0, false, nil)...)
		}
	}
	type want struct {
		g    *group
		n    int
		drop bool // no live consumer and nothing persistent: drop what is due
	}
	var wants []want
	for _, g := range b.groups {
		if b.draining || (!full && g.drained) {
			continue
		}
		if len(g.consumers) == 0 {
			if full && !g.persistent() {
				wants = append(wants, want{g: g, n: b.cfg.RecoverPage, drop: true})
			}
			continue
		}
		if n := min(g.capacity(), b.cfg.RecoverPage); n > 0 {
			wants = append(wants, want{g: g, n: n})
		}
	}
	b.mu.Unlock()
	b.send(more)

	for _, w := range wants {
		b.mu.Lock()
		gen := b.gen
		b.mu.Unlock()
		due, err := b.st.Due(ctx, w.g.name, now, w.n)
		if err != nil {
			b.log.Warn("semantics: reading due messages", "group", w.g.name, "err", err)
			continue
		}
		b.mu.Lock()
		if len(due) < w.n {
			w.g.drained = true
		}
		var fs []*flight
		if w.drop {
			b.dropDue(w.g, due, gen)
		} else {
			fs = b.redeliver(w.g, due, now, gen)
		}
		b.mu.Unlock()
		b.send(fs)
	}
	if full {
		b.mu.Lock()
		b.pruneSettled(b.gen)
		b.mu.Unlock()
	}
}

// persistent reports whether any binding of g is persistent.
func (g *group) persistent() bool { return g.anyPers }

// redeliver books consumers for due messages of g, in order, until none is
// eligible or the watermark runs out. gen is b.gen when the Due read began.
// caller must hold b.mu
func (b *Broker) redeliver(g *group, due []*store.Message, now time.Time, gen uint64) []*flight {
	var fs []*flight
	for _, m := range due {
		k := flightKey{m.Topic, m.ID, g.name}
		if _, ok := b.flying[k]; ok || b.unsettled(k, gen) {
			// In flight, or read before its latest write was durable:
			// the store's answer may be stale.
			continue
		}
		st, ok := m.State(g.name)
		if !ok {
			continue
		}
		if reason := deadReason(m, st.Attempts, now); reason != "" {
			b.update(store.Update{Op: store.OpDead, Topic: m.Topic, ID: m.ID, Group: g.name, Reason: reason}, nil)
			continue
		}
		match, persistent := b.binds(g, m.Topic, m.MessageType)
		if !match || !g.takes(persistent) {
			// The group no longer binds it: it is done for this group.
			b.update(store.Update{Op: store.OpAck, Topic: m.Topic, ID: m.ID, Group: g.name}, nil)
			b.counters.dropped.Add(1)
			continue
		}
		c := b.choose(g, now)
		if c == nil || !g.allowed(m.Topic, now) {
			g.drained = false // more is due; try again at the next tick
			break
		}
		m.Groups = nil // a delivery carries the message, not its states
		f := b.reserve(c, g, m, st.Attempts+1, false)
		if m.Created.Unix() > 0 { // a KiteQ producer may leave it 0
			f.published = m.Created // the first delivery of a stored message: as old as the message
		}
		fs = append(fs, f)
		b.update(store.Update{Op: store.OpRetry, Topic: m.Topic, ID: m.ID, Group: g.name, Attempts: st.Attempts + 1, Next: b.lease(c, now)}, nil)
	}
	return fs
}

// dropDue ends the due messages of a group that has no live consumer and
// only non-persistent bindings: such a group drops what it cannot take.
// caller must hold b.mu
func (b *Broker) dropDue(g *group, due []*store.Message, gen uint64) {
	for _, m := range due {
		if b.unsettled(flightKey{m.Topic, m.ID, g.name}, gen) {
			continue
		}
		b.update(store.Update{Op: store.OpAck, Topic: m.Topic, ID: m.ID, Group: g.name}, nil)
		b.counters.dropped.Add(1)
	}
}
