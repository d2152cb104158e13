package semantics

import (
	"maps"
	"sync"
	"time"

	"github.com/kitenats/kitenats/kqerr"
	"github.com/kitenats/kitenats/store"
)

// PubAck is the answer to an accepted publish.
type PubAck struct {
	Topic     string
	Seq       uint64
	Duplicate bool
	ID        string
	// Groups is how many groups took the message: each gets it (a prepared
	// message: as the bindings stand now, once committed). 0 means nobody
	// will get it, not even a group that binds later; a duplicate took
	// nothing new, so it is 0 too (NATS-PROTOCOL.md §2).
	Groups int
}

// PayloadSize is what MaxMessageBytes bounds: the body and the user
// properties, each counted as a header line ("Key: Value\r\n"). A NATS
// publish's header block and body within the server's max_payload are
// always within it; the broker's own fields (id, topic, type, group) do
// not count, so that a body of exactly max_payload is taken.
func PayloadSize(m *store.Message) int {
	n := len(m.Body)
	for _, p := range m.Properties {
		n += len(p.Key) + len(p.Value) + 4
	}
	return n
}

// Publish accepts a validated publication from any protocol. done is called
// exactly once: with the ack once the message is durable (at once for a fly
// message, which is accepted, not stored), or with an *kqerr.Error.
func (b *Broker) Publish(p *Publication, done func(PubAck, error)) {
	now := b.cfg.Now()
	m := p.Message
	if !b.Serves(m.Topic) {
		done(PubAck{}, kqerr.New(kqerr.NotFound, nil, "topic not served: %s", m.Topic))
		return
	}
	if size := PayloadSize(m); size > b.cfg.MaxMessageBytes {
		done(PubAck{}, kqerr.New(kqerr.TooLarge, nil, "message too large: %d bytes, at most %d", size, b.cfg.MaxMessageBytes))
		return
	}
	if b.accept != nil && !b.accept.AllowN(now, 1) {
		done(PubAck{}, kqerr.New(kqerr.TooMany, nil, "accept limit reached (%d msgs/s)", b.cfg.AcceptRate))
		return
	}
	if p.Prepare && b.tx == nil {
		done(PubAck{}, kqerr.New(kqerr.NotImplemented, nil, "two-phase commit is not implemented yet"))
		return
	}
	m.Seq = b.nextSeq()
	ack := PubAck{Topic: m.Topic, Seq: m.Seq, ID: m.ID}
	if p.Fly {
		ack.Groups = b.publishFly(m)
		done(ack, nil)
		return
	}

	var flights []*flight
	if p.Prepare {
		// Stored, delivered to nobody until committed; the coordinator asks
		// the producer back from NextCheck on. The ack says how many groups
		// would take it as the bindings stand; the commit plans again.
		m.Prepared, m.Groups, m.NextCheck = true, nil, b.tx.NextCheck(now)
		ack.Groups = b.takers(m.Topic, m.MessageType)
	} else {
		flights = b.plan(m, now)
		ack.Groups = len(m.Groups)
	}
	// A message whose id the broker made cannot be a duplicate, so it is
	// delivered at once, while its save waits for the writer; an ack that
	// comes before the writer takes the save joins it in one
	// group-committed write (a store drops a record saved and deleted in
	// the same batch). The
	// publisher's ack still waits for the save to be durable; should the
	// save fail, the publisher gets the error and the deliveries already
	// sent are forgotten (at least once: its retry delivers again).
	m.NewID = p.NewID
	early := p.NewID && len(flights) > 0
	err := b.w.Save(m, func(res store.SaveResult, err error) {
		if err == nil {
			err = res.Err
		}
		if err == nil && b.cfg.Observer != nil {
			b.cfg.Observer.Stored(m.Topic, b.cfg.Now().Sub(now))
		}
		if err != nil || res.Duplicate {
			b.mu.Lock()
			for _, f := range flights {
				b.unreserve(f)
			}
			b.mu.Unlock()
		}
		switch {
		case err != nil:
			done(PubAck{}, storeError(err))
		case res.Duplicate:
			ack.Seq, ack.Duplicate, ack.Groups = res.Seq, true, 0
			done(ack, nil)
		case p.Prepare:
			b.counters.prepared.Add(1)
			done(ack, nil)
		default:
			b.counters.published.Add(1)
			if ack.Groups == 0 {
				b.unmatched.add(&b.counters, m.Topic)
			}
			done(ack, nil)
			b.tap(m)
			if !early {
				b.send(flights)
			}
		}
	})
	if err != nil {
		b.mu.Lock()
		for _, f := range flights {
			b.unreserve(f)
		}
		b.mu.Unlock()
		done(PubAck{}, storeError(err))
		return
	}
	if early {
		b.send(flights)
	}
}

