package zk

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strings"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/kitenats/kitenats/registry"
)

// WatchBuffer is the capacity of a Watch channel. Every event carries the
// full state, so a slow reader never gets a backlog: an unread state is
// replaced by the newer one, and an unread lost-session Err is kept in
// front of it, so the loss is still reported. The channel therefore holds
// at most an Err and the newest state, and the watch never blocks on it.
const WatchBuffer = 2

// Watch sends the full bindings of topic (group → bindings, read from every
// /kiteq/sub/{topic}/{group}-bind) at once and after every change: a child
// added or removed, a node's data changed or deleted. Every change re-reads
// the whole topic, so deleting one group never hides the others (KiteQ's
// broker briefly forgets the whole topic). A group whose JSON does not parse
// is left out with a Warn log. While the session is lost an Event with Err
// (wrapping ErrSessionLost) is sent; once a session is back the watches are
// re-armed and the full state is sent again. /kiteq/sub/{topic} is created
// if missing, as KiteQ's broker does. The channel is closed when ctx ends
// or the registry closes.
func (r *Registry) Watch(ctx context.Context, topic string) (<-chan registry.Event, error) {
	if err := checkName("topic", topic); err != nil {
		return nil, err
	}
	w := &watcher{
		r:     r,
		ctx:   ctx,
		topic: topic,
		path:  subPath + "/" + topic,
		out:   make(chan registry.Event, WatchBuffer),
		dataW: make(map[string]<-chan zk.Event),
	}
	// Report a loss that is going on now, not one already recovered from.
	v := r.view()
	w.gen = v.gen
	if v.lost {
		w.gen = v.lostGen - 1
	}
	if !r.goFunc(w.run) {
		return nil, ErrClosed
	}
	return w.out, nil
}

// watcher follows one topic. Its fields belong to its goroutine.
type watcher struct {
	r     *Registry
	ctx   context.Context
	topic string
	path  string // /kiteq/sub/{topic}
	out   chan registry.Event

	childW <-chan zk.Event            // armed children watch of path, or nil
	dataW  map[string]<-chan zk.Event // group → armed data watch of its node
	last   map[string][]registry.Binding
	fresh  bool   // last has been sent and nothing (an Err) came after it
	gen    uint64 // session generation last acted on
}

func (w *watcher) run() {
	defer close(w.out)
	retry := time.NewTimer(time.Hour)
	retry.Stop()
	defer retry.Stop()
	for {
		v := w.r.view()
		if v.gen != w.gen {
			if v.lostGen > w.gen {
				w.send(registry.Event{Topic: w.topic, Err: v.lostErr})
				w.fresh = false
			}
			// Watches of a lost session are gone; after a mere long
			// disconnection re-arming leaves one duplicate, harmlessly.
			w.childW = nil
			clear(w.dataW)
			w.gen = v.gen
		}
		var retryC <-chan time.Time
		if !v.lost {
			if err := w.reload(); err != nil {
				if w.stopped() {
					return
				}
				w.r.log.Warn("zk: reading bindings failed; retrying", "topic", w.topic, "err", err)
				retry.Reset(w.r.cfg.RetryInterval)
				retryC = retry.C
			}
		}
		if !w.wait(v.changed, retryC) {
			return
		}
	}
}

func (w *watcher) stopped() bool {
	return w.ctx.Err() != nil || w.r.isClosed()
}

// wait blocks until a watch fires, the session view changes, the retry
// timer fires, or the watch ends (false). Fired watches are disarmed.
func (w *watcher) wait(sessChanged <-chan struct{}, retryC <-chan time.Time) bool {
	cases := []reflect.SelectCase{
		{Dir: reflect.SelectRecv, Chan: reflect.ValueOf(w.ctx.Done())},
		{Dir: reflect.SelectRecv, Chan: reflect.ValueOf(w.r.done)},
		{Dir: reflect.SelectRecv, Chan: reflect.ValueOf(sessChanged)},
		{Dir: reflect.SelectRecv, Chan: reflect.ValueOf(retryC)}, // nil: never
	}
	const fixed = 4
	var groups []string // groups[i] owns cases[fixed+1+i]
	cases = append(cases, reflect.SelectCase{Dir: reflect.SelectRecv, Chan: reflect.ValueOf(w.childW)})
	for g, ch := range w.dataW {
		groups = append(groups, g)
		cases = append(cases, reflect.SelectCase{Dir: reflect.SelectRecv, Chan: reflect.ValueOf(ch)})
	}
	chosen, _, _ := reflect.Select(cases)
	if chosen < 2 {
		return false
	}
	// Disarm every watch that has fired, not only the chosen one, so one
	// re-read covers them all.
	for i := fixed; i < len(cases); i++ {
		if i != chosen && (cases[i].Chan.IsNil() || !fired(cases[i].Chan)) {
			continue
		}
		if i == fixed {
			w.childW = nil
		} else {
			delete(w.dataW, groups[i-fixed-1])
		}
	}
	return true
}

