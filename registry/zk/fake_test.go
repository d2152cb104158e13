package zk

import (
	"errors"
	"slices"
	"strings"
	"sync"

	"github.com/go-zookeeper/zk"
)

// fakeZK is an in-memory ZooKeeper for one session at a time, with
// go-zookeeper's watch semantics: a watch channel has one slot, gets one
// event and is closed; a lost session delivers EventNotWatching to every
// watch. Other clients' writes are simulated with the exported-looking
// helpers (put, remove).
type fakeZK struct {
	mu      sync.Mutex
	nodes   map[string]*fakeNode
	session int64
	onEvent func(zk.Event)
	dataW   map[string][]chan zk.Event
	childW  map[string][]chan zk.Event
	closed  bool
	// failNext, when set, is returned by the next request.
	failNext error
	// gate, when set, holds every request until it is closed; held counts
	// the requests it holds.
	gate chan struct{}
	held int
}

type fakeNode struct {
	data    []byte
	version int32
	owner   int64
}

func newFakeZK() *fakeZK {
	return &fakeZK{
		nodes:  map[string]*fakeNode{"/": {}},
		dataW:  make(map[string][]chan zk.Event),
		childW: make(map[string][]chan zk.Event),
	}
}

// dial is a dialFunc: it "connects" and reports a session at once.
func (f *fakeZK) dial(_ Config, onEvent func(zk.Event)) (conn, error) {
	f.mu.Lock()
	f.onEvent = onEvent
	f.closed = false
	f.session++
	f.mu.Unlock()
	onEvent(zk.Event{Type: zk.EventSession, State: zk.StateConnected})
	onEvent(zk.Event{Type: zk.EventSession, State: zk.StateHasSession})
	return f, nil
}

func parentOf(p string) string {
	i := strings.LastIndexByte(p, '/')
	if i <= 0 {
		return "/"
	}
	return p[:i]
}

// fire sends ev to the watches in m[path] and disarms them. Caller holds mu.
func fire(m map[string][]chan zk.Event, path string, ev zk.Event) {
	for _, ch := range m[path] {
		ch <- ev
		close(ch)
	}
	delete(m, path)
}

// pause holds a request while a gate is set. It takes mu only briefly.
func (f *fakeZK) pause() {
	f.mu.Lock()
	g := f.gate
	if g != nil {
		f.held++
	}
	f.mu.Unlock()
	if g != nil {
		<-g
	}
}

func (f *fakeZK) check() error {
	if f.closed {
		return zk.ErrConnectionClosed
	}
	if err := f.failNext; err != nil {
		f.failNext = nil
		return err
	}
	return nil
}

func (f *fakeZK) Create(path string, data []byte, flags int32, _ []zk.ACL) (string, error) {
	f.pause()
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.check(); err != nil {
		return "", err
	}
	return path, f.createLocked(path, data, flags&zk.FlagEphemeral != 0)
}

func (f *fakeZK) createLocked(path string, data []byte, ephemeral bool) error {
	if _, ok := f.nodes[path]; ok {
		return zk.ErrNodeExists
	}
	parent := parentOf(path)
	if _, ok := f.nodes[parent]; !ok {
		return zk.ErrNoNode
	}
	n := &fakeNode{data: slices.Clone(data)}
	if ephemeral {
		n.owner = f.session
	}
	f.nodes[path] = n
	fire(f.dataW, path, zk.Event{Type: zk.EventNodeCreated, Path: path})
	fire(f.childW, parent, zk.Event{Type: zk.EventNodeChildrenChanged, Path: parent})
	return nil
}

func (f *fakeZK) Set(path string, data []byte, version int32) (*zk.Stat, error) {
	f.pause()
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.check(); err != nil {
		return nil, err
	}
	return f.setLocked(path, data, version)
}

func (f *fakeZK) setLocked(path string, data []byte, version int32) (*zk.Stat, error) {
	n, ok := f.nodes[path]
	if !ok {
		return nil, zk.ErrNoNode
	}
	if version != -1 && version != n.version {
		return nil, zk.ErrBadVersion
	}
	n.data = slices.Clone(data)
	n.version++
	fire(f.dataW, path, zk.Event{Type: zk.EventNodeDataChanged, Path: path})
	return n.stat(), nil
}

func (n *fakeNode) stat() *zk.Stat {
	return &zk.Stat{Version: n.version, EphemeralOwner: n.owner, DataLength: int32(len(n.data))}
}

func (f *fakeZK) Delete(path string, version int32) error {
	f.pause()
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.check(); err != nil {
		return err
	}
	return f.deleteLocked(path, version)
}

func (f *fakeZK) deleteLocked(path string, version int32) error {
	n, ok := f.nodes[path]
	if !ok {
		return zk.ErrNoNode
	}
	if version != -1 && version != n.version {
		return zk.ErrBadVersion
	}
	if len(f.childrenLocked(path)) > 0 {
		return zk.ErrNotEmpty
	}
	delete(f.nodes, path)
	ev := zk.Event{Type: zk.EventNodeDeleted, Path: path}
	fire(f.dataW, path, ev)
	fire(f.childW, path, ev)
	parent := parentOf(path)
	fire(f.childW, parent, zk.Event{Type: zk.EventNodeChildrenChanged, Path: parent})
	return nil
}