// plan sets m's groups and reserves a consumer for each group that can take
// the message now. A group that cannot is stored as due at once, for the
// recover loop; a non-persistent group without any live consumer drops it
// (m.Groups leaves it out: it did not take the message).
func (b *Broker) plan(m *store.Message, now time.Time) []*flight {
	b.mu.Lock()
	defer b.mu.Unlock()
	gs, persistent := b.matching(m.Topic, m.MessageType)
	var flights []*flight
	m.Groups = m.Groups[:0]
	for i, g := range gs {
		if !g.takes(persistent[i]) {
			b.counters.dropped.Add(1)
			continue
		}
		st := store.GroupState{Group: g.name, NextAttempt: now}
		if c := b.choose(g, now); c != nil && g.allowed(m.Topic, now) {
			f := b.reserve(c, g, m, 1, false)
			f.published = now
			flights = append(flights, f)
			st.Attempts, st.NextAttempt = 1, b.lease(c, now)
		} else {
			g.drained = false
		}
		m.Groups = append(m.Groups, st)
	}
	return flights
}

// takers counts the groups that would take a message of (topic,
// messageType) now: those plan would keep in m.Groups.
func (b *Broker) takers(topic, messageType string) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	gs, persistent := b.matching(topic, messageType)
	n := 0
	for i, g := range gs {
		if g.takes(persistent[i]) {
			n++
		}
	}
	return n
}

// takes reports whether g takes a message it matches, persistent saying
// whether a matching binding of g is: a group without a live consumer
// takes only what a persistent binding keeps for it.
// caller must hold b.mu
func (g *group) takes(persistent bool) bool {
	return persistent || len(g.consumers) > 0
}

// publishFly delivers a fly message to one consumer of each matching group,
// from memory only, and returns how many groups took it.
func (b *Broker) publishFly(m *store.Message) int {
	now := b.cfg.Now()
	b.mu.Lock()
	gs, _ := b.matching(m.Topic, m.MessageType)
	var flights []*flight
	for _, g := range gs {
		if c := b.choose(g, now); c != nil {
			f := b.reserve(c, g, m, 1, true)
			f.published = now
			flights = append(flights, f)
		} else {
			b.counters.dropped.Add(1)
		}
	}
	b.mu.Unlock()
	b.counters.published.Add(1)
	if len(flights) == 0 {
		b.unmatched.add(&b.counters, m.Topic)
	}
	b.tap(m)
	b.send(flights)
	return len(flights)
}

// maxUnmatchedTopics bounds the topics counted apart in unmatchedTopics:
// publishers choose topics (every topic is served unless topics are
// configured), so the map must not grow with whatever they send.
const maxUnmatchedTopics = 1024

// unmatchedTopics counts, per topic, the accepted publishes that no group
// took. Its lock is a leaf: nothing is called while it is held.
type unmatchedTopics struct {
	mu sync.Mutex
	n  map[string]int64
}

// add counts one publish of topic that no group took, in c.unmatched and,
// for the first maxUnmatchedTopics topics, per topic.
func (u *unmatchedTopics) add(c *counters, topic string) {
	c.unmatched.Add(1)
	u.mu.Lock()
	if _, ok := u.n[topic]; ok || len(u.n) < maxUnmatchedTopics {
		if u.n == nil {
			u.n = make(map[string]int64)
		}
		u.n[topic]++
	}
	u.mu.Unlock()
}

// snapshot returns a copy of the per-topic counts.
func (u *unmatchedTopics) snapshot() map[string]int64 {
	u.mu.Lock()
	defer u.mu.Unlock()
	return maps.Clone(u.n)
}

// tap tells Config.Tap of an accepted, committed message.
func (b *Broker) tap(m *store.Message) {
	if b.cfg.Tap != nil {
		b.cfg.Tap.Tap(m)
	}
}
