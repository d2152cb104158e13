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
	bindings  []registry.Binding
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

// route is one binding of one group, compiled, on a topic.
type route struct {
	g *group
	m registry.Matcher
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

// setBindings replaces g's bindings and refreshes its watermark limiters.
func (g *group) setBindings(bs []registry.Binding) {
	g.bindings = append([]registry.Binding(nil), bs...)
	seen := make(map[string]bool)
	for _, bd := range g.bindings {
		if seen[bd.Topic] {
			continue // the first binding of a topic sets its watermark
		}
		seen[bd.Topic] = true
		w := int(bd.Watermark)
		l := g.limiters[bd.Topic]
		switch {
		case w <= 0:
			delete(g.limiters, bd.Topic)
		case l == nil || int(l.Limit()) != w:
			g.limiters[bd.Topic] = rate.NewLimiter(rate.Limit(w), max(1, w/2))
		}
	}
	for t := range g.limiters {
		if !seen[t] {
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
		g := b.groups[n]
		for _, bd := range g.bindings {
			b.routes[bd.Topic] = append(b.routes[bd.Topic], route{g: g, m: registry.Compile(bd)})
		}
	}
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
	for _, r := range b.routes[topic] {
		if !r.m.Matches(topic, messageType) {
			continue
		}
		i := 0
		for ; i < len(gs) && gs[i] != r.g; i++ {
		}
		if i == len(gs) {
			gs = append(gs, r.g)
			persistent = append(persistent, false)
		}
		persistent[i] = persistent[i] || r.m.Persistent
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
