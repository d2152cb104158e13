package registrytest

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net"
	"slices"
	"sync"

	"github.com/kitenats/kitenats/registry"
)

// WatchBuffer is the capacity of a Fake Watch channel. As in registry/zk,
// a newer full state replaces an unread one, and an unread Err is kept in
// front of it.
const WatchBuffer = 2

// ErrClosed is returned by the methods of a closed Fake.
var ErrClosed = errors.New("registrytest: registry closed")

// ErrFakeSessionLost is the Err of the Event sent by LoseSession when it is
// given no error, and is returned by Publish calls while the session is
// lost.
var ErrFakeSessionLost = errors.New("registrytest: session lost")

// Fake is an in-memory registry.Registry. The zero value is not usable;
// use NewFake.
type Fake struct {
	mu       sync.Mutex                               // guards every field below
	bindings map[string]map[string][]registry.Binding // topic → group → bindings
	servers  map[string]map[string]struct{}           // topic → addrs
	watches  map[*fakeWatch]struct{}
	lost     error // non-nil while the session is lost
	closed   bool
}

type fakeWatch struct {
	topic string
	out   chan registry.Event
	stop  func() bool // stops the context.AfterFunc
}

var _ registry.Registry = (*Fake)(nil)

// NewFake returns an empty Fake.
func NewFake() *Fake {
	return &Fake{
		bindings: make(map[string]map[string][]registry.Binding),
		servers:  make(map[string]map[string]struct{}),
		watches:  make(map[*fakeWatch]struct{}),
	}
}

// PublishServer records addr for topics. addr must have a routable host.
func (f *Fake) PublishServer(_ context.Context, addr string, topics []string) error {
	if err := checkAddr(addr); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.usable(); err != nil {
		return err
	}
	for _, t := range topics {
		if t == "" {
			return errors.New("registrytest: empty topic")
		}
		if f.servers[t] == nil {
			f.servers[t] = make(map[string]struct{})
		}
		f.servers[t][addr] = struct{}{}
	}
	return nil
}

// UnpublishServer removes addr from topics (from every topic when topics
// is empty).
func (f *Fake) UnpublishServer(_ context.Context, addr string, topics []string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.usable(); err != nil {
		return err
	}
	if len(topics) == 0 {
		topics = slices.Collect(maps.Keys(f.servers))
	}
	for _, t := range topics {
		delete(f.servers[t], addr)
		if len(f.servers[t]) == 0 {
			delete(f.servers, t)
		}
	}
	return nil
}

// Servers returns the addresses advertised for topic, sorted.
func (f *Fake) Servers(topic string) []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Sorted(maps.Keys(f.servers[topic]))
}

// PublishBindings replaces group's bindings on every topic, validating
// them as registry/zk does: an empty GroupID becomes group, another one is
// an error, each binding must Validate, and bindings are normalized.
func (f *Fake) PublishBindings(_ context.Context, group string, bs []registry.Binding) error {
	if group == "" {
		return errors.New("registrytest: empty group")
	}
	byTopic := make(map[string][]registry.Binding)
	for _, b := range bs {
		switch b.GroupID {
		case "":
			b.GroupID = group
		case group:
		default:
			return fmt.Errorf("registrytest: binding of group %q published as group %q", b.GroupID, group)
		}
		if err := b.Validate(); err != nil {
			return fmt.Errorf("registrytest: %w", err)
		}
		byTopic[b.Topic] = append(byTopic[b.Topic], b.Normalize())
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.usable(); err != nil {
		return err
	}
	changed := make(map[string]bool)
	for t, groups := range f.bindings {
		if _, ok := groups[group]; ok {
			if _, keep := byTopic[t]; !keep {
				delete(groups, group)
				changed[t] = true
			}
		}
	}
	for t, list := range byTopic {
		f.setLocked(t, group, list)
		changed[t] = true
	}
	for t := range changed {
		f.notifyLocked(t)
	}
	return nil
}

// SetBindings sets group's bindings on topic exactly as given (nil or
// empty removes them), the way a KiteQ client writes its node: no
// validation, other topics untouched. Watches of topic are notified.
func (f *Fake) SetBindings(topic, group string, bs []registry.Binding) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.setLocked(topic, group, slices.Clone(bs))
	f.notifyLocked(topic)
}

