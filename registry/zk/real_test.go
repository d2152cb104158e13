package zk

// Tests against a real ZooKeeper: start one with
//
//	scripts/zookeeper.sh start /tmp/kitenats-zk 2181
//	export KITENATS_ZK_ADDR=127.0.0.1:2181
//
// Without KITENATS_ZK_ADDR they skip, or fail when CI is set. They use
// topics of their own (registrytest.UniqueTopic, prefix "rt-") and remove
// them afterwards.

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"
	"github.com/stretchr/testify/require"

	"github.com/kitenats/kitenats/registry"
	"github.com/kitenats/kitenats/registry/registrytest"
)

// zkAddr returns the ZooKeeper of the tests, skipping (or, on CI, failing)
// without one.
func zkAddr(t *testing.T) string {
	t.Helper()
	addr := os.Getenv("KITENATS_ZK_ADDR")
	if addr == "" {
		const how = "start ZooKeeper with `scripts/zookeeper.sh start /tmp/kitenats-zk 2181` and set KITENATS_ZK_ADDR=127.0.0.1:2181"
		if os.Getenv("CI") != "" {
			t.Fatal("KITENATS_ZK_ADDR is not set on CI: " + how)
		}
		t.Skip("KITENATS_ZK_ADDR is not set: " + how)
	}
	return addr
}

func newRealRegistry(t *testing.T, servers ...string) *Registry {
	t.Helper()
	logger, _ := newTestLogger(t)
	r, err := New(ctxT(t), Config{Servers: servers, Logger: logger})
	require.NoError(t, err)
	t.Cleanup(func() { _ = r.Close() })
	return r
}

// observer opens a plain connection to look at the tree from outside, as
// a KiteQ client or an operator would.
func observer(t *testing.T, addr string) *zk.Conn {
	t.Helper()
	c, events, err := zk.Connect([]string{addr}, 10*time.Second, zk.WithLogger(zkLogger{slog.New(slog.DiscardHandler)}))
	require.NoError(t, err)
	t.Cleanup(func() {
		c.Close()
		for range events { // closed once go-zookeeper's goroutines are done
			continue
		}
	})
	require.Eventually(t, func() bool { return c.State() == zk.StateHasSession }, 10*time.Second, 10*time.Millisecond)
	return c
}

// removeTopics deletes the test topics' trees, children first.
func removeTopics(t *testing.T, c *zk.Conn, topics ...string) {
	t.Helper()
	for _, topic := range topics {
		for _, base := range []string{serverPath, subPath, pubPath} {
			removeTree(c, base+"/"+topic)
		}
	}
}

func removeTree(c *zk.Conn, p string) {
	children, _, err := c.Children(p)
	if err != nil {
		return
	}
	for _, ch := range children {
		removeTree(c, p+"/"+ch)
	}
	_ = c.Delete(p, -1)
}

func exists(t *testing.T, c *zk.Conn, p string) (bool, *zk.Stat) {
	t.Helper()
	ok, st, err := c.Exists(p)
	require.NoError(t, err)
	return ok, st
}

func TestRegistryZKConformance(t *testing.T) {
	addr := zkAddr(t)
	obs := observer(t, addr)
	t.Cleanup(func() {
		// The suite's topics all start with "rt-".
		for _, base := range []string{serverPath, subPath, pubPath} {
			children, _, _ := obs.Children(base)
			for _, ch := range children {
				if strings.HasPrefix(ch, "rt-") {
					removeTree(obs, base+"/"+ch)
				}
			}
		}
	})
	registrytest.Run(t, func(t *testing.T) registry.Registry { return newRealRegistry(t, addr) })
}