// fired reports, without blocking, whether a watch channel has delivered
// its event or been closed. TryRecv returns an invalid Value only when the
// receive would block.
func fired(ch reflect.Value) bool {
	v, ok := ch.TryRecv()
	return ok || v.IsValid()
}

// reload reads the whole topic, arming the watches that are not armed,
// and sends the state if it differs from the last one sent.
func (w *watcher) reload() error {
	children, err := w.children()
	if err != nil {
		return err
	}
	state := make(map[string][]registry.Binding)
	seen := make(map[string]bool, len(children))
	for _, child := range children {
		group, ok := strings.CutSuffix(child, bindSuffix)
		if !ok || group == "" {
			continue // not a binding node
		}
		seen[group] = true
		data, err := w.data(group, w.path+"/"+child)
		if errors.Is(err, zk.ErrNoNode) {
			continue // deleted meanwhile; the children watch fires too
		}
		if err != nil {
			return err
		}
		if len(data) == 0 {
			continue
		}
		bs, err := registry.UnmarshalBindings(data)
		if err != nil {
			w.r.log.Warn("zk: skipping unparsable bindings", "topic", w.topic, "group", group, "err", err)
			continue
		}
		if len(bs) > 0 {
			state[group] = bs
		}
	}
	// A removed node's data watch fires NodeDeleted on its own; forget it.
	for g := range w.dataW {
		if !seen[g] {
			delete(w.dataW, g)
		}
	}
	if w.fresh && equalState(state, w.last) {
		return nil
	}
	w.last = state
	w.fresh = true
	w.send(registry.Event{Topic: w.topic, Bindings: cloneState(state)})
	return nil
}

// children lists the topic's nodes, arming the children watch if it is not
// armed. A missing /kiteq/sub/{topic} is created (KiteQ's broker does so).
func (w *watcher) children() ([]string, error) {
	c := w.r.conn
	if w.childW != nil {
		children, _, err := c.Children(w.path)
		if err == nil {
			return sorted(children), nil
		}
		if !errors.Is(err, zk.ErrNoNode) {
			return nil, fmt.Errorf("zk: children of %s: %w", w.path, err)
		}
		w.childW = nil
	}
	children, _, ch, err := c.ChildrenW(w.path)
	if errors.Is(err, zk.ErrNoNode) {
		if err := ensurePath(c, w.path); err != nil {
			return nil, err
		}
		children, _, ch, err = c.ChildrenW(w.path)
	}
	if err != nil {
		return nil, fmt.Errorf("zk: children of %s: %w", w.path, err)
	}
	w.childW = ch
	return sorted(children), nil
}

// data reads a group's node, arming its data watch if it is not armed.
func (w *watcher) data(group, path string) ([]byte, error) {
	c := w.r.conn
	if _, armed := w.dataW[group]; armed {
		data, _, err := c.Get(path)
		if err != nil {
			return nil, fmt.Errorf("zk: get %s: %w", path, err)
		}
		return data, nil
	}
	data, _, ch, err := c.GetW(path)
	if err != nil {
		return nil, fmt.Errorf("zk: get %s: %w", path, err)
	}
	w.dataW[group] = ch
	return data, nil
}

// send delivers ev without blocking (see WatchBuffer and
// registry.SendLatest); the watcher is w.out's only sender.
func (w *watcher) send(ev registry.Event) {
	registry.SendLatest(w.out, ev)
}

func sorted(s []string) []string {
	slices.Sort(s)
	return s
}

func equalState(a, b map[string][]registry.Binding) bool {
	return maps.EqualFunc(a, b, func(x, y []registry.Binding) bool { return slices.Equal(x, y) })
}

func cloneState(s map[string][]registry.Binding) map[string][]registry.Binding {
	out := make(map[string][]registry.Binding, len(s))
	for g, bs := range s {
		out[g] = slices.Clone(bs)
	}
	return out
}
