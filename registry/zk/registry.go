package zk

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"

	"github.com/go-zookeeper/zk"

	"github.com/kitenats/kitenats/registry"
)

// KiteQ's znode layout (kiteq-protocol.md §7.2).
const (
	rootPath         = "/kiteq"
	serverPath       = "/kiteq/server"        // + /{topic}/{host:port}, ephemeral
	subPath          = "/kiteq/sub"           // + /{topic}/{group}-bind, persistent JSON
	pubPath          = "/kiteq/pub"           // + /{topic}, created for served topics
	aliveServersPath = "/kiteq/alive_servers" // + /{host:port}, ephemeral
	allServersPath   = "/kiteq/all_servers"   // + /{host:port}, persistent
	bindSuffix       = "-bind"
)

// ErrClosed is returned by every method of a closed Registry.
var ErrClosed = errors.New("zk: registry closed")

// Registry is a registry.Registry on ZooKeeper with KiteQ's layout. Create
// it with New; it is safe for concurrent use.
type Registry struct {
	cfg  Config
	log  *slog.Logger
	conn conn

	// kick has one slot: the session state changed (set by onEvent).
	kick chan struct{}
	done chan struct{} // closed by Close

	lifeMu  sync.Mutex // guards closing and wg.Add against Close's wg.Wait
	closing bool
	wg      sync.WaitGroup // the session loop and every watch

	evMu    sync.Mutex // leaf lock; guards state and expired
	state   zk.State   // the last session state go-zookeeper reported
	expired bool       // StateExpired was reported since the session loop last looked

	sessMu sync.Mutex // leaf lock; guards sess
	sess   sessionView

	pubMu   sync.Mutex                     // serialises server (re)publication; guards servers and routes
	servers map[string]map[string]struct{} // addr → topics it is advertised for
	routes  map[string]string              // route node path → route URL (PublishRoute)
}

var _ registry.Registry = (*Registry)(nil)

// New connects to ZooKeeper, waits for a session (bounded by ctx), creates
// /kiteq if it is missing and starts the session loop.
func New(ctx context.Context, cfg Config) (*Registry, error) {
	return newRegistry(ctx, cfg, dialZK)
}

func newRegistry(ctx context.Context, cfg Config, dial dialFunc) (*Registry, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.setDefaults()
	r := &Registry{
		cfg:     cfg,
		log:     cfg.Logger,
		kick:    make(chan struct{}, 1),
		done:    make(chan struct{}),
		state:   zk.StateDisconnected,
		sess:    sessionView{changed: make(chan struct{})},
		servers: make(map[string]map[string]struct{}),
		routes:  make(map[string]string),
	}
	c, err := dial(cfg, r.onEvent)
	if err != nil {
		return nil, err
	}
	r.conn = c
	sid, err := r.awaitSession(ctx)
	if err == nil {
		err = ensurePath(c, rootPath)
	}
	if err != nil {
		c.Close()
		return nil, err
	}
	r.log.Info("zk: session established", "remote", cfg.Servers, "session", fmt.Sprintf("%#x", sid))
	r.goFunc(func() { r.sessionLoop(sid) })
	return r, nil
}

// awaitSession waits until the connection has a session and returns its id.
func (r *Registry) awaitSession(ctx context.Context) (int64, error) {
	for {
		state, _ := r.takeState()
		if sid := r.conn.SessionID(); state == zk.StateHasSession && sid != 0 {
			return sid, nil
		}
		select {
		case <-r.kick:
		case <-ctx.Done():
			return 0, fmt.Errorf("zk: no session with %v: %w", r.cfg.Servers, ctx.Err())
		}
	}
}

// goFunc runs f in a goroutine that Close waits for. It reports false,
// and does not run f, once Close has begun.
func (r *Registry) goFunc(f func()) bool {
	r.lifeMu.Lock()
	defer r.lifeMu.Unlock()
	if r.closing {
		return false
	}
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		f()
	}()
	return true
}

func (r *Registry) isClosed() bool {
	select {
	case <-r.done:
		return true
	default:
		return false
	}
}

// Close ends the session (ephemeral nodes vanish at once), stops the
// session loop and every watch (their channels are closed) and waits for
// all of them. It is idempotent and always returns nil.
func (r *Registry) Close() error {
	r.lifeMu.Lock()
	if r.closing {
		r.lifeMu.Unlock()
		r.wg.Wait()
		return nil
	}
	r.closing = true
	close(r.done)
	r.lifeMu.Unlock()
	// Closing the connection first makes pending requests fail at once
	// instead of at their timeout, so the goroutines below exit promptly.
	r.conn.Close()
	r.wg.Wait()
	return nil
}

