package semantics

import (
	"context"
	"errors"
	"slices"

	"github.com/kitenats/kitenats/kqerr"
	"github.com/kitenats/kitenats/registry"
)

// AddBindings adds bs to group's set: identical bindings are no-ops, a
// conflict (NATS-PROTOCOL.md §3) refuses the whole call with 409, and the
// new set is made durable before it is used.
func (b *Broker) AddBindings(ctx context.Context, group string, bs []registry.Binding) error {
	b.mu.Lock()
	set := append([]registry.Binding(nil), b.group(group).bindings...)
	b.mu.Unlock()
	added := false
	for _, bd := range bs {
		dup, err := registry.Conflict(set, bd)
		if err != nil {
			return kqerr.New(kqerr.Conflict, err, "%v", err)
		}
		if !dup {
			set = append(set, bd)
			added = true
		}
	}
	if !added {
		return nil
	}
	return b.keepBindings(ctx, group, set)
}

// RemoveBinding removes group's binding of (topic, messageType).
func (b *Broker) RemoveBinding(ctx context.Context, group, topic, messageType string) error {
	b.mu.Lock()
	old := b.group(group).bindings
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
func (b *Broker) SetBindings(group string, bs []registry.Binding) {
	b.mu.Lock()
	defer b.mu.Unlock()
	g := b.group(group)
	g.setBindings(bs)
	g.drained = false
	b.rebuildRoutes()
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
		g.setBindings(keep)
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
func (b *Broker) Join(spec ConsumerSpec) string {
	b.mu.Lock()
	g := b.group(spec.Group)
	var more []*flight
	for _, c := range g.consumers {
		if c.key == spec.Key && spec.Key != "" {
			if c.conn == spec.Conn {
				b.mu.Unlock()
				return c.id
			}
			more = b.closeConsumer(c)
			break
		}
	}
	c := &consumer{
		id:          randomToken(8),
		key:         spec.Key,
		conn:        spec.Conn,
		group:       g,
		ep:          spec.Endpoint,
		authAt:      b.cfg.Now(),
		warmup:      spec.Warmup,
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
	return c.id
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
