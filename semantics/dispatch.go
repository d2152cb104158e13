package semantics

import (
	"time"

	"github.com/kitenats/kitenats/store"
)

// flight is one delivery waiting for its acknowledgement.
type flight struct {
	d        Delivery
	c        *consumer
	deadline time.Time // zero until sent
	fly      bool      // not stored: nothing to update
	// published is when the message was published (or committed), for
	// Observer.Delivered; zero when unknown. sent is when the delivery was
	// sent, for Observer.Acked.
	published time.Time
	sent      time.Time
}

type flightKey struct{ topic, id, group string }

func (f *flight) key() flightKey { return flightKey{f.d.Message.Topic, f.d.Message.ID, f.d.Group} }

// reserve books consumer c for delivering m to g as attempt number attempt.
// caller must hold b.mu
func (b *Broker) reserve(c *consumer, g *group, m *store.Message, attempt int, fly bool) *flight {
	f := &flight{
		d: Delivery{
			ID:       randomToken(10),
			Consumer: c.id,
			Group:    g.name,
			Attempt:  attempt,
			Message:  m,
		},
		c:   c,
		fly: fly,
	}
	c.inflight++
	b.inflight[f.d.ID] = f
	b.flying[f.key()] = f.d.ID
	return f
}

// unreserve forgets a flight that was never sent, or that ended.
// caller must hold b.mu
func (b *Broker) unreserve(f *flight) {
	if _, ok := b.inflight[f.d.ID]; !ok {
		return
	}
	delete(b.inflight, f.d.ID)
	if b.flying[f.key()] == f.d.ID {
		delete(b.flying, f.key())
	}
	f.c.inflight--
}

// lease is the stored next-attempt time of a delivery sent at now.
func (b *Broker) lease(c *consumer, now time.Time) time.Time {
	return now.Add(c.ackWait + b.cfg.LeaseMargin)
}

// send delivers reserved flights. Must be called without b.mu.
func (b *Broker) send(fs []*flight) {
	putBack := false
	for _, f := range fs {
		b.mu.Lock()
		if _, ok := b.inflight[f.d.ID]; !ok {
			b.mu.Unlock()
			continue // the consumer left meanwhile; its flights were failed
		}
		if f.c.thr != nil && f.c.thr.Full() {
			// Reserved in a batch (a recover pass, a departed member's
			// flights) before earlier sends filled the window.
			b.putBack(f)
			b.mu.Unlock()
			putBack = true
			continue
		}
		now := b.cfg.Now()
		f.sent, f.deadline = now, now.Add(f.c.ackWait)
		ep := f.c.ep
		b.mu.Unlock()
		b.counters.delivered.Add(1)
		if f.d.Attempt > 1 {
			b.counters.redelivered.Add(1)
		} else if b.cfg.Observer != nil && !f.published.IsZero() {
			// max: a producer's clock ahead of ours (Created) is no
			// negative latency.
			b.cfg.Observer.Delivered(f.d.Message.Topic, max(now.Sub(f.published), 0))
		}
		if err := ep.Deliver(&f.d); err != nil {
			b.log.Debug("semantics: deliver failed", "group", f.d.Group, "msg_id", f.d.Message.ID, "err", err)
			b.mu.Lock()
			b.undeliverable(f)
			b.mu.Unlock()
		}
	}
	if putBack {
		b.wake()
	}
}

// putBack ends a flight that was never sent because its consumer's
// endpoint became Full: not an attempt, due again at once, for whichever
// member has room (send wakes the recover loop).
// caller must hold b.mu
func (b *Broker) putBack(f *flight) {
	b.unreserve(f)
	if f.fly {
		b.counters.dropped.Add(1)
		return
	}
	m, g := f.d.Message, f.c.group
	g.drained = false
	b.update(store.Update{Op: store.OpRetry, Topic: m.Topic, ID: m.ID, Group: f.d.Group,
		Attempts: f.d.Attempt - 1, Next: b.cfg.Now()}, nil)
}

