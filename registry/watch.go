package registry

import (
	"context"
	"fmt"
	"log/slog"
	"time"
)

// TopicWatch follows the bindings of a broker's served topics in a
// registry, with KiteQ's rules for bindings read there (KiteQWatermark).
type TopicWatch struct {
	topics []string
	chans  []<-chan Event
	log    *slog.Logger
}

// WatchTopics starts one watch per topic, under life (the watches end with
// it or with the registry), and reads each topic's first full state, so
// that a broker starts with every binding the registry holds: serving
// before they are known would drop publishes for groups that are bound but
// not learnt yet. It waits at most wait for them, and no longer than ctx.
func WatchTopics(ctx, life context.Context, r Registry, topics []string, wait time.Duration, log *slog.Logger) (*TopicWatch, map[string][]Binding, error) {
	if len(topics) == 0 {
		return nil, nil, fmt.Errorf("with a registry, the served topics must be listed")
	}
	w := &TopicWatch{topics: topics, log: log}
	initial := make(map[string][]Binding)
	wctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	for _, t := range topics {
		ch, err := r.Watch(life, t)
		if err != nil {
			return nil, nil, fmt.Errorf("watching bindings of %s: %w", t, err)
		}
		w.chans = append(w.chans, ch)
		for got := false; !got; {
			select {
			case ev, ok := <-ch:
				if !ok {
					return nil, nil, fmt.Errorf("registry closed the watch of %s", t)
				}
				if ev.Err != nil {
					log.Warn("registry: waiting for the bindings", "topic", t, "err", ev.Err)
					continue
				}
				for g, bs := range ev.Bindings {
					initial[g] = append(initial[g], kiteqBindings(bs)...)
				}
				got = true
			case <-wctx.Done():
				if ctx.Err() != nil {
					return nil, nil, fmt.Errorf("waiting for the bindings of %s in the registry: %w", t, ctx.Err())
				}
				return nil, nil, fmt.Errorf("no bindings of %s from the registry within %s", t, wait)
			}
		}
	}
	return w, initial, nil
}

// Run passes every later state of each topic to apply, as the bindings of
// each group on that topic, until ctx ends or the watches do. apply may be
// called from several goroutines at once, one per topic; Run waits for
// them all.
func (w *TopicWatch) Run(ctx context.Context, apply func(topic string, byGroup map[string][]Binding)) {
	done := make(chan struct{}, len(w.chans))
	for i, ch := range w.chans {
		topic := w.topics[i]
		go func() {
			defer func() { done <- struct{}{} }()
			for {
				var ev Event
				var ok bool
				select {
				case ev, ok = <-ch:
				case <-ctx.Done():
					return
				}
				if !ok {
					return
				}
				if ev.Err != nil {
					w.log.Warn("registry: session lost; bindings kept as they were", "topic", topic, "err", ev.Err)
					continue
				}
				byGroup := make(map[string][]Binding, len(ev.Bindings))
				for g, bs := range ev.Bindings {
					byGroup[g] = kiteqBindings(bs)
				}
				apply(topic, byGroup)
			}
		}()
	}
	for range w.chans {
		<-done
	}
}

// kiteqBindings applies KiteQ's watermark rule to bindings read from a
// KiteQ registry: <= 0 means 6000, at most 6000.
func kiteqBindings(bs []Binding) []Binding {
	out := make([]Binding, len(bs))
	for i, b := range bs {
		b.Watermark = KiteQWatermark(b.Watermark)
		out[i] = b
	}
	return out
}