func TestRegistryZKLayout(t *testing.T) {
	addr := zkAddr(t)
	obs := observer(t, addr)
	r := newRealRegistry(t, addr)
	ctx := ctxT(t)
	topic := registrytest.UniqueTopic(t)
	t.Cleanup(func() { removeTopics(t, obs, topic) })
	const server = "127.0.0.1:13803"
	t.Cleanup(func() { _ = obs.Delete(allServersPath+"/"+server, -1) })

	require.NoError(t, r.PublishServer(ctx, server, []string{topic}))
	sid := r.conn.SessionID()
	for _, p := range []string{serverPath + "/" + topic + "/" + server, aliveServersPath + "/" + server} {
		ok, st := exists(t, obs, p)
		require.True(t, ok, p)
		require.Equal(t, sid, st.EphemeralOwner, "%s is ephemeral, ours", p)
	}
	for _, p := range []string{allServersPath + "/" + server, pubPath + "/" + topic, subPath + "/" + topic} {
		ok, st := exists(t, obs, p)
		require.True(t, ok, p)
		require.Zero(t, st.EphemeralOwner, "%s is persistent", p)
	}
	acl, _, err := obs.GetACL(serverPath + "/" + topic + "/" + server)
	require.NoError(t, err)
	require.Equal(t, zk.WorldACL(zk.PermAll), acl)

	// A watcher of the server list sees a change when the broker publishes
	// again: the node is deleted and re-created.
	_, _, serverW, err := obs.ChildrenW(serverPath + "/" + topic)
	require.NoError(t, err)
	require.NoError(t, r.PublishServer(ctx, server, []string{topic}))
	select {
	case ev := <-serverW:
		require.Equal(t, zk.EventNodeChildrenChanged, ev.Type)
	case <-time.After(registrytest.Timeout):
		t.Fatal("re-publishing did not touch the server list")
	}

	b := registry.Binding{Topic: topic, MessageType: "pay-200", BindType: registry.Direct, Watermark: 1000, Persistent: true}
	require.NoError(t, r.PublishBindings(ctx, "s-trade-a", []registry.Binding{b}))
	data, st, err := obs.Get(subPath + "/" + topic + "/s-trade-a-bind")
	require.NoError(t, err)
	require.Zero(t, st.EphemeralOwner)
	require.Equal(t, `[{"groupId":"s-trade-a","topic":"`+topic+`","messageType":"pay-200","bindType":0,"version":"1.0.0","watermark":1000,"persistent":true}]`, string(data))
	b.Watermark = 10
	require.NoError(t, r.PublishBindings(ctx, "s-trade-a", []registry.Binding{b}))
	data, st, err = obs.Get(subPath + "/" + topic + "/s-trade-a-bind")
	require.NoError(t, err)
	require.Equal(t, int32(1), st.Version, "existing node is Set, not re-created")
	require.Contains(t, string(data), `"watermark":10`)

	// Close ends the session: ephemeral nodes go at once, bindings stay.
	require.NoError(t, r.Close())
	for _, p := range []string{serverPath + "/" + topic + "/" + server, aliveServersPath + "/" + server} {
		ok, _ := exists(t, obs, p)
		require.False(t, ok, p)
	}
	ok, _ := exists(t, obs, subPath+"/"+topic+"/s-trade-a-bind")
	require.True(t, ok)
}