// PublishServer advertises addr for each topic: it makes sure
// /kiteq/{pub,sub,server}/{topic} exist, replaces the ephemeral
// /kiteq/server/{topic}/{addr} (deleting it first, so watchers see a
// change), then the ephemeral /kiteq/alive_servers/{addr} and the
// persistent /kiteq/all_servers/{addr}. addr must be routable (CheckAddr).
// The advertisement is remembered and restored after a session expiry,
// even if this call fails half-way. ctx is checked between requests.
func (r *Registry) PublishServer(ctx context.Context, addr string, topics []string) error {
	if err := CheckAddr(addr); err != nil {
		return err
	}
	for _, t := range topics {
		if err := checkName("topic", t); err != nil {
			return err
		}
	}
	if r.isClosed() {
		return ErrClosed
	}
	r.pubMu.Lock()
	defer r.pubMu.Unlock()
	set := r.servers[addr]
	if set == nil {
		set = make(map[string]struct{})
		r.servers[addr] = set
	}
	for _, t := range topics {
		set[t] = struct{}{}
	}
	return r.publishServer(ctx, addr, topics)
}

// publishServer writes addr's nodes for topics. Caller must hold pubMu.
func (r *Registry) publishServer(ctx context.Context, addr string, topics []string) error {
	for _, t := range topics {
		for _, p := range []string{pubPath + "/" + t, subPath + "/" + t, serverPath + "/" + t} {
			if err := ctx.Err(); err != nil {
				return fmt.Errorf("zk: publish server %s: %w", addr, err)
			}
			if err := ensurePath(r.conn, p); err != nil {
				return err
			}
		}
		if err := r.replaceEphemeral(serverPath + "/" + t + "/" + addr); err != nil {
			return err
		}
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("zk: publish server %s: %w", addr, err)
	}
	if err := ensurePath(r.conn, aliveServersPath); err != nil {
		return err
	}
	if err := r.replaceEphemeral(aliveServersPath + "/" + addr); err != nil {
		return err
	}
	return ensurePath(r.conn, allServersPath+"/"+addr)
}

// replaceEphemeral deletes path and creates it again as an ephemeral node
// of this session. Deleting first makes watchers see a change, and removes
// a node left by an older session of the same broker that would otherwise
// vanish when that session expires.
func (r *Registry) replaceEphemeral(path string) error {
	return r.replaceEphemeralData(path, nil)
}

// replaceEphemeralData is replaceEphemeral with data in the node.
func (r *Registry) replaceEphemeralData(path string, data []byte) error {
	if err := deleteIfExists(r.conn, path); err != nil {
		return err
	}
	_, err := r.conn.Create(path, data, zk.FlagEphemeral, acl)
	if errors.Is(err, zk.ErrNodeExists) {
		// Someone re-created it in between: fine only if it is ours.
		_, st, gerr := r.conn.Get(path)
		if gerr == nil && st.EphemeralOwner != 0 && st.EphemeralOwner == r.conn.SessionID() {
			return nil
		}
		return fmt.Errorf("zk: %s is held by another session (owner %#x): %w", path, ownerOf(st), err)
	}
	if err != nil {
		return fmt.Errorf("zk: create ephemeral %s: %w", path, err)
	}
	return nil
}

func ownerOf(st *zk.Stat) int64 {
	if st == nil {
		return 0
	}
	return st.EphemeralOwner
}

// UnpublishServer deletes /kiteq/server/{topic}/{addr} for each topic (all
// of addr's advertised topics when topics is empty) and, once addr
// advertises no topic, /kiteq/alive_servers/{addr}. /kiteq/all_servers
// keeps addr: it lists every broker ever seen, as in KiteQ.
func (r *Registry) UnpublishServer(ctx context.Context, addr string, topics []string) error {
	if r.isClosed() {
		return ErrClosed
	}
	r.pubMu.Lock()
	defer r.pubMu.Unlock()
	set := r.servers[addr]
	if len(topics) == 0 {
		for t := range set {
			topics = append(topics, t)
		}
		slices.Sort(topics)
	}
	for _, t := range topics {
		if err := checkName("topic", t); err != nil {
			return err
		}
		delete(set, t)
	}
	if len(set) == 0 {
		delete(r.servers, addr)
	}
	for _, t := range topics {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("zk: unpublish server %s: %w", addr, err)
		}
		if err := deleteIfExists(r.conn, serverPath+"/"+t+"/"+addr); err != nil {
			return err
		}
	}
	if len(set) == 0 {
		return deleteIfExists(r.conn, aliveServersPath+"/"+addr)
	}
	return nil
}