// Bindings returns a copy of topic's current state.
func (f *Fake) Bindings(topic string) map[string][]registry.Binding {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.stateLocked(topic)
}

// LoseSession makes every Watch send an Event with Err (err, or
// ErrFakeSessionLost when err is nil); until RestoreSession no change is
// sent and Publish calls fail.
func (f *Fake) LoseSession(err error) {
	if err == nil {
		err = ErrFakeSessionLost
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.lost = err
	for w := range f.watches {
		registry.SendLatest(w.out, registry.Event{Topic: w.topic, Err: err})
	}
}

// RestoreSession ends LoseSession: every Watch sends its full state.
func (f *Fake) RestoreSession() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.lost = nil
	for w := range f.watches {
		registry.SendLatest(w.out, registry.Event{Topic: w.topic, Bindings: f.stateLocked(w.topic)})
	}
}

// Watch sends topic's full state at once and after every change, until
// ctx ends or Close; then the channel is closed.
func (f *Fake) Watch(ctx context.Context, topic string) (<-chan registry.Event, error) {
	if topic == "" {
		return nil, errors.New("registrytest: empty topic")
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return nil, ErrClosed
	}
	w := &fakeWatch{topic: topic, out: make(chan registry.Event, WatchBuffer)}
	if f.lost != nil {
		w.out <- registry.Event{Topic: topic, Err: f.lost}
	} else {
		w.out <- registry.Event{Topic: topic, Bindings: f.stateLocked(topic)}
	}
	f.watches[w] = struct{}{}
	w.stop = context.AfterFunc(ctx, func() {
		f.mu.Lock()
		defer f.mu.Unlock()
		f.endLocked(w)
	})
	return w.out, nil
}

// Close closes every Watch channel. It is idempotent.
func (f *Fake) Close() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.closed = true
	for w := range f.watches {
		w.stop()
		f.endLocked(w)
	}
	return nil
}

// endLocked closes w's channel once. Caller must hold f.mu.
func (f *Fake) endLocked(w *fakeWatch) {
	if _, ok := f.watches[w]; !ok {
		return
	}
	delete(f.watches, w)
	close(w.out)
}

func (f *Fake) usable() error {
	switch {
	case f.closed:
		return ErrClosed
	case f.lost != nil:
		return f.lost
	}
	return nil
}

// setLocked sets (or, for an empty list, removes) group on topic. Caller
// must hold f.mu.
func (f *Fake) setLocked(topic, group string, bs []registry.Binding) {
	if len(bs) == 0 {
		delete(f.bindings[topic], group)
		return
	}
	if f.bindings[topic] == nil {
		f.bindings[topic] = make(map[string][]registry.Binding)
	}
	f.bindings[topic][group] = bs
}

// stateLocked copies topic's state. Caller must hold f.mu.
func (f *Fake) stateLocked(topic string) map[string][]registry.Binding {
	out := make(map[string][]registry.Binding, len(f.bindings[topic]))
	for g, bs := range f.bindings[topic] {
		out[g] = slices.Clone(bs)
	}
	return out
}

// notifyLocked sends topic's state to its watches. Caller must hold f.mu.
func (f *Fake) notifyLocked(topic string) {
	if f.lost != nil {
		return
	}
	for w := range f.watches {
		if w.topic == topic {
			registry.SendLatest(w.out, registry.Event{Topic: topic, Bindings: f.stateLocked(topic)})
		}
	}
}

// checkAddr is registry/zk's rule: host:port with a routable host.
func checkAddr(addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("registrytest: server address %q is not host:port: %w", addr, err)
	}
	if ip := net.ParseIP(host); host == "" || ip != nil && ip.IsUnspecified() {
		return fmt.Errorf("registrytest: server address %q has no routable host", addr)
	}
	return nil
}
