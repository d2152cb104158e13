package semantics

import (
	"context"
	"errors"
	"slices"

	"github.com/kitenats/kitenats/kqerr"
	"github.com/kitenats/kitenats/registry"
)

// deadlineEvery is how many bindings AddBindings checks between two looks
// at its context's deadline.
const deadlineEvery = 512

// AddBindings adds bs to group's set: identical bindings are no-ops, a
// conflict (NATS-PROTOCOL.md §3) refuses the whole call with 409, and the
// new set is made durable before it is used. The set may not grow past
// Limits.BindingsPerGroup, nor a topic's bindings (every group's) past
// Limits.BindingsPerTopic (409). It is all or nothing: a refusal, or ctx
// ending before the set is kept (503), changes nothing. One group's
// changes are applied one at a time.
func (b *Broker) AddBindings(ctx context.Context, group string, bs []registry.Binding) error {
	b.mu.Lock()
	g := b.group(group)
	b.mu.Unlock()
	g.bindMu.Lock()
	defer g.bindMu.Unlock()
	if err := ctx.Err(); err != nil {
		return b.outOfTime(err, 0, len(bs))
	}
	b.mu.Lock()
	cur := g.bindings               // never changed in place: copied outside the lock
	onTopic := make(map[string]int) // every group's bindings of the topics bs names
	for _, bd := range bs {
		if _, ok := onTopic[bd.Topic]; !ok {
			onTopic[bd.Topic] = b.bindingsOn(bd.Topic)
		}
	}
	b.mu.Unlock()
	lim := b.cfg.Limits
	x := registry.NewConflictIndex(cur)
	added := false
	for i, bd := range bs {
		if i%deadlineEvery == deadlineEvery-1 {
			if err := ctx.Err(); err != nil {
				return b.outOfTime(err, i, len(bs))
			}
		}
		dup, err := x.Conflict(bd)
		if err != nil {
			return kqerr.New(kqerr.Conflict, err, "%v", err)
		}
		if dup {
			continue
		}
		x.Add(bd)
		added = true
		if over(x.Len(), lim.BindingsPerGroup) {
			return b.refuse(LimitBindingsPerGroup, kqerr.Conflict,
				"%s would have more than %d bindings, the limit of bindings per group (maxBindingsPerGroup)", group, lim.BindingsPerGroup)
		}
		onTopic[bd.Topic]++
		if over(onTopic[bd.Topic], lim.BindingsPerTopic) {
			return b.refuse(LimitBindingsPerTopic, kqerr.Conflict,
				"topic %s would have more than %d bindings, the limit of bindings per topic (maxBindingsPerTopic)", bd.Topic, lim.BindingsPerTopic)
		}
	}
	if !added {
		return nil
	}
	if err := ctx.Err(); err != nil {
		return b.outOfTime(err, len(bs), len(bs))
	}
	return b.keepBindings(ctx, group, x.Bindings())
}

// outOfTime is the refusal of a change of bindings whose call ran out of
// time after checking done of n bindings: nothing changed.
func (b *Broker) outOfTime(err error, done, n int) error {
	b.CountLimit(LimitAPIDeadline)
	return kqerr.New(kqerr.Unavailable, err, "out of time after checking %d of %d bindings; nothing changed", done, n)
}

// RemoveBinding removes group's binding of (topic, messageType).
func (b *Broker) RemoveBinding(ctx context.Context, group, topic, messageType string) error {
	b.mu.Lock()
	g := b.group(group)
	b.mu.Unlock()
	g.bindMu.Lock()
	defer g.bindMu.Unlock()
	b.mu.Lock()
	old := g.bindings
	b.mu.Unlock()
	var set []registry.Binding
	for _, bd := range old {
		if bd.Topic != topic || bd.MessageType != messageType {
			set = append(set, bd)
		}
	}
	if len(set) == len(old) {
		return kqerr.New(kqerr.NotFound, nil, "%s has no binding %s/%s", group, topic, messageType)
	}
	return b.keepBindings(ctx, group, set)
}