// undeliverPause is how long a group waits for a message whose send failed
// (a full write queue, say) before the recover loop offers it again.
const undeliverPause = time.Second

// undeliverable ends a flight whose send failed. The message never reached
// the consumer, so the attempt does not count: the group gets it again from
// the recover loop after a short pause, which a consumer that keeps failing
// cannot turn into a tight loop that burns the deliver limit.
// caller must hold b.mu
func (b *Broker) undeliverable(f *flight) {
	if _, ok := b.inflight[f.d.ID]; !ok {
		return
	}
	b.unreserve(f)
	b.counters.undeliverable.Add(1)
	if f.fly {
		b.counters.dropped.Add(1)
		return
	}
	b.observeRedelivery(RedeliverSendFailed)
	m := f.d.Message
	b.update(store.Update{Op: store.OpRetry, Topic: m.Topic, ID: m.ID, Group: f.d.Group,
		Attempts: f.d.Attempt - 1, Next: b.cfg.Now().Add(undeliverPause)}, nil)
}

// fail ends flight f as a failed attempt (why: one of RedeliveryReasons):
// the message is redelivered per the schedule (not before delay), at once
// when now is true, or becomes a dead letter for the group at its deliver
// limit or expiry. done, if not nil, gets the outcome of the store update.
// It returns flights to send.
// caller must hold b.mu
func (b *Broker) fail(f *flight, why string, delay time.Duration, now bool, done func(error)) []*flight {
	if _, ok := b.inflight[f.d.ID]; !ok {
		if done != nil {
			done(nil)
		}
		return nil
	}
	b.unreserve(f)
	m, g, attempts := f.d.Message, f.c.group, f.d.Attempt
	t := b.cfg.Now()
	if f.fly {
		if done != nil {
			done(nil)
		}
		if attempts >= flyAttempts {
			b.counters.dropped.Add(1)
			return nil
		}
		if c := b.choose(g, t); c != nil {
			b.observeRedelivery(why)
			return []*flight{b.reserve(c, g, m, attempts+1, true)}
		}
		b.counters.dropped.Add(1)
		return nil
	}
	if reason := deadReason(m, attempts, t); reason != "" {
		b.update(store.Update{Op: store.OpDead, Topic: m.Topic, ID: m.ID, Group: g.name, Reason: reason}, done)
		return nil
	}
	b.observeRedelivery(why)
	next := t.Add(max(b.sched.Delay(attempts), delay))
	if now {
		next = t
	}
	if next.After(t) {
		b.update(store.Update{Op: store.OpRetry, Topic: m.Topic, ID: m.ID, Group: g.name, Attempts: attempts, Next: next}, done)
		return nil
	}
	if c := b.choose(g, t); c != nil && g.allowed(m.Topic, t) {
		nf := b.reserve(c, g, m, attempts+1, false)
		b.update(store.Update{Op: store.OpRetry, Topic: m.Topic, ID: m.ID, Group: g.name, Attempts: attempts + 1, Next: b.lease(c, t)}, done)
		return []*flight{nf}
	}
	b.update(store.Update{Op: store.OpRetry, Topic: m.Topic, ID: m.ID, Group: g.name, Attempts: attempts, Next: t}, done)
	g.drained = false
	b.wake()
	return nil
}

// observeRedelivery tells Config.Observer that a message is offered to a
// group again, and why.
func (b *Broker) observeRedelivery(why string) {
	if b.cfg.Observer != nil {
		b.cfg.Observer.Redelivered(why)
	}
}

// deadReason says why m can no longer be delivered after attempts, or "".
func deadReason(m *store.Message, attempts int, now time.Time) string {
	switch {
	case attempts >= m.DeliverLimit:
		return "deliver limit reached"
	case !now.Before(m.Expires):
		return "expired"
	default:
		return ""
	}
}

