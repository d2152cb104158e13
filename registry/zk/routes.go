package zk

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"strings"
	"time"

	"github.com/go-zookeeper/zk"
)

// routesPath holds kitenats' own nodes, beside KiteQ's /kiteq (which KiteQ
// clients read and must not find anything new in): the NATS route URL of
// every broker of a cluster, so that brokers find each other's routes
// (docs/CLUSTERING.md §1).
//
//	/kitenats/routes/{cluster}/{broker name}   ephemeral, data: nats-route://host:port
const routesPath = "/kitenats/routes"

// RoutesBuffer is the capacity of a WatchRoutes channel: one, the newest
// state (an unread one is replaced).
const RoutesBuffer = 1

func routePath(cluster, name string) string {
	return routesPath + "/" + cluster + "/" + name
}

// PublishRoute writes the ephemeral /kitenats/routes/{cluster}/{name} with
// url, the broker's route URL, replacing a node of an older session of the
// same broker. It is remembered and written again after a session expiry,
// like PublishServer's nodes.
func (r *Registry) PublishRoute(ctx context.Context, cluster, name, url string) error {
	if err := checkName("cluster", cluster); err != nil {
		return err
	}
	if err := checkName("broker name", name); err != nil {
		return err
	}
	if url == "" {
		return errors.New("zk: publish route: empty URL")
	}
	if r.isClosed() {
		return ErrClosed
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("zk: publish route %s: %w", name, err)
	}
	r.pubMu.Lock()
	defer r.pubMu.Unlock()
	p := routePath(cluster, name)
	r.routes[p] = url
	return r.writeRoute(p, url)
}

// writeRoute writes one route node. Caller must hold pubMu.
func (r *Registry) writeRoute(path, url string) error {
	if err := ensurePath(r.conn, path[:strings.LastIndexByte(path, '/')]); err != nil {
		return err
	}
	return r.replaceEphemeralData(path, []byte(url))
}

// UnpublishRoute deletes the broker's route node (at shutdown, so that its
// peers stop learning it at once rather than at the session's end).
func (r *Registry) UnpublishRoute(ctx context.Context, cluster, name string) error {
	if err := checkName("cluster", cluster); err != nil {
		return err
	}
	if err := checkName("broker name", name); err != nil {
		return err
	}
	if r.isClosed() {
		return ErrClosed
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("zk: unpublish route %s: %w", name, err)
	}
	r.pubMu.Lock()
	defer r.pubMu.Unlock()
	p := routePath(cluster, name)
	delete(r.routes, p)
	return deleteIfExists(r.conn, p)
}

// WatchRoutes sends the route URLs of every broker of cluster (name → URL,
// from /kitenats/routes/{cluster}) at once and after every change, until
// ctx ends or the registry closes; then the channel is closed. Each state
// is complete, so a reader that falls behind only misses intermediate
// ones. While the session is lost nothing is sent; once it is back the
// full state is read again. A node without a URL is left out.
func (r *Registry) WatchRoutes(ctx context.Context, cluster string) (<-chan map[string]string, error) {
	if err := checkName("cluster", cluster); err != nil {
		return nil, err
	}
	out := make(chan map[string]string, RoutesBuffer)
	path := routesPath + "/" + cluster
	if !r.goFunc(func() { r.watchRoutes(ctx, path, out) }) {
		return nil, ErrClosed
	}
	return out, nil
}

func (r *Registry) watchRoutes(ctx context.Context, path string, out chan map[string]string) {
	defer close(out)
	var last map[string]string
	for {
		v := r.view()
		var fired <-chan zk.Event
		var retry <-chan time.Time
		if !v.lost {
			state, ch, err := r.readRoutes(path)
			if err != nil {
				if ctx.Err() != nil || r.isClosed() {
					return
				}
				r.log.Warn("zk: reading route nodes failed; retrying", "path", path, "err", err)
				retry = time.After(r.cfg.RetryInterval)
			} else {
				fired = ch
				if last == nil || !maps.Equal(state, last) {
					last = state
					select { // replace an unread state
					case <-out:
					default:
					}
					out <- maps.Clone(state)
				}
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-r.done:
			return
		case <-v.changed:
		case <-fired:
		case <-retry:
		}
	}
}

// readRoutes reads every route node under path and arms a children watch
// on path (a node's URL never changes in place: a broker replaces its node,
// which the children watch sees).
func (r *Registry) readRoutes(path string) (map[string]string, <-chan zk.Event, error) {
	names, _, ch, err := r.conn.ChildrenW(path)
	if errors.Is(err, zk.ErrNoNode) {
		if err := ensurePath(r.conn, path); err != nil {
			return nil, nil, err
		}
		names, _, ch, err = r.conn.ChildrenW(path)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("zk: children of %s: %w", path, err)
	}
	state := make(map[string]string, len(names))
	for _, n := range names {
		data, _, err := r.conn.Get(path + "/" + n)
		if errors.Is(err, zk.ErrNoNode) {
			continue // gone meanwhile; the children watch fires too
		}
		if err != nil {
			return nil, nil, fmt.Errorf("zk: get %s/%s: %w", path, n, err)
		}
		if len(data) > 0 {
			state[n] = string(data)
		}
	}
	return state, ch, nil
}

// Routes returns the route URLs of every broker of cluster now (name →
// URL). A broker calls it once at start, after PublishRoute, to dial the
// brokers already there.
func (r *Registry) Routes(ctx context.Context, cluster string) (map[string]string, error) {
	if err := checkName("cluster", cluster); err != nil {
		return nil, err
	}
	if r.isClosed() {
		return nil, ErrClosed
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("zk: routes of %s: %w", cluster, err)
	}
	path := routesPath + "/" + cluster
	names, _, err := r.conn.Children(path)
	if errors.Is(err, zk.ErrNoNode) {
		return map[string]string{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("zk: children of %s: %w", path, err)
	}
	state := make(map[string]string, len(names))
	for _, n := range names {
		data, _, err := r.conn.Get(path + "/" + n)
		if errors.Is(err, zk.ErrNoNode) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("zk: get %s/%s: %w", path, n, err)
		}
		if len(data) > 0 {
			state[n] = string(data)
		}
	}
	return state, nil
}