// keepBindings makes set durable, then applies it.
func (b *Broker) keepBindings(ctx context.Context, group string, set []registry.Binding) error {
	if err := b.keeper.KeepBindings(ctx, group, set); err != nil {
		if errors.Is(err, registry.ErrStatic) {
			return kqerr.New(kqerr.Conflict, err, "bindings are static")
		}
		return kqerr.New(kqerr.Unavailable, err, "keeping bindings: %v", err)
	}
	b.SetBindings(group, set)
	return nil
}

// SetBindings replaces the bindings of group (from AddBindings, or a
// registry watch).
//
// Only the topics the group's bindings were or are on are indexed again,
// and the bindings are compiled before the lock is taken: a group with
// many bindings costs the other groups, and the publishes, little.
func (b *Broker) SetBindings(group string, bs []registry.Binding) {
	c := compileBindings(bs)
	b.mu.Lock()
	defer b.mu.Unlock()
	g := b.group(group)
	old := g.byTopic
	g.setBindings(c)
	g.drained = false
	for topic := range old {
		if _, ok := c.byTopic[topic]; !ok {
			b.replaceRoutes(topic, g) // a topic the group leaves
		}
	}
	for topic := range c.byTopic {
		b.replaceRoutes(topic, g)
	}
}

// SetTopicBindings replaces, for one topic, the bindings of every group with
// byGroup (a registry's full state of the topic); groups absent from it
// lose their bindings on that topic.
func (b *Broker) SetTopicBindings(topic string, byGroup map[string][]registry.Binding) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for name := range byGroup {
		b.group(name)
	}
	for name, g := range b.groups {
		var keep []registry.Binding
		for _, bd := range g.bindings {
			if bd.Topic != topic {
				keep = append(keep, bd)
			}
		}
		for _, bd := range byGroup[name] {
			if bd.Topic == topic {
				bd.GroupID = name
				keep = append(keep, bd)
			}
		}
		g.setBindings(compileBindings(keep))
		g.drained = false
	}
	b.rebuildRoutes()
}

// Bindings returns every group's bindings.
func (b *Broker) Bindings() map[string][]registry.Binding {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := make(map[string][]registry.Binding)
	for n, g := range b.groups {
		if len(g.bindings) > 0 {
			out[n] = append([]registry.Binding(nil), g.bindings...)
		}
	}
	return out
}

// Join adds a consumer to a group and returns its id. Joining again with
// the same (Group, Key, Conn) returns the existing consumer; the same key
// on another connection replaces the old consumer (a client reconnected).
// A new consumer past Limits.ConsumersPerGroup, or past
// Limits.ConsumersPerConn on its connection, is refused with 429.
func (b *Broker) Join(spec ConsumerSpec) (string, error) {
	b.mu.Lock()
	g := b.group(spec.Group)
	old, err := b.joinable(g, spec)
	if err != nil {
		b.mu.Unlock()
		return "", err
	}
	if old != nil && old.conn == spec.Conn {
		b.mu.Unlock()
		return old.id, nil
	}
	var more []*flight
	if old != nil {
		more = b.closeConsumer(old)
	}
	c := &consumer{
		id:          randomToken(8),
		key:         spec.Key,
		conn:        spec.Conn,
		group:       g,
		ep:          spec.Endpoint,
		authAt:      b.cfg.Now(),
		warmup:      min(spec.Warmup, MaxWarmup),
		maxInflight: spec.MaxInflight,
		ackWait:     spec.AckWait,
	}
	if c.maxInflight <= 0 {
		c.maxInflight = b.cfg.MaxInflight
	}
	if c.ackWait <= 0 {
		c.ackWait = b.cfg.AckWait
	}
	c.thr, _ = spec.Endpoint.(Throttler)
	g.consumers = append(g.consumers, c)
	g.drained = false
	b.consumers[c.id] = c
	if c.conn != 0 {
		b.byConn[c.conn] = append(b.byConn[c.conn], c)
	}
	b.mu.Unlock()
	b.send(more)
	b.log.Debug("semantics: consumer joined", "group", spec.Group, "consumer", c.id, "conn_id", spec.Conn)
	b.wake()
	return c.id, nil
}