// update queues a store update. If the writer refuses it (queue full or
// shutting down) the update is lost from this run only: the stored state
// still has the delivery's lease, so the message is redelivered later.
//
// An update of one group's state (retry, ack, dead) is tracked until it is
// durable: until then the store still shows the old state, and the recover
// loop must not trust what Due says about that (message, group).
// For those, the caller must hold b.mu.
func (b *Broker) update(u store.Update, done func(error)) {
	tracked := u.Group != "" && (u.Op == store.OpRetry || u.Op == store.OpAck || u.Op == store.OpDead)
	cb := done
	var k flightKey
	if tracked {
		k = flightKey{u.Topic, u.ID, u.Group}
		s := b.settling[k]
		if s == nil {
			s = &settle{}
			b.settling[k] = s
		}
		s.pending++
		cb = func(err error) {
			b.mu.Lock()
			b.settled(k)
			b.mu.Unlock()
			if done != nil {
				done(err)
			}
		}
	}
	if err := b.w.Update(u, cb); err != nil {
		b.log.Warn("semantics: store update dropped", "op", u.Op.String(), "topic", u.Topic, "msg_id", u.ID, "err", err)
		if tracked {
			b.settled(k) // we hold b.mu: no callback will come
		}
		if done != nil {
			done(err)
		}
	}
}

// settle tracks the queued writes of one (message, group).
type settle struct {
	pending int    // writes queued, not yet durable
	doneGen uint64 // b.gen when the last of them became durable
}

// settled records that one queued write of k became durable.
// caller must hold b.mu
func (b *Broker) settled(k flightKey) {
	s := b.settling[k]
	if s == nil {
		return
	}
	s.pending--
	b.gen++
	s.doneGen = b.gen
}

// unsettled reports whether what a Due read that started at generation gen
// says about k may be stale: a write of k is still queued, or became durable
// after the read started.
// caller must hold b.mu
func (b *Broker) unsettled(k flightKey, gen uint64) bool {
	s := b.settling[k]
	return s != nil && (s.pending > 0 || s.doneGen > gen)
}

// pruneSettled forgets what no read that starts after gen can be confused
// by.
// caller must hold b.mu
func (b *Broker) pruneSettled(gen uint64) {
	for k, s := range b.settling {
		if s.pending == 0 && s.doneGen <= gen {
			delete(b.settling, k)
		}
	}
}

// closeConsumer removes c; its unacknowledged deliveries go at once to the
// group's other consumers.
// caller must hold b.mu
func (b *Broker) closeConsumer(c *consumer) []*flight {
	if _, ok := b.consumers[c.id]; !ok {
		return nil
	}
	delete(b.consumers, c.id)
	g := c.group
	for i, x := range g.consumers {
		if x == c {
			g.consumers = append(g.consumers[:i:i], g.consumers[i+1:]...)
			break
		}
	}
	if c.conn != 0 {
		cs := b.byConn[c.conn]
		for i, x := range cs {
			if x == c {
				cs = append(cs[:i:i], cs[i+1:]...)
				break
			}
		}
		if len(cs) == 0 {
			delete(b.byConn, c.conn)
		} else {
			b.byConn[c.conn] = cs
		}
	}
	var more []*flight
	for _, f := range b.inflight {
		if f.c == c {
			more = append(more, b.fail(f, RedeliverConsumerGone, 0, true, nil)...)
		}
	}
	return more
}

// usedIDs remembers the terminal ack of recently ended delivery ids, so that
// the same reply repeated (an AckSync retried after a lost reply) gets the
// same answer. It is a fixed-size ring.
type usedIDs struct {
	kinds map[string]AckKind
	ring  []string
	next  int
}

func newUsedIDs(n int) *usedIDs {
	return &usedIDs{kinds: make(map[string]AckKind, n), ring: make([]string, n)}
}

func (u *usedIDs) add(id string, k AckKind) {
	if old := u.ring[u.next]; old != "" {
		delete(u.kinds, old)
	}
	u.ring[u.next] = id
	u.kinds[id] = k
	u.next = (u.next + 1) % len(u.ring)
}

func (u *usedIDs) get(id string) (AckKind, bool) {
	k, ok := u.kinds[id]
	return k, ok
}
