package semantics

import (
	"sort"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/kitenats/kitenats/registry"
	"github.com/kitenats/kitenats/store"
)

// Delivery is one attempt to deliver a message to one consumer.
type Delivery struct {
	ID       string // random, unique per attempt
	Consumer string
	Group    string // the consuming group
	Attempt  int    // this group's attempt number, from 1
	Message  *store.Message
}

// Endpoint pushes deliveries to one consumer, through its adapter (a NATS
// deliver subject, a KiteQ connection). Deliver must not block for
// long; an error is a refused send: it uses no attempt, and the group is
// offered the message again after undeliverPause.
type Endpoint interface {
	Deliver(d *Delivery) error
}

// Throttler is an optional interface of an Endpoint whose transport paces
// deliveries itself, a KiteQ connection with its window of unacknowledged
// bytes. While Full reports true the consumer is passed over, as one at
// its in-flight limit is, and the group's messages go to other members or
// wait. The endpoint's own acks free room; Broker.Ack then wakes the
// recover loop, which looks again. Full is called with the broker's lock
// held: it must be cheap and must not call the Broker.
type Throttler interface {
	Full() bool
}

// ConsumerSpec describes a consumer joining a group.
type ConsumerSpec struct {
	Group string
	// Key identifies the consumer for idempotent joins: joining again with
	// the same (Group, Key, Conn) returns the same consumer.
	Key  string
	Conn uint64 // the holding connection, as ConnClosed names it; 0: none (compat's consumers leave themselves)
	// Warmup is the ramp of kiteq-protocol.md §8.1 (0: none).
	Warmup      time.Duration
	MaxInflight int           // 0: the broker default
	AckWait     time.Duration // 0: the broker default
	Endpoint    Endpoint
}

// group is one consumer group: its bindings and its live consumers.
type group struct {
	// bindMu orders the changes of the group's bindings by BIND
	// (AddBindings, RemoveBinding): each reads the set, checks and keeps
	// it, then applies it. Taken before mu, never while holding it.
	bindMu    sync.Mutex
	name      string
	bindings  []registry.Binding // never changed in place: setBindings replaces the slice
	byTopic   map[string]route   // the bindings compiled, per topic
	anyPers   bool               // one of the bindings is persistent
	consumers []*consumer
	limiters  map[string]*rate.Limiter // topic → watermark limiter (absent: unlimited)
	// drained is set when the store had no more due messages for the group
	// at the last look; any new due state clears it.
	drained bool
}

// consumer is one member of a group that deliveries can go to.
type consumer struct {
	id          string
	key         string
	conn        uint64
	group       *group
	ep          Endpoint
	thr         Throttler // ep, when it paces itself; nil otherwise
	authAt      time.Time
	warmup      time.Duration
	maxInflight int
	ackWait     time.Duration
	inflight    int
}

// route is one group's bindings on one topic, compiled: directs by
// messageType (whether one of them is persistent), the others in order.
type route struct {
	g      *group
	n      int             // bindings
	direct map[string]bool // messageType → persistent
	others []registry.Matcher
}

// matches reports whether r's group takes a message of messageType, and
// whether one of its matching bindings is persistent.
func (r *route) matches(topic, messageType string) (hit, persistent bool) {
	persistent, hit = r.direct[messageType]
	for _, m := range r.others {
		if m.Matches(topic, messageType) {
			hit = true
			persistent = persistent || m.Persistent
		}
	}
	return hit, persistent
}

// compiledBindings is a group's bindings made ready to apply (setBindings),
// without the broker's lock.
type compiledBindings struct {
	bindings []registry.Binding
	byTopic  map[string]route
	marks    []topicMark // each topic's watermark: its first binding's
	anyPers  bool
}

type topicMark struct {
	topic string
	w     int
}

// compileBindings copies and compiles bs.
func compileBindings(bs []registry.Binding) *compiledBindings {
	c := &compiledBindings{bindings: append([]registry.Binding(nil), bs...), byTopic: make(map[string]route)}
	for _, bd := range c.bindings {
		r, ok := c.byTopic[bd.Topic]
		if !ok {
			c.marks = append(c.marks, topicMark{bd.Topic, int(bd.Watermark)})
		}
		r.n++
		if bd.BindType == registry.Direct {
			if r.direct == nil {
				r.direct = make(map[string]bool)
			}
			r.direct[bd.MessageType] = r.direct[bd.MessageType] || bd.Persistent
		} else {
			r.others = append(r.others, registry.Compile(bd))
		}
		c.byTopic[bd.Topic] = r
		c.anyPers = c.anyPers || bd.Persistent
	}
	return c
}

// group returns the group named name, creating it.
// caller must hold b.mu (or own b exclusively, as New does)
func (b *Broker) group(name string) *group {
	g := b.groups[name]
	if g == nil {
		g = &group{name: name, limiters: make(map[string]*rate.Limiter)}
		b.groups[name] = g
	}
	return g
}

