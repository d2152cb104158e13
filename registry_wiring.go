package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/kitenats/kitenats/registry"
	"github.com/kitenats/kitenats/registry/file"
	"github.com/kitenats/kitenats/registry/zk"
	"github.com/kitenats/kitenats/semantics"
)

// registryWaitInitial bounds the wait for a registry's first full state of
// each topic at start-up: serving before it is known would drop publishes
// for groups that are bound but not yet learnt.
const registryWaitInitial = 15 * time.Second

// openRegistry opens the registry a URI names: zk://host:port,… or
// file://path.yaml. Its errors start with "open registry URI".
func openRegistry(ctx context.Context, uri string, log *slog.Logger) (registry.Registry, error) {
	r, err := openRegistryURI(ctx, uri, log)
	if err != nil {
		// Never the backend's typed nil (see openStore).
		return nil, fmt.Errorf("open registry %s: %w", uri, err)
	}
	return r, nil
}

func openRegistryURI(ctx context.Context, uri string, log *slog.Logger) (registry.Registry, error) {
	switch {
	case strings.HasPrefix(uri, "zk://"):
		servers, err := zk.ParseURI(uri)
		if err != nil {
			return nil, err
		}
		r, err := zk.New(ctx, zk.Config{Servers: servers, Logger: log.With("component", "zk")})
		if err != nil {
			return nil, err
		}
		return r, nil
	case strings.HasPrefix(uri, "file://"):
		path, err := file.ParseURI(uri)
		if err != nil {
			return nil, err
		}
		r, err := file.New(file.Config{Path: path, Logger: log.With("component", "registry")})
		if err != nil {
			return nil, err
		}
		return r, nil
	default:
		return nil, errors.New("want zk://host:port,… or file://path.yaml")
	}
}

// registryKeeper makes BIND's bindings durable in the registry, where KiteQ
// clients see them too. A file registry answers registry.ErrStatic.
type registryKeeper struct{ r registry.Registry }

func (k registryKeeper) KeepBindings(ctx context.Context, group string, bs []registry.Binding) error {
	return k.r.PublishBindings(ctx, group, bs)
}

// bindingWatch follows the bindings of the served topics in a registry.
type bindingWatch struct {
	topics []string
	chans  []<-chan registry.Event
	log    *slog.Logger
}

// watchTopics starts one watch per topic and reads each topic's first full
// state, so that the broker starts with every binding the registry holds.
func watchTopics(ctx context.Context, r registry.Registry, topics []string, log *slog.Logger) (*bindingWatch, map[string][]registry.Binding, error) {
	if len(topics) == 0 {
		return nil, nil, errors.New("with a registry, the served topics must be configured (cluster.toml topics)")
	}
	w := &bindingWatch{topics: topics, log: log}
	initial := make(map[string][]registry.Binding)
	wait, cancel := context.WithTimeout(ctx, registryWaitInitial)
	defer cancel()
	for _, t := range topics {
		ch, err := r.Watch(ctx, t)
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
			case <-wait.Done():
				return nil, nil, fmt.Errorf("no bindings of %s from the registry within %s", t, registryWaitInitial)
			}
		}
	}
	return w, initial, nil
}

// run applies every later state to the broker until the watches end.
func (w *bindingWatch) run(b *semantics.Broker) {
	done := make(chan struct{}, len(w.chans))
	for i, ch := range w.chans {
		topic := w.topics[i]
		go func() {
			defer func() { done <- struct{}{} }()
			for ev := range ch {
				if ev.Err != nil {
					w.log.Warn("registry: session lost; bindings kept as they were", "topic", topic, "err", ev.Err)
					continue
				}
				byGroup := make(map[string][]registry.Binding, len(ev.Bindings))
				for g, bs := range ev.Bindings {
					byGroup[g] = kiteqBindings(bs)
				}
				b.SetTopicBindings(topic, byGroup)
			}
		}()
	}
	for range w.chans {
		<-done
	}
}

// kiteqBindings applies KiteQ's watermark rule to bindings read from a
// KiteQ registry: <= 0 means 6000, at most 6000.
func kiteqBindings(bs []registry.Binding) []registry.Binding {
	out := make([]registry.Binding, len(bs))
	for i, b := range bs {
		b.Watermark = registry.KiteQWatermark(b.Watermark)
		out[i] = b
	}
	return out
}

// advertisedAddr is the host:port registered for KiteQ clients: the
// configured advertise address, else -bind when its host is specific.
// KiteQ registered -bind verbatim, so ":13800" only worked on one machine.
func advertisedAddr(cfg Config) (string, error) {
	if cfg.Advertise != "" {
		return cfg.Advertise, nil
	}
	host, _, err := net.SplitHostPort(cfg.Bind)
	if err != nil {
		return "", err
	}
	if ip := net.ParseIP(host); host == "" || ip != nil && ip.IsUnspecified() {
		return "", fmt.Errorf("-bind %s is not an address clients can dial: set -advertise host:port", cfg.Bind)
	}
	return cfg.Bind, nil
}

// withBoundPort returns adv with its port 0 replaced by the port the KiteQ
// listener was given, so that -bind host:0 advertises the port clients can
// dial rather than ":0". Any other adv is returned as it is.
func withBoundPort(adv string, bound net.Addr) string {
	host, port, err := net.SplitHostPort(adv)
	ta, ok := bound.(*net.TCPAddr)
	if err != nil || port != "0" || !ok {
		return adv
	}
	return net.JoinHostPort(host, strconv.Itoa(ta.Port))
}