// TestRegistryZKKiteQClientWrites: bind nodes written by another client (a
// KiteQ consumer) reach the watch as whole-topic states.
func TestRegistryZKKiteQClientWrites(t *testing.T) {
	addr := zkAddr(t)
	obs := observer(t, addr)
	logger, logs := newTestLogger(t)
	r, err := New(ctxT(t), Config{Servers: []string{addr}, Logger: logger})
	require.NoError(t, err)
	t.Cleanup(func() { _ = r.Close() })
	topic := registrytest.UniqueTopic(t)
	t.Cleanup(func() { removeTopics(t, obs, topic) })

	ch, err := r.Watch(ctxT(t), topic)
	require.NoError(t, err)
	registrytest.AwaitState(t, ch, nil)

	write := func(group string, data []byte) {
		p := subPath + "/" + topic + "/" + group + "-bind"
		if _, err := obs.Set(p, data, -1); errors.Is(err, zk.ErrNoNode) {
			_, err = obs.Create(p, data, 0, zk.WorldACL(zk.PermAll))
			require.NoError(t, err)
		} else {
			require.NoError(t, err)
		}
	}
	a := registry.Binding{GroupID: "s-a", Topic: topic, MessageType: "pay-\\d+", BindType: registry.Regx, Version: "1.0.0", Watermark: -1}
	b := registry.Binding{GroupID: "s-b", Topic: topic, MessageType: "*", BindType: registry.Fanout, Version: "1.0.0", Persistent: true}
	js := func(bs ...registry.Binding) []byte {
		data, err := registry.MarshalBindings(bs)
		require.NoError(t, err)
		return data
	}
	write("s-a", js(a))
	write("s-b", js(b))
	registrytest.AwaitState(t, ch, map[string][]registry.Binding{"s-a": {a}, "s-b": {b}})
	write("s-a", []byte("{not json"))
	registrytest.AwaitState(t, ch, map[string][]registry.Binding{"s-b": {b}})
	require.Contains(t, logs.String(), "skipping unparsable bindings")
	write("s-a", js(a))
	registrytest.AwaitState(t, ch, map[string][]registry.Binding{"s-a": {a}, "s-b": {b}})
	require.NoError(t, obs.Delete(subPath+"/"+topic+"/s-a-bind", -1))
	registrytest.Await(t, ch, func(ev registry.Event) bool {
		require.Equal(t, []registry.Binding{b}, ev.Bindings["s-b"], "s-b must never vanish")
		return len(ev.Bindings) == 1
	})
}

// recorder keeps every event of a watch channel, read as soon as sent.
type recorder struct {
	mu  sync.Mutex
	evs []registry.Event
}

func record(ch <-chan registry.Event) *recorder {
	rec := &recorder{}
	go func() { // ends when the registry closes the channel
		for ev := range ch {
			rec.mu.Lock()
			rec.evs = append(rec.evs, ev)
			rec.mu.Unlock()
		}
	}()
	return rec
}

func (rec *recorder) events() []registry.Event {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	return slices.Clone(rec.evs)
}

// awaitErrThenState waits for an Event with Err followed by one with want.
func (rec *recorder) awaitErrThenState(t *testing.T, want map[string][]registry.Binding) registry.Event {
	t.Helper()
	var errEv registry.Event
	require.Eventually(t, func() bool {
		sawErr := false
		for _, ev := range rec.events() {
			if ev.Err != nil && !sawErr {
				sawErr, errEv = true, ev
			}
			if sawErr && ev.Err == nil && registrytest.EqualState(ev.Bindings, want) {
				return true
			}
		}
		return false
	}, 30*time.Second, 20*time.Millisecond, "want an Err, then %v; got %+v", want, rec.events())
	return errEv
}

// expireSession expires r's session the classic way: a second connection
// presents the same session id and password, then closes the session.
func expireSession(t *testing.T, addr string, r *Registry) {
	t.Helper()
	zc := r.conn.(*zkConn).Conn
	sid := zc.SessionID()
	passwd := reflect.ValueOf(zc).Elem().FieldByName("passwd").Bytes()
	require.Len(t, passwd, 16)
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	require.NoError(t, err)
	defer func() { _ = c.Close() }()
	require.NoError(t, c.SetDeadline(time.Now().Add(10*time.Second)))
	// ConnectRequest: protocolVersion, lastZxidSeen, timeOut, sessionId,
	// passwd (length-prefixed), readOnly.
	req := binary.BigEndian.AppendUint32(nil, 0)
	req = binary.BigEndian.AppendUint64(req, 0)
	req = binary.BigEndian.AppendUint32(req, 5000)
	req = binary.BigEndian.AppendUint64(req, uint64(sid))
	req = binary.BigEndian.AppendUint32(req, uint32(len(passwd)))
	req = append(req, passwd...)
	req = append(req, 0)
	_, err = c.Write(append(binary.BigEndian.AppendUint32(nil, uint32(len(req))), req...))
	require.NoError(t, err)
	resp := make([]byte, 4+4+4+8)
	_, err = io.ReadFull(c, resp)
	require.NoError(t, err)
	require.Equal(t, uint64(sid), binary.BigEndian.Uint64(resp[12:]), "took over the session")
	// CloseSession: xid 1, opcode -11; wait for the reply header.
	closeReq := []byte{0, 0, 0, 8, 0, 0, 0, 1, 0xff, 0xff, 0xff, 0xf5}
	_, err = c.Write(closeReq)
	require.NoError(t, err)
	// The server answers and closes the connection.
	_, _ = io.Copy(io.Discard, c)
}