// republish writes every remembered advertisement again, after a new
// session. It returns the first error but tries every address.
func (r *Registry) republish() error {
	r.pubMu.Lock()
	defer r.pubMu.Unlock()
	var first error
	for addr, set := range r.servers {
		topics := make([]string, 0, len(set))
		for t := range set {
			topics = append(topics, t)
		}
		slices.Sort(topics)
		if err := r.publishServer(context.Background(), addr, topics); err != nil && first == nil {
			first = err
		}
	}
	for path, url := range r.routes {
		if err := r.writeRoute(path, url); err != nil && first == nil {
			first = err
		}
	}
	return first
}

// PublishBindings replaces group's bindings. For every topic in bs it
// writes the persistent /kiteq/sub/{topic}/{group}-bind with KiteQ's JSON
// array (Set if the node exists, else Create); then it deletes group's
// node under every other topic in /kiteq/sub, so an empty bs removes the
// group everywhere. Bindings are validated and normalized (version
// "1.0.0", fanout messageType "*"); an empty GroupID is set to group and
// another GroupID is an error. Nodes written before a failure stay written.
func (r *Registry) PublishBindings(ctx context.Context, group string, bs []registry.Binding) error {
	if err := checkName("group", group); err != nil {
		return err
	}
	byTopic, order, err := groupByTopic(group, bs)
	if err != nil {
		return err
	}
	if r.isClosed() {
		return ErrClosed
	}
	for _, t := range order {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("zk: publish bindings of %s: %w", group, err)
		}
		if err := r.writeBind(t, group, byTopic[t]); err != nil {
			return err
		}
	}
	topics, _, err := r.conn.Children(subPath)
	if err != nil && !errors.Is(err, zk.ErrNoNode) {
		return fmt.Errorf("zk: list %s: %w", subPath, err)
	}
	for _, t := range topics {
		if _, ok := byTopic[t]; ok {
			continue
		}
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("zk: publish bindings of %s: %w", group, err)
		}
		// Read first: a read is served by the connected server alone,
		// while a delete goes through the quorum even for a missing node.
		p := bindPath(t, group)
		if _, _, err := r.conn.Get(p); errors.Is(err, zk.ErrNoNode) {
			continue
		}
		if err := deleteIfExists(r.conn, p); err != nil {
			return err
		}
	}
	return nil
}

func (r *Registry) writeBind(topic, group string, bs []registry.Binding) error {
	data, err := registry.MarshalBindings(bs)
	if err != nil {
		return fmt.Errorf("zk: bindings of %s on %s: %w", group, topic, err)
	}
	p := bindPath(topic, group)
	for range 3 { // Set, else Create, else (created meanwhile) Set again
		_, err = r.conn.Set(p, data, -1)
		if !errors.Is(err, zk.ErrNoNode) {
			break
		}
		if err = ensurePath(r.conn, subPath+"/"+topic); err != nil {
			return err
		}
		_, err = r.conn.Create(p, data, 0, acl)
		if !errors.Is(err, zk.ErrNodeExists) {
			break
		}
	}
	if err != nil {
		return fmt.Errorf("zk: write %s: %w", p, err)
	}
	return nil
}

func bindPath(topic, group string) string {
	return subPath + "/" + topic + "/" + group + bindSuffix
}

// groupByTopic validates and normalizes bs for group and splits it by
// topic, keeping the order of first appearance.
func groupByTopic(group string, bs []registry.Binding) (map[string][]registry.Binding, []string, error) {
	byTopic := make(map[string][]registry.Binding)
	var order []string
	for _, b := range bs {
		switch b.GroupID {
		case "":
			b.GroupID = group
		case group:
		default:
			return nil, nil, fmt.Errorf("zk: binding of group %q published as group %q", b.GroupID, group)
		}
		if err := b.Validate(); err != nil {
			return nil, nil, fmt.Errorf("zk: %w", err)
		}
		if err := checkName("topic", b.Topic); err != nil {
			return nil, nil, err
		}
		if _, ok := byTopic[b.Topic]; !ok {
			order = append(order, b.Topic)
		}
		byTopic[b.Topic] = append(byTopic[b.Topic], b.Normalize())
	}
	return byTopic, order, nil
}
