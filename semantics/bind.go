package semantics

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"time"

	"github.com/kitenats/kitenats/kqerr"
	"github.com/kitenats/kitenats/registry"
)

// bindRequest is the body of $KQ.API.BIND.<group>.
type bindRequest struct {
	Deliver      string        `json:"deliver"`
	Bindings     []bindingSpec `json:"bindings"`
	WarmingupSec int           `json:"warmingupSec"`
	MaxInflight  int           `json:"maxInflight"`
	AckWait      time.Duration `json:"ackWait"`
}

// bindingSpec is a binding as a NATS client writes it.
type bindingSpec struct {
	Topic       string            `json:"topic"`
	MessageType string            `json:"messageType"`
	BindType    registry.BindType `json:"bindType"`
	Persistent  bool              `json:"persistent"`
	Watermark   int32             `json:"watermark"`
}

// handleBind serves $KQ.API.BIND.<group>: it adds the bindings to the
// group's set (durably) and makes the connection holding the deliver
// subscription a consumer of the group.
func (b *Broker) handleBind(ctx context.Context, group string, body []byte) (any, error) {
	var req bindRequest
	if err := json.Unmarshal(body, &req); err != nil {
		return nil, kqerr.New(kqerr.BadRequest, err, "bad BIND request: %v", err)
	}
	prefix := "$KQ.DLV." + EncodeToken(group) + "."
	if !strings.HasPrefix(req.Deliver, prefix) || len(req.Deliver) == len(prefix) || strings.ContainsAny(req.Deliver, "*> ") {
		return nil, kqerr.New(kqerr.BadRequest, nil, "deliver subject %q must be %s<anything>", req.Deliver, prefix)
	}
	if req.WarmingupSec < 0 || req.MaxInflight < 0 || req.AckWait < 0 {
		return nil, kqerr.New(kqerr.BadRequest, nil, "warmingupSec, maxInflight and ackWait must not be negative")
	}
	bs := make([]registry.Binding, 0, len(req.Bindings))
	for _, s := range req.Bindings {
		bd := registry.Binding{
			GroupID: group, Topic: s.Topic, MessageType: s.MessageType, BindType: s.BindType,
			Persistent: s.Persistent, Watermark: s.Watermark,
		}.Normalize()
		if err := bd.Validate(); err != nil {
			return nil, kqerr.New(kqerr.BadRequest, err, "%v", err)
		}
		if !b.serves(bd.Topic) {
			return nil, kqerr.New(kqerr.NotFound, nil, "topic not served: %s", bd.Topic)
		}
		bs = append(bs, bd)
	}
	holders, err := b.loc.Holders(req.Deliver)
	if err != nil {
		return nil, kqerr.New(kqerr.Internal, err, "finding the deliver subscription: %v", err)
	}
	if len(holders) != 1 {
		return nil, kqerr.New(kqerr.Conflict, nil, "%d connections subscribe to %s; exactly one must", len(holders), req.Deliver)
	}
	if err := b.AddBindings(ctx, group, bs); err != nil {
		return nil, err
	}
	id := b.Join(ConsumerSpec{
		Group:       group,
		Key:         req.Deliver,
		Conn:        holders[0],
		Warmup:      time.Duration(req.WarmingupSec) * time.Second,
		MaxInflight: req.MaxInflight,
		AckWait:     req.AckWait,
		Endpoint:    natsEndpoint{b: b, subject: req.Deliver},
	})
	return map[string]string{"consumer": id}, nil
}

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

// SetBindings replaces the bindings of group (from BIND, or a registry watch).
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

// ConnClosed reports that NATS connection conn closed: its consumers are
// removed and their unacknowledged deliveries go to other consumers, but
// only once every message the server had routed to the broker before the
// report has been handled (Transport.Sync), so that an ack the client sent
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
	if err := b.tr.Sync(ctx); err != nil {
		if ctx.Err() != nil {
			return // shutting down: the stored leases bring the deliveries back
		}
		b.log.Warn("semantics: closing consumers without waiting for their last acks", "conns", len(conns), "err", err)
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