func (f *fakeZK) Get(path string) ([]byte, *zk.Stat, error) {
	data, st, _, err := f.get(path, false)
	return data, st, err
}

func (f *fakeZK) GetW(path string) ([]byte, *zk.Stat, <-chan zk.Event, error) {
	return f.get(path, true)
}

func (f *fakeZK) get(path string, watch bool) ([]byte, *zk.Stat, <-chan zk.Event, error) {
	f.pause()
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.check(); err != nil {
		return nil, nil, nil, err
	}
	n, ok := f.nodes[path]
	if !ok {
		return nil, nil, nil, zk.ErrNoNode
	}
	var ch chan zk.Event
	if watch {
		ch = make(chan zk.Event, 1)
		f.dataW[path] = append(f.dataW[path], ch)
	}
	return slices.Clone(n.data), n.stat(), ch, nil
}

func (f *fakeZK) Children(path string) ([]string, *zk.Stat, error) {
	c, st, _, err := f.children(path, false)
	return c, st, err
}

func (f *fakeZK) ChildrenW(path string) ([]string, *zk.Stat, <-chan zk.Event, error) {
	return f.children(path, true)
}

func (f *fakeZK) children(path string, watch bool) ([]string, *zk.Stat, <-chan zk.Event, error) {
	f.pause()
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.check(); err != nil {
		return nil, nil, nil, err
	}
	n, ok := f.nodes[path]
	if !ok {
		return nil, nil, nil, zk.ErrNoNode
	}
	var ch chan zk.Event
	if watch {
		ch = make(chan zk.Event, 1)
		f.childW[path] = append(f.childW[path], ch)
	}
	return f.childrenLocked(path), n.stat(), ch, nil
}

func (f *fakeZK) childrenLocked(path string) []string {
	prefix := path + "/"
	if path == "/" {
		prefix = "/"
	}
	var out []string
	for p := range f.nodes {
		if p != "/" && strings.HasPrefix(p, prefix) && !strings.Contains(p[len(prefix):], "/") {
			out = append(out, p[len(prefix):])
		}
	}
	slices.Sort(out)
	return out
}

func (f *fakeZK) SessionID() int64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return 0
	}
	return f.session
}

// Close ends the session: its ephemeral nodes go, its watches get
// EventNotWatching.
func (f *fakeZK) Close() {
	f.mu.Lock()
	f.closed = true
	f.dropSessionLocked(zk.ErrClosing)
	cb := f.onEvent
	f.mu.Unlock()
	if cb != nil {
		cb(zk.Event{Type: zk.EventSession, State: zk.StateDisconnected})
	}
}

// dropSessionLocked deletes the session's ephemeral nodes (firing the
// watches of other sessions, of which the fake has none) and invalidates
// every watch with err. Caller holds mu.
func (f *fakeZK) dropSessionLocked(err error) {
	for p, n := range f.nodes {
		if n.owner == f.session && n.owner != 0 {
			delete(f.nodes, p)
		}
	}
	for _, m := range []map[string][]chan zk.Event{f.dataW, f.childW} {
		for p := range m {
			fire(m, p, zk.Event{Type: zk.EventNotWatching, State: zk.StateDisconnected, Path: p, Err: err})
		}
	}
}

// disconnect reports a lost connection that keeps the session.
func (f *fakeZK) disconnect() {
	f.onEvent(zk.Event{Type: zk.EventSession, State: zk.StateDisconnected})
	f.onEvent(zk.Event{Type: zk.EventSession, State: zk.StateConnecting})
}

// reconnect reports the same session back.
func (f *fakeZK) reconnect() {
	f.onEvent(zk.Event{Type: zk.EventSession, State: zk.StateConnected})
	f.onEvent(zk.Event{Type: zk.EventSession, State: zk.StateHasSession})
}

// expire simulates what go-zookeeper reports when it reconnects after the
// server expired the session: Expired, the watches invalidated, then a new
// session. If between is set it runs after the old session is gone and
// before the new one exists (to change data "meanwhile").
func (f *fakeZK) expire(between func()) {
	f.mu.Lock()
	f.dropSessionLocked(zk.ErrSessionExpired)
	f.session++
	sessionBefore := f.session
	f.session = 0
	f.mu.Unlock()
	f.onEvent(zk.Event{Type: zk.EventSession, State: zk.StateDisconnected})
	f.onEvent(zk.Event{Type: zk.EventSession, State: zk.StateExpired})
	if between != nil {
		between()
	}
	f.mu.Lock()
	f.session = sessionBefore
	f.mu.Unlock()
	f.reconnect()
}

// put writes a node as another client would (creating parents).
func (f *fakeZK) put(path string, data []byte) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for i := 1; i < len(path); i++ {
		if path[i] == '/' {
			_ = f.createLocked(path[:i], nil, false)
		}
	}
	if _, err := f.setLocked(path, data, -1); errors.Is(err, zk.ErrNoNode) {
		_ = f.createLocked(path, data, false)
	}
}

// remove deletes a node as another client would.
func (f *fakeZK) remove(path string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	_ = f.deleteLocked(path, -1)
}

// node returns a node's data and ephemeral owner, ok false if missing.
func (f *fakeZK) node(path string) (data []byte, owner int64, ok bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	n, ok := f.nodes[path]
	if !ok {
		return nil, 0, false
	}
	return slices.Clone(n.data), n.owner, true
}