// setBindings replaces g's bindings (see compileBindings) and refreshes
// its watermark limiters. The routes are the caller's to update
// (replaceRoutes, rebuildRoutes).
// caller must hold b.mu (or own b exclusively, as New does)
func (g *group) setBindings(c *compiledBindings) {
	g.bindings, g.anyPers = c.bindings, c.anyPers
	g.byTopic = make(map[string]route, len(c.byTopic))
	for t, r := range c.byTopic {
		r.g = g
		g.byTopic[t] = r
	}
	for _, m := range c.marks {
		l := g.limiters[m.topic]
		switch {
		case m.w <= 0:
			delete(g.limiters, m.topic)
		case l == nil || int(l.Limit()) != m.w:
			g.limiters[m.topic] = rate.NewLimiter(rate.Limit(m.w), max(1, m.w/2))
		}
	}
	for t := range g.limiters {
		if _, ok := c.byTopic[t]; !ok {
			delete(g.limiters, t)
		}
	}
}

// rebuildRoutes recomputes the topic index from every group's bindings,
// and forgets the matches computed from the old one.
// caller must hold b.mu
func (b *Broker) rebuildRoutes() {
	b.routes = make(map[string][]route)
	b.matches = make(map[string]map[string]match)
	names := make([]string, 0, len(b.groups))
	for n := range b.groups {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		for t, r := range b.groups[n].byTopic {
			b.routes[t] = append(b.routes[t], r)
		}
	}
}

// replaceRoutes puts g's route on topic (none if it has no bindings there)
// where rebuildRoutes would (groups in name order), and forgets the
// topic's matches.
// caller must hold b.mu
func (b *Broker) replaceRoutes(topic string, g *group) {
	old := b.routes[topic]
	r, ok := g.byTopic[topic]
	out := make([]route, 0, len(old)+1)
	for _, o := range old {
		if o.g == g {
			continue
		}
		if ok && o.g.name > g.name {
			out = append(out, r)
			ok = false
		}
		out = append(out, o)
	}
	if ok {
		out = append(out, r)
	}
	if len(out) == 0 {
		delete(b.routes, topic)
	} else {
		b.routes[topic] = out
	}
	delete(b.matches, topic)
}

// bindingsOn is how many bindings every group has on topic.
// caller must hold b.mu
func (b *Broker) bindingsOn(topic string) int {
	n := 0
	for _, r := range b.routes[topic] {
		n += r.n
	}
	return n
}

// match is what matching found for one (topic, messageType).
type match struct {
	gs         []*group
	persistent []bool
}

// maxMatchTypes bounds the messageTypes whose matches are remembered per
// topic: publishers choose messageTypes, so the cache must not grow with
// whatever they send.
const maxMatchTypes = 1024

// maxMatchTopics bounds the topics whose matches are remembered, for the
// same reason (every topic is served unless topics are configured).
const maxMatchTopics = 1024

// matching returns each group with a binding matching (topic, type) once,
// and whether that group has a persistent matching binding. The answer is
// remembered until the bindings change (a regx binding is then matched once
// per messageType, not once per message). The slices are shared: callers
// must not modify them.
// caller must hold b.mu
func (b *Broker) matching(topic, messageType string) ([]*group, []bool) {
	byType := b.matches[topic]
	if m, ok := byType[messageType]; ok {
		return m.gs, m.persistent
	}
	gs, persistent := b.match(topic, messageType)
	if byType == nil && len(b.matches) < maxMatchTopics {
		byType = make(map[string]match)
		b.matches[topic] = byType
	}
	if byType != nil && len(byType) < maxMatchTypes {
		byType[messageType] = match{gs, persistent}
	}
	return gs, persistent
}

// match computes matching's answer from the topic index.
// caller must hold b.mu
func (b *Broker) match(topic, messageType string) ([]*group, []bool) {
	var gs []*group
	var persistent []bool
	for i := range b.routes[topic] {
		r := &b.routes[topic][i]
		if hit, p := r.matches(topic, messageType); hit {
			gs = append(gs, r.g)
			persistent = append(persistent, p)
		}
	}
	return gs, persistent
}

// binds reports whether g still has a binding matching (topic, type), and
// whether one of them is persistent.
// caller must hold b.mu
func (b *Broker) binds(g *group, topic, messageType string) (match, persistent bool) {
	gs, ps := b.matching(topic, messageType)
	for i, x := range gs {
		if x == g {
			return true, ps[i]
		}
	}
	return false, false
}

// allowed takes a watermark token for topic at now.
func (g *group) allowed(topic string, now time.Time) bool {
	l := g.limiters[topic]
	return l == nil || l.AllowN(now, 1)
}

// capacity is how many more deliveries the group's consumers can take.
func (g *group) capacity() int {
	n := 0
	for _, c := range g.consumers {
		n += max(0, c.maxInflight-c.inflight)
	}
	return n
}

// choose picks one eligible consumer of g at random: under its in-flight
// limit, passing the warmup ramp and not Full (Throttler). nil when none is
// eligible.
// caller must hold b.mu
func (b *Broker) choose(g *group, now time.Time) *consumer {
	var pick *consumer
	n := 0
	for _, c := range g.consumers {
		if c.inflight >= c.maxInflight || !warmedUp(c.authAt, c.warmup, now, b.rnd.IntN) || (c.thr != nil && c.thr.Full()) {
			continue
		}
		// Reservoir sampling: each eligible consumer is kept with
		// probability 1/n, so the pick is uniform without a slice.
		n++
		if b.rnd.IntN(n) == 0 {
			pick = c
		}
	}
	return pick
}