// TestRegistryZKSessionExpiry expires the session for real: the watch
// reports Err, then the full state (with a change made meanwhile), and the
// ephemeral server nodes come back, owned by the new session.
func TestRegistryZKSessionExpiry(t *testing.T) {
	addr := zkAddr(t)
	obs := observer(t, addr)
	r := newRealRegistry(t, addr)
	ctx := ctxT(t)
	topic := registrytest.UniqueTopic(t)
	t.Cleanup(func() { removeTopics(t, obs, topic) })
	const server = "127.0.0.1:13801"
	require.NoError(t, r.PublishServer(ctx, server, []string{topic}))
	b := registry.Binding{GroupID: "g", Topic: topic, MessageType: "a", Version: "1.0.0"}
	require.NoError(t, r.PublishBindings(ctx, "g", []registry.Binding{b}))
	ch, err := r.Watch(ctx, topic)
	require.NoError(t, err)
	registrytest.AwaitState(t, ch, map[string][]registry.Binding{"g": {b}})
	rec := record(ch)
	old := r.conn.SessionID()

	expireSession(t, addr, r)
	serverNode := serverPath + "/" + topic + "/" + server
	errEv := rec.awaitErrThenState(t, map[string][]registry.Binding{"g": {b}})
	require.ErrorIs(t, errEv.Err, ErrSessionLost)
	require.ErrorIs(t, errEv.Err, zk.ErrSessionExpired)

	require.Eventually(t, func() bool {
		for _, p := range []string{serverNode, aliveServersPath + "/" + server} {
			ok, st, err := obs.Exists(p)
			if err != nil || !ok || st.EphemeralOwner == old || st.EphemeralOwner != r.conn.SessionID() {
				return false
			}
		}
		return true
	}, registrytest.Timeout, 20*time.Millisecond, "server nodes back in the new session")

	// The watches are armed in the new session.
	b2 := registry.Binding{GroupID: "h", Topic: topic, MessageType: "b", Version: "1.0.0"}
	require.NoError(t, r.PublishBindings(ctx, "h", []registry.Binding{b2}))
	require.Eventually(t, func() bool {
		evs := rec.events()
		return registrytest.EqualState(evs[len(evs)-1].Bindings, map[string][]registry.Binding{"g": {b}, "h": {b2}})
	}, registrytest.Timeout, 20*time.Millisecond)
}

// proxy forwards TCP to ZooKeeper and can cut every connection, to
// partition the registry from ZooKeeper for longer than its session.
type proxy struct {
	ln     net.Listener
	target string
	wg     sync.WaitGroup
	mu     sync.Mutex // guards down and conns
	down   bool
	conns  map[net.Conn]struct{}
}

func startProxy(t *testing.T, target string) *proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	p := &proxy{ln: ln, target: target, conns: make(map[net.Conn]struct{})}
	p.wg.Add(1)
	go p.accept()
	t.Cleanup(func() {
		_ = ln.Close()
		p.partition()
		p.wg.Wait()
	})
	return p
}