// CanJoin reports the refusal Join would answer spec with now, if any: an
// adapter asks before it changes anything else (the NATS adapter's BIND,
// before its bindings), so that a refused call changes nothing. Join
// checks again.
func (b *Broker) CanJoin(spec ConsumerSpec) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	_, err := b.joinable(b.group(spec.Group), spec)
	return err
}

// joinable returns the consumer of g that spec joins again or replaces (same
// Key), if any, or the limit a new consumer would break.
// caller must hold b.mu
func (b *Broker) joinable(g *group, spec ConsumerSpec) (*consumer, error) {
	var old *consumer
	if spec.Key != "" {
		for _, c := range g.consumers {
			if c.key == spec.Key {
				old = c
				break
			}
		}
	}
	if old != nil && old.conn == spec.Conn {
		return old, nil
	}
	lim := b.cfg.Limits
	n := len(g.consumers)
	if old != nil {
		n-- // replaced
	}
	if over(n+1, lim.ConsumersPerGroup) {
		return nil, b.refuse(LimitConsumersPerGroup, kqerr.TooMany,
			"%s has %d consumers, the limit of consumers per group (maxConsumersPerGroup)", g.name, lim.ConsumersPerGroup)
	}
	if spec.Conn != 0 && over(len(b.byConn[spec.Conn])+1, lim.ConsumersPerConn) {
		return nil, b.refuse(LimitConsumersPerConn, kqerr.TooMany,
			"the connection holds %d consumers (deliver subjects), the limit per connection (maxConsumersPerConnection)", lim.ConsumersPerConn)
	}
	return old, nil
}

// Leave removes consumer id of group; its unacknowledged deliveries go at
// once to other consumers. It reports whether the consumer existed.
func (b *Broker) Leave(group, id string) bool {
	b.mu.Lock()
	c, ok := b.consumers[id]
	if !ok || c.group.name != group {
		b.mu.Unlock()
		return false
	}
	more := b.closeConsumer(c)
	b.mu.Unlock()
	b.send(more)
	return true
}

// ConnClosed reports that connection conn (ConsumerSpec.Conn) closed: its
// consumers are removed and their unacknowledged deliveries go to other
// consumers, but only once everything the Intake had received before the
// report has been handled (Intake.Sync), so that an ack the client sent
// just before closing counts. It does not wait: Run's closer does that work,
// for every connection reported meanwhile at once.
func (b *Broker) ConnClosed(conn uint64) {
	b.mu.Lock()
	b.closing = append(b.closing, conn)
	b.mu.Unlock()
	select {
	case b.closed <- struct{}{}:
	default:
	}
}

// closer removes the consumers of closed connections (ConnClosed) until
// ctx ends.
func (b *Broker) closer(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-b.closed:
			b.closeConns(ctx)
		}
	}
}

// closeConns removes the consumers of the connections reported closed so
// far. The acks such a connection sent before closing reached the broker's
// subscription before the close was reported (the server handles a client's
// messages before it closes the client, and reports the close after); Sync
// waits until they are handled, so that closing the consumer does not fail
// deliveries already acknowledged. One Sync serves every connection reported
// before it began.
func (b *Broker) closeConns(ctx context.Context) {
	b.mu.Lock()
	conns := b.closing
	b.closing = nil
	b.mu.Unlock()
	if len(conns) == 0 {
		return
	}
	if in := b.cfg.Intake; in != nil {
		if err := in.Sync(ctx); err != nil {
			if ctx.Err() != nil {
				return // shutting down: the stored leases bring the deliveries back
			}
			b.log.Warn("semantics: closing consumers without waiting for their last acks", "conns", len(conns), "err", err)
		}
	}
	b.mu.Lock()
	var more []*flight
	for _, conn := range conns {
		for _, c := range slices.Clone(b.byConn[conn]) {
			more = append(more, b.closeConsumer(c)...)
		}
	}
	b.mu.Unlock()
	b.send(more)
}
