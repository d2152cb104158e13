package semantics

import (
	"maps"
	"strconv"
	"sync"
	"time"

	"github.com/kitenats/kitenats/kqerr"
	"github.com/kitenats/kitenats/store"
)

// PubAck is the answer to an accepted publish.
type PubAck struct {
	Stream    string `json:"stream"` // the encoded topic token
	Seq       uint64 `json:"seq"`
	Duplicate bool   `json:"duplicate"`
	ID        string `json:"id"`
	// Groups is how many groups took the message: each gets it (a prepared
	// message: as the bindings stand now, once committed). 0 means nobody
	// will get it, not even a group that binds later; a duplicate took
	// nothing new, so it is 0 too (NATS-PROTOCOL.md §2).
	Groups int `json:"groups"`
}

// pubAckSize is the length of a PubAck's JSON but for its stream: the
// constant text, a 20-digit seq, false, a 32-digit id and a 4-digit groups.
const pubAckSize = len(`{"stream":"","seq":,"duplicate":false,"id":"","groups":}`) + 20 + 32 + 4

// appendJSON appends a's JSON, as encoding/json writes it, without
// reflection: it is written once per publish. Stream is a subject token and
// ID hex digits, so neither needs escaping.
func (a PubAck) appendJSON(b []byte) []byte {
	b = append(b, `{"stream":"`...)
	b = append(b, a.Stream...)
	b = append(b, `","seq":`...)
	b = strconv.AppendUint(b, a.Seq, 10)
	b = append(b, `,"duplicate":`...)
	b = strconv.AppendBool(b, a.Duplicate)
	b = append(b, `,"id":"`...)
	b = append(b, a.ID...)
	b = append(b, `","groups":`...)
	b = strconv.AppendInt(b, int64(a.Groups), 10)
	return append(b, '}')
}

// handlePublish takes one NATS publish on kq.<topic>.<messageType>.
func (b *Broker) handlePublish(msg *Msg) {
	p, err := b.parsePublish(msg)
	if err != nil {
		b.refuse(msg.Reply, err)
		return
	}
	b.Publish(p, func(ack PubAck, err error) {
		if err != nil {
			b.refuse(msg.Reply, err)
			return
		}
		if msg.Reply != "" {
			b.reply(msg.Reply, ack.appendJSON(make([]byte, 0, pubAckSize+len(ack.Stream))))
		}
	})
}

// parsePublish validates the subject, topic, size and headers of a publish.
func (b *Broker) parsePublish(msg *Msg) (*Publication, error) {
	topic, mt, err := ParseSubject(msg.Subject)
	if err != nil {
		return nil, kqerr.New(kqerr.BadRequest, err, "%v", err)
	}
	size := len(msg.Data)
	for k, vs := range msg.Header {
		for _, v := range vs {
			size += len(k) + len(v) + 4
		}
	}
	if size > b.cfg.MaxMessageBytes {
		return nil, kqerr.New(kqerr.TooLarge, nil, "message too large: %d bytes, at most %d", size, b.cfg.MaxMessageBytes)
	}
	return ParsePublish(topic, mt, msg.Header, msg.Data, b.cfg.Now(), newMessageID)
}

// refuse counts a refused publish and answers it, if it has a reply subject.
func (b *Broker) refuse(reply string, err error) {
	b.counters.refused.Add(1)
	if reply != "" {
		b.reply(reply, errorBody(err))
	}
}

func (b *Broker) reply(subject string, body []byte) {
	if err := b.tr.Publish(&Msg{Subject: subject, Data: body}); err != nil {
		b.log.Debug("semantics: reply failed", "subject", subject, "err", err)
	}
}

// Publish accepts a validated publication from any protocol. done is called
// exactly once: with the ack once the message is durable (at once for a fly
// message, which is accepted, not stored), or with an *kqerr.Error.
func (b *Broker) Publish(p *Publication, done func(PubAck, error)) {
	now := b.cfg.Now()
	m := p.Message
	if !b.serves(m.Topic) {
		done(PubAck{}, kqerr.New(kqerr.NotFound, nil, "topic not served: %s", m.Topic))
		return
	}
	if size := m.Size(); size > b.cfg.MaxMessageBytes {
		done(PubAck{}, kqerr.New(kqerr.TooLarge, nil, "message too large: %d bytes, at most %d", size, b.cfg.MaxMessageBytes))
		return
	}
	if b.accept != nil && !b.accept.AllowN(now, 1) {
		done(PubAck{}, kqerr.New(kqerr.TooMany, nil, "accept limit reached (%d msgs/s)", b.cfg.AcceptRate))
		return
	}
	if p.Prepare && b.tx == nil {
		done(PubAck{}, kqerr.New(kqerr.NotImplemented, nil, "two-phase commit (%s) is not implemented yet", HdrTx))
		return
	}
	m.Seq = b.nextSeq()
	ack := PubAck{Stream: EncodeToken(m.Topic), Seq: m.Seq, ID: m.ID}
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
			flights = append(flights, b.reserve(c, g, m, 1, false))
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
			flights = append(flights, b.reserve(c, g, m, 1, true))
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

// tap republishes an accepted, committed message on $KQ.TAP for dashboards:
// at most once, affecting nothing.
func (b *Broker) tap(m *store.Message) {
	subject := tapSubject(m.Topic, m.MessageType)
	if b.loc != nil && !b.loc.Interested(subject) {
		return // nobody taps: skip building and sending the copy
	}
	_ = b.tr.Publish(&Msg{
		Subject: subject,
		Header:  DeliveryHeaders(m, 0),
		Data:    m.Body,
	})
}

// natsEndpoint delivers to a NATS consumer's deliver subject, with the ack
// subject as reply: $KQ.ACK.<group>.<broker>.<consumer>.<delivery>.
type natsEndpoint struct {
	b       *Broker
	subject string
}

func (e natsEndpoint) Deliver(d *Delivery) error {
	return e.b.tr.Publish(&Msg{
		Subject:   e.subject,
		Reply:     "$KQ.ACK." + EncodeToken(d.Group) + "." + e.b.cfg.BrokerID + "." + d.Consumer + "." + d.ID,
		RawHeader: appendDeliveryHeader(make([]byte, 0, 320), d.Message, d.Attempt),
		Data:      d.Message.Body,
	})
}