func (p *proxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		if p.down {
			p.mu.Unlock()
			_ = c.Close()
			continue
		}
		up, err := net.DialTimeout("tcp", p.target, 5*time.Second)
		if err != nil {
			p.mu.Unlock()
			_ = c.Close()
			continue
		}
		p.conns[c], p.conns[up] = struct{}{}, struct{}{}
		p.wg.Add(2)
		p.mu.Unlock()
		pipe := func(dst, src net.Conn) {
			defer p.wg.Done()
			_, _ = io.Copy(dst, src)
			_ = dst.Close()
			_ = src.Close()
		}
		go pipe(up, c)
		go pipe(c, up)
	}
}

// partition cuts every connection and refuses new ones until heal.
func (p *proxy) partition() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.down = true
	for c := range p.conns {
		_ = c.Close()
	}
	clear(p.conns)
}

func (p *proxy) heal() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.down = false
}

// TestRegistryZKPartition cuts the registry off ZooKeeper for longer than
// the session timeout: the server expires the session and removes the
// ephemeral nodes, the watch reports the loss, and after the partition the
// registry re-creates its nodes and sends the state changed meanwhile.
func TestRegistryZKPartition(t *testing.T) {
	addr := zkAddr(t)
	obs := observer(t, addr)
	px := startProxy(t, addr)
	r := newRealRegistry(t, px.ln.Addr().String())
	ctx := ctxT(t)
	topic := registrytest.UniqueTopic(t)
	t.Cleanup(func() { removeTopics(t, obs, topic) })
	const server = "127.0.0.1:13802"
	serverNode := serverPath + "/" + topic + "/" + server
	require.NoError(t, r.PublishServer(ctx, server, []string{topic}))
	ch, err := r.Watch(ctx, topic)
	require.NoError(t, err)
	registrytest.AwaitState(t, ch, nil)
	rec := record(ch)
	old := r.conn.SessionID()

	px.partition()
	// The server expires the session: the ephemeral node goes.
	require.Eventually(t, func() bool {
		ok, _, err := obs.Exists(serverNode)
		return err == nil && !ok
	}, 20*time.Second, 50*time.Millisecond, "server node outlived the session")
	// A KiteQ client binds meanwhile.
	b := registry.Binding{GroupID: "k", Topic: topic, MessageType: "m", Version: "1.0.0"}
	data, err := registry.MarshalBindings([]registry.Binding{b})
	require.NoError(t, err)
	_, err = obs.Create(subPath+"/"+topic+"/k-bind", data, 0, zk.WorldACL(zk.PermAll))
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		evs := rec.events()
		return len(evs) > 0 && evs[len(evs)-1].Err != nil
	}, 10*time.Second, 20*time.Millisecond, "no Err while partitioned")
	require.ErrorIs(t, rec.events()[len(rec.events())-1].Err, ErrSessionLost)

	px.heal()
	rec.awaitErrThenState(t, map[string][]registry.Binding{"k": {b}})
	require.Eventually(t, func() bool {
		ok, st, err := obs.Exists(serverNode)
		return err == nil && ok && st.EphemeralOwner != old && st.EphemeralOwner == r.conn.SessionID()
	}, registrytest.Timeout, 20*time.Millisecond, "server node back in the new session")
}

// A server that accepts the connection and never answers: New gives up
// when ctx ends, and returns soon after, with go-zookeeper's goroutines
// gone (main_test's leak check), not after the library's handshake read
// times out (ten receive timeouts, about 33 s).
func TestNewGivesUpOnAHungServer(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	var held []net.Conn
	accepted := make(chan struct{})
	go func() {
		defer close(accepted)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			held = append(held, c)
		}
	}()
	defer func() {
		_ = ln.Close()
		<-accepted
		for _, c := range held {
			_ = c.Close()
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err = New(ctx, Config{Servers: []string{ln.Addr().String()}, Logger: slog.New(slog.DiscardHandler)})
	require.ErrorIs(t, err, context.DeadlineExceeded)
	require.Less(t, time.Since(start), 5*time.Second)
	t.Logf("New returned %s after it started", time.Since(start).Round(time.Millisecond))
}
