package daemon

// End-to-end tests of the KiteQ face over a real ZooKeeper: the checklist
// of kiteq-protocol.md Appendix A walked step by step with a scripted KiteQ
// client (compat/compattest) that finds the broker and registers its
// bindings in ZooKeeper exactly as kiteq-client-go does (§7.2). Start a
// ZooKeeper first:
//
//	scripts/zookeeper.sh start /tmp/zk-e2e 2181
//	KITENATS_ZK_ADDR=127.0.0.1:2181 go test -run ZK .
//
// Without KITENATS_ZK_ADDR the tests skip, or fail when CI is set.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path"
	"slices"
	"sync"
	"testing"
	"time"

	gozk "github.com/go-zookeeper/zk"
	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/proto"

	"github.com/kitenats/kitenats/compat/compattest"
	"github.com/kitenats/kitenats/compat/wire"
	"github.com/kitenats/kitenats/config"
	"github.com/kitenats/kitenats/registry"
)

// zkTestAddr returns the ZooKeeper of the tests, skipping (or, on CI,
// failing) without one.
func zkTestAddr(t *testing.T) string {
	t.Helper()
	addr := os.Getenv("KITENATS_ZK_ADDR")
	if addr == "" {
		const how = "start ZooKeeper with `scripts/zookeeper.sh start /tmp/zk-e2e 2181` and set KITENATS_ZK_ADDR=127.0.0.1:2181"
		if os.Getenv("CI") != "" {
			t.Fatal("KITENATS_ZK_ADDR is not set on CI: " + how)
		}
		t.Skip("KITENATS_ZK_ADDR is not set: " + how)
	}
	return addr
}

type zkQuiet struct{}

func (zkQuiet) Printf(string, ...any) {}

// zkObserver opens a plain ZooKeeper session: the test reads the tree
// through it as an operator would, and writes to it as a KiteQ client does.
func zkObserver(t *testing.T, addr string) *gozk.Conn {
	t.Helper()
	c, events, err := gozk.Connect([]string{addr}, 10*time.Second, gozk.WithLogger(zkQuiet{}))
	require.NoError(t, err)
	t.Cleanup(func() {
		c.Close()
		for range events { // closed once go-zookeeper's goroutines are done
			continue
		}
	})
	require.Eventually(t, func() bool { return c.State() == gozk.StateHasSession }, 10*time.Second, 10*time.Millisecond)
	return c
}

// zkRemoveTopics deletes the trees of topics under /kiteq/{server,sub,pub}.
func zkRemoveTopics(c *gozk.Conn, topics ...string) {
	for _, topic := range topics {
		for _, base := range []string{"/kiteq/server/", "/kiteq/sub/", "/kiteq/pub/"} {
			zkRemoveTree(c, base+topic)
		}
	}
}

func zkRemoveTree(c *gozk.Conn, p string) {
	children, _, err := c.Children(p)
	if err != nil {
		return
	}
	for _, ch := range children {
		zkRemoveTree(c, p+"/"+ch)
	}
	_ = c.Delete(p, -1)
}

// zkEnsure creates p and its parents as persistent empty nodes, level by
// level, as KiteQ's registry code does.
func zkEnsure(t *testing.T, c *gozk.Conn, p string) {
	t.Helper()
	for i := 1; i <= len(p); i++ {
		if i < len(p) && p[i] != '/' {
			continue
		}
		_, err := c.Create(p[:i], nil, 0, gozk.WorldACL(gozk.PermAll))
		if err != nil && !errors.Is(err, gozk.ErrNodeExists) {
			require.NoError(t, err, "creating %s", p[:i])
		}
	}
}

// zkWriteBind does what kiteq-client-go's Start does for each topic of its
// bindings: the persistent node /kiteq/sub/{topic}/{group}-bind holding the
// JSON array of the group's bindings, overwritten (Set) when it exists.
func zkWriteBind(t *testing.T, c *gozk.Conn, topic, group string, bs []registry.Binding) []byte {
	t.Helper()
	data, err := registry.MarshalBindings(bs)
	require.NoError(t, err)
	zkWriteNode(t, c, "/kiteq/sub/"+topic+"/"+group+"-bind", data)
	return data
}

func zkWriteNode(t *testing.T, c *gozk.Conn, p string, data []byte) {
	t.Helper()
	ok, _, err := c.Exists(p)
	require.NoError(t, err)
	if ok {
		_, err = c.Set(p, data, -1)
		require.NoError(t, err)
		return
	}
	zkEnsure(t, c, path.Dir(p))
	_, err = c.Create(p, data, 0, gozk.WorldACL(gozk.PermAll))
	require.NoError(t, err)
}

// zkServers is what a KiteQ client dials for topic: the children of
// /kiteq/server/{topic}.
func zkServers(t *testing.T, c *gozk.Conn, topic string) []string {
	t.Helper()
	children, _, err := c.Children("/kiteq/server/" + topic)
	if errors.Is(err, gozk.ErrNoNode) {
		return nil
	}
	require.NoError(t, err)
	slices.Sort(children)
	return children
}

// waitServers waits until the servers of topic are want: the broker
// advertises itself once it is ready to serve.
func waitServers(t *testing.T, c *gozk.Conn, topic string, want ...string) {
	t.Helper()
	var last []string
	require.Eventually(t, func() bool {
		children, _, err := c.Children("/kiteq/server/" + topic)
		if err != nil && !errors.Is(err, gozk.ErrNoNode) {
			return false
		}
		slices.Sort(children)
		last = children
		return slices.Equal(children, want)
	}, 10*time.Second, 10*time.Millisecond, "servers of %s: want %v, have %v", topic, want, &last)
}

// zkNode reads p, requiring it to exist.
func zkNode(t *testing.T, c *gozk.Conn, p string) ([]byte, *gozk.Stat) {
	t.Helper()
	data, st, err := c.Get(p)
	require.NoError(t, err, "reading %s", p)
	return data, st
}

func zkExists(t *testing.T, c *gozk.Conn, p string) bool {
	t.Helper()
	ok, _, err := c.Exists(p)
	require.NoError(t, err)
	return ok
}

// zkDaemon is a daemon registered in ZooKeeper, stopped by stop (or when
// the test ends).
type zkDaemon struct {
	*kiteqDaemon
	stop func()
}

// startZKDaemon runs a daemon with the registry zk://addr serving topics,
// NATS and KiteQ on 127.0.0.1 random ports, a memory store.
func startZKDaemon(t *testing.T, addr string, topics []string) *zkDaemon {
	t.Helper()
	cfg := config.Default()
	cfg.NATS, cfg.AdminPort = "127.0.0.1:0", -1
	cfg.Bind = "127.0.0.1:0" // the daemon advertises the port it gets
	cfg.DB, cfg.Recover = "memory://", 20*time.Millisecond
	cfg.Registry, cfg.Topics = "zk://"+addr, topics
	d, stopDaemon, err := Start(context.Background(), cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	require.NoError(t, err)
	require.NotNil(t, d.kiteq)
	var once sync.Once
	stop := func() { once.Do(func() { require.NoError(t, stopDaemon()) }) }
	t.Cleanup(stop)
	return &zkDaemon{kiteqDaemon: &kiteqDaemon{d: d, url: d.br.ClientURL(), kiteq: d.kiteq.Addr().String()}, stop: stop}
}

// listBindings reads $KQ.API.BINDINGS.LIST, by group.
func listBindings(nc *nats.Conn) (map[string][]registry.Binding, error) {
	msg, err := nc.Request("$KQ.API.BINDINGS.LIST", []byte(`{"limit":1000}`), 5*time.Second)
	if err != nil {
		return nil, err
	}
	var p struct {
		Total int                `json:"total"`
		Items []registry.Binding `json:"items"`
	}
	if err := json.Unmarshal(msg.Data, &p); err != nil {
		return nil, fmt.Errorf("%w: %s", err, msg.Data)
	}
	if p.Total != len(p.Items) {
		return nil, fmt.Errorf("BINDINGS.LIST: %d of %d items", len(p.Items), p.Total)
	}
	out := make(map[string][]registry.Binding)
	for _, b := range p.Items {
		out[b.GroupID] = append(out[b.GroupID], b)
	}
	return out, nil
}

// waitBindings waits until the broker's bindings of group are want (none
// when want is empty).
func waitBindings(t *testing.T, nc *nats.Conn, group string, want []registry.Binding, msg string) {
	t.Helper()
	var last []registry.Binding
	require.Eventually(t, func() bool {
		all, err := listBindings(nc)
		if err != nil {
			return false
		}
		last = all[group]
		return len(last) == len(want) && (len(want) == 0 || slices.Equal(last, want))
	}, 10*time.Second, 20*time.Millisecond, "%s: bindings of %s are %+v, want %+v", msg, group, &last, want)
}

// kqFrame is one frame a pumped connection received.
type kqFrame struct {
	f wire.Frame
	m proto.Message
}

// kqPump reads a scripted KiteQ connection in the background, so that the
// test can publish, ack and ping while deliveries arrive on it (the
// original client's reader works the same way).
type kqPump struct {
	c      *compattest.Client
	frames chan kqFrame // closed when the connection ends
}

func startPump(t *testing.T, c *compattest.Client) *kqPump {
	c.Timeout = time.Hour // reads end when the connection does
	p := &kqPump{c: c, frames: make(chan kqFrame, 4096)}
	quit := make(chan struct{})
	t.Cleanup(func() { close(quit); c.Close() })
	go func() {
		defer close(p.frames)
		for {
			f, err := c.TryRead()
			if err != nil {
				return
			}
			m, err := wire.Decode(f)
			if err != nil {
				return
			}
			select {
			case p.frames <- kqFrame{f, m}:
			case <-quit:
				return
			}
		}
	}()
	return p
}

func (p *kqPump) next(t *testing.T) kqFrame {
	t.Helper()
	select {
	case fr, ok := <-p.frames:
		require.True(t, ok, "the broker closed the connection")
		return fr
	case <-time.After(5 * time.Second):
		t.Fatal("nothing from the broker within 5s")
		return kqFrame{}
	}
}

// delivery requires the next frame to be a delivery.
func (p *kqPump) delivery(t *testing.T) compattest.Delivery {
	t.Helper()
	d, err := asDelivery(p.next(t))
	require.NoError(t, err)
	return d
}

func asDelivery(fr kqFrame) (compattest.Delivery, error) {
	switch m := fr.m.(type) {
	case *wire.BytesMessage:
		return compattest.Delivery{Opaque: fr.f.Opaque, Cmd: fr.f.Cmd, Header: m.GetHeader(), Body: m.GetBody()}, nil
	case *wire.StringMessage:
		return compattest.Delivery{Opaque: fr.f.Opaque, Cmd: fr.f.Cmd, Header: m.GetHeader(), Body: []byte(m.GetBody())}, nil
	}
	return compattest.Delivery{}, fmt.Errorf("expected a delivery, got %s opaque %d: %v", fr.f.Cmd, fr.f.Opaque, fr.m)
}

// ping sends a heartbeat and requires its echo: same opaque, same version.
func (p *kqPump) ping(t *testing.T) {
	t.Helper()
	v := time.Now().Unix()
	o := p.c.Send(wire.CmdHeartbeat, &wire.HeartBeat{Version: proto.Int64(v)})
	fr := p.next(t)
	require.Equal(t, wire.CmdHeartbeat, fr.f.Cmd)
	require.Equal(t, o, fr.f.Opaque)
	require.Equal(t, v, fr.m.(*wire.HeartBeat).GetVersion())
}

// none requires that nothing arrives for d.
func (p *kqPump) none(t *testing.T, d time.Duration) {
	t.Helper()
	select {
	case fr, ok := <-p.frames:
		if ok {
			t.Fatalf("unexpected %s opaque %d: %v", fr.f.Cmd, fr.f.Opaque, fr.m)
		}
	case <-time.After(d):
	}
}

// publishOK publishes on c and requires a positive store ack echoing the
// opaque and the id.
func publishOK(t *testing.T, c *compattest.Client, cmd wire.Cmd, h *wire.Header, body []byte) {
	t.Helper()
	ack := c.ExpectStoreAck(c.Publish(cmd, h, body))
	require.True(t, ack.GetStatus(), ack.GetFeedback())
	require.Equal(t, h.GetMessageId(), ack.GetMessageId())
	require.NotEmpty(t, ack.GetFeedback(), "feedback is a required field")
}

func propsOf(h *wire.Header) map[string]string {
	out := map[string]string{}
	for _, e := range h.GetProperties() {
		out[e.GetKey()] = e.GetValue()
	}
	return out
}

// TestE2EZKAppendixA walks kiteq-protocol.md Appendix A with issue #4's
// done-when setup: topic user-profile, publisher group p-user-profile,
// consumer group s-user-profile, a broker found through ZooKeeper. Each
// step is what kiteq-client-go does on the wire or in ZooKeeper, asserted.
func TestE2EZKAppendixA(t *testing.T) {
	addr := zkTestAddr(t)
	obs := zkObserver(t, addr)
	const (
		topic    = "user-profile"
		pubGroup = "p-user-profile"
		subGroup = "s-user-profile"
		msgType  = "profile-update"
	)
	sfx := compattest.NewID()[:8]
	other := "kt-" + sfx // a second served topic, sorting before user-profile
	natsGroup := "s-nats-" + sfx
	// Leftovers of an earlier run (or of anything else using user-profile)
	// must not interfere: start from an empty topic.
	zkRemoveTopics(obs, topic)
	t.Cleanup(func() { zkRemoveTopics(obs, topic, other) })

	k := startZKDaemon(t, addr, []string{topic, other})
	adv := k.kiteq // the address the KiteQ listener really got
	t.Cleanup(func() { _ = obs.Delete("/kiteq/all_servers/"+adv, -1) })
	nc := connect(t, k.url)

	// Registry: the broker's ephemeral /kiteq/server/{topic}/{host:port} for
	// every served topic, naming the port it listens on (Bind was :0), and
	// /kiteq/sub/{topic} ready for bindings.
	_, port, err := net.SplitHostPort(adv)
	require.NoError(t, err)
	require.NotEqual(t, "0", port)
	for _, tp := range []string{topic, other} {
		waitServers(t, obs, tp, adv)
		_, st := zkNode(t, obs, "/kiteq/server/"+tp+"/"+adv)
		require.NotZero(t, st.EphemeralOwner, "the server node is ephemeral")
		require.True(t, zkExists(t, obs, "/kiteq/sub/"+tp))
	}

	// The publisher starts as the client's Start does: its pub node, then
	// the servers of its topic from ZooKeeper, dialled, then ConnMeta.
	host, err := os.Hostname()
	require.NoError(t, err)
	zkEnsure(t, obs, "/kiteq/pub/"+topic+"/"+pubGroup+"/"+host)
	servers := zkServers(t, obs, topic)
	require.Len(t, servers, 1)
	pub := compattest.Dial(t, servers[0])
	auth := pub.Handshake(pubGroup, "123456", 0) // same opaque checked
	require.True(t, auth.GetStatus(), auth.GetFeedback())
	require.NotEmpty(t, auth.GetFeedback())
	pub.Heartbeat(time.Now().Unix())

	// The consumer: servers from ZooKeeper, dial, ConnMeta, and only then
	// (as the client does) its binding node.
	hot := compattest.Dial(t, servers[0])
	hot.MustHandshake(subGroup, "123456", 0)
	hot.Heartbeat(time.Now().Unix())
	bind := registry.Binding{GroupID: subGroup, Topic: topic, MessageType: msgType, BindType: registry.Direct,
		Version: registry.Version, Watermark: 1000, Persistent: true}
	data := zkWriteBind(t, obs, topic, subGroup, []registry.Binding{bind})
	require.Equal(t, `[{"groupId":"s-user-profile","topic":"user-profile","messageType":"profile-update","bindType":0,"version":"1.0.0","watermark":1000,"persistent":true}]`,
		string(data), "KiteQ's binding JSON (kiteq-protocol.md §6.1)")
	_, st := zkNode(t, obs, "/kiteq/sub/"+topic+"/"+subGroup+"-bind")
	require.Zero(t, st.EphemeralOwner, "bind nodes are persistent")
	waitBindings(t, nc, subGroup, []registry.Binding{bind}, "the broker picks the binding up from ZooKeeper")
	k.waitConsumers(t, 2) // every handshaken connection joins its group
	hp := startPump(t, hot)

	// Publish 0x11 → MessageStoreAck (same opaque, id, status true) →
	// delivery to the group's connection with the full header, a fresh
	// opaque from 0x80000000 → DeliverAck true.
	id := compattest.NewID()
	h := compattest.Header(id, topic, msgType, pubGroup)
	h.Properties = compattest.Props("uid", "42", "field", "nickname")
	publishOK(t, pub, wire.CmdBytesMessage, h, []byte("nick=kite"))
	d := hp.delivery(t)
	require.Equal(t, wire.CmdBytesMessage, d.Cmd)
	require.GreaterOrEqual(t, d.Opaque, uint32(0x80000000))
	require.Equal(t, id, d.Header.GetMessageId())
	require.Equal(t, topic, d.Header.GetTopic())
	require.Equal(t, msgType, d.Header.GetMessageType())
	require.Equal(t, pubGroup, d.Header.GetGroupId())
	require.Equal(t, int32(100), d.Header.GetDeliverLimit())
	require.True(t, d.Header.GetCommit())
	require.False(t, d.Header.GetFly())
	require.Greater(t, d.Header.GetExpiredTime(), time.Now().Unix(), "-1 becomes now + 7 days")
	require.Equal(t, map[string]string{"uid": "42", "field": "nickname"}, propsOf(d.Header))
	require.Equal(t, "nick=kite", string(d.Body))
	hot.DeliverAck(d, true)

	// 0x12 keeps its kind.
	sid := compattest.NewID()
	publishOK(t, pub, wire.CmdStringMessage, compattest.Header(sid, topic, msgType, pubGroup), []byte("héllo"))
	d = hp.delivery(t)
	require.Equal(t, wire.CmdStringMessage, d.Cmd)
	require.Equal(t, sid, d.Header.GetMessageId())
	require.Equal(t, "héllo", string(d.Body))
	hot.DeliverAck(d, true)

	// DeliverAck false → redelivered, with a fresh opaque.
	rid := compattest.NewID()
	publishOK(t, pub, wire.CmdBytesMessage, compattest.Header(rid, topic, msgType, pubGroup), []byte("again"))
	first := hp.delivery(t)
	require.Equal(t, rid, first.Header.GetMessageId())
	hot.DeliverAck(first, false)
	second := hp.delivery(t)
	require.Equal(t, rid, second.Header.GetMessageId(), "a NACKed message comes back")
	require.NotEqual(t, first.Opaque, second.Opaque)
	hot.DeliverAck(second, true)
	hp.ping(t) // heartbeats are echoed while deliveries flow too
	hp.none(t, 200*time.Millisecond)
	require.Eventually(t, func() bool {
		st, err := k.d.broker.Stat(context.Background())
		if err != nil || st.Acked != 3 || st.Nacked != 1 {
			return false
		}
		for _, g := range st.Groups {
			if g.Group == subGroup && (g.Pending != 0 || g.Inflight != 0) {
				return false
			}
		}
		return true
	}, 5*time.Second, 20*time.Millisecond, "three messages acked, one NACK, nothing pending")

	// Warmup (§8.1): a second connection of the group reporting
	// warmingupSec=3600 is almost never chosen during its first seconds.
	cold := compattest.Dial(t, servers[0])
	cold.MustHandshake(subGroup, "123456", 3600)
	cp := startPump(t, cold)
	k.waitConsumers(t, 3)
	const n = 300
	counts, err := drainBoth(n, map[string]*kqPump{"hot": hp, "cold": cp}, func() {
		for i := 0; i < n; i++ {
			publishOK(t, pub, wire.CmdBytesMessage, compattest.Header(compattest.NewID(), topic, msgType, pubGroup), []byte("w"))
		}
	})
	require.NoError(t, err)
	t.Logf("deliveries per connection during warmup: %v", counts)
	require.Less(t, counts["cold"], n/10, "a connection warming up for an hour gets about 0.5%%")
	require.Greater(t, counts["hot"], n*9/10)
	cold.Close()
	k.waitConsumers(t, 2)

	// A NATS consumer group: BIND publishes its binding to ZooKeeper in
	// KiteQ's form, where KiteQ brokers and tools see it.
	_, ch := consume(t, k.url, natsGroup, `{"topic":"user-profile","messageType":"profile-update","bindType":"direct","persistent":true}`, "")
	want, err := registry.MarshalBindings([]registry.Binding{{GroupID: natsGroup, Topic: topic, MessageType: msgType,
		BindType: registry.Direct, Version: registry.Version, Persistent: true}})
	require.NoError(t, err)
	data, st = zkNode(t, obs, "/kiteq/sub/"+topic+"/"+natsGroup+"-bind")
	require.Equal(t, string(want), string(data))
	require.Zero(t, st.EphemeralOwner)
	require.False(t, zkExists(t, obs, "/kiteq/sub/"+other+"/"+natsGroup+"-bind"))
	t.Cleanup(func() { _ = obs.Delete("/kiteq/sub/"+topic+"/"+natsGroup+"-bind", -1) })
	k.waitConsumers(t, 3)

	// A KiteQ publish (Snappy-compressed as BuildByteMessage does) reaches
	// the KiteQ group and the NATS group, ids, types and properties intact.
	kid := compattest.NewID()
	h = compattest.Header(kid, topic, msgType, pubGroup)
	h.Snappy = proto.Bool(true)
	h.Properties = compattest.Props("uid", "7")
	body, err := wire.EncodeBody(wire.CmdBytesMessage, []byte("from kiteq"))
	require.NoError(t, err)
	publishOK(t, pub, wire.CmdBytesMessage, h, body)
	m := recv(t, ch)
	require.Equal(t, kid, m.Header.Get("Kq-Msg-Id"))
	require.Equal(t, topic, m.Header.Get("Kq-Topic"))
	require.Equal(t, msgType, m.Header.Get("Kq-Message-Type"))
	require.Equal(t, pubGroup, m.Header.Get("Kq-Group"))
	require.Equal(t, "bytes", m.Header.Get("Kq-Body-Type"))
	require.Equal(t, "7", m.Header.Get("uid"))
	require.Equal(t, "from kiteq", string(m.Data))
	require.NoError(t, m.AckSync())
	d = hp.delivery(t)
	require.Equal(t, kid, d.Header.GetMessageId())
	require.Equal(t, wire.CmdBytesMessage, d.Cmd)
	require.False(t, d.Header.GetSnappy())
	require.Equal(t, map[string]string{"uid": "7"}, propsOf(d.Header))
	require.Equal(t, "from kiteq", string(d.Body))
	hot.DeliverAck(d, true)

	// A NATS publish reaches both groups too.
	nid := compattest.NewID()
	reply, err := nc.RequestMsg(&nats.Msg{Subject: "kq.user-profile.profile-update", Data: []byte("from nats"), Header: nats.Header{
		"Kq-Msg-Id": {nid}, "Kq-Group": {"p-nats"}, "Kq-Body-Type": {"string"}, "uid": {"8"},
	}}, 5*time.Second)
	require.NoError(t, err)
	require.NotContains(t, string(reply.Data), "error")
	d = hp.delivery(t)
	require.Equal(t, wire.CmdStringMessage, d.Cmd)
	require.Equal(t, nid, d.Header.GetMessageId())
	require.Equal(t, topic, d.Header.GetTopic())
	require.Equal(t, msgType, d.Header.GetMessageType())
	require.Equal(t, "p-nats", d.Header.GetGroupId())
	require.Equal(t, map[string]string{"uid": "8"}, propsOf(d.Header))
	require.Equal(t, "from nats", string(d.Body))
	hot.DeliverAck(d, true)
	m = recv(t, ch)
	require.Equal(t, nid, m.Header.Get("Kq-Msg-Id"))
	require.Equal(t, "8", m.Header.Get("uid"))
	require.NoError(t, m.AckSync())

	// Exact topic membership: a topic sorting before the last served one
	// is refused (KiteQ accepted it and dropped it, §12 item 5).
	ack := pub.ExpectStoreAck(pub.Publish(wire.CmdBytesMessage, compattest.Header(compattest.NewID(), "aaa-"+sfx, msgType, pubGroup), []byte("x")))
	require.False(t, ack.GetStatus())
	require.Equal(t, "kq: topic not served: aaa-"+sfx, ack.GetFeedback())

	// Transactions, as SendTxBytesMessage does them: commit=false is
	// stored and delivered to nobody; the producer's TxAck (opaque 0, no
	// reply) commits it, and then it reaches both groups, or rolls it back.
	// Check-backs are walked in e2e_tx_test.go; this producer has a group
	// of its own so that none reaches the connections above.
	txGroup := "p-tx-" + sfx
	txc := compattest.Dial(t, servers[0])
	txc.MustHandshake(txGroup, "", 0)
	for _, status := range []int32{wire.TxCommit, wire.TxRollback} {
		tx := compattest.Header(compattest.NewID(), topic, msgType, txGroup)
		tx.Commit = proto.Bool(false)
		publishOK(t, txc, wire.CmdBytesMessage, tx, []byte("tx"))
		hp.none(t, 200*time.Millisecond)
		requireNone(t, ch, 50*time.Millisecond)
		txc.SendWith(0, wire.CmdTxAck, &wire.TxACKPacket{Header: tx, Status: proto.Int32(status), Feedback: proto.String("")})
		if status == wire.TxRollback {
			hp.none(t, 300*time.Millisecond)
			requireNone(t, ch, 50*time.Millisecond)
			continue
		}
		d = hp.delivery(t)
		require.Equal(t, tx.GetMessageId(), d.Header.GetMessageId())
		hot.DeliverAck(d, true)
		m = recv(t, ch)
		require.Equal(t, tx.GetMessageId(), m.Header.Get("Kq-Msg-Id"))
		require.NoError(t, m.AckSync())
	}
	txc.Heartbeat(time.Now().Unix()) // the TxAcks got no reply: the next frame is the echo
	txc.Close()

	// Before the handshake a heartbeat is answered (a reconnecting client's
	// leftover); a command only a broker sends, or a bad length, closes that
	// connection alone.
	rogue := compattest.Dial(t, servers[0])
	rogue.Heartbeat(1)
	rogue.Send(wire.CmdConnAuth, &wire.ConnAuthAck{Status: proto.Bool(true), Feedback: proto.String("")})
	rogue.ExpectClosed()
	bad := compattest.Dial(t, servers[0])
	bad.MustHandshake(pubGroup, "", 0)
	require.NoError(t, bad.WriteRaw([]byte{0, 0, 0, 9, byte(wire.CmdHeartbeat), 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff}))
	bad.ExpectClosed()
	pub.Heartbeat(time.Now().Unix())
	hp.ping(t)

	// Stopping the broker withdraws it from ZooKeeper and closes its KiteQ
	// connections.
	k.stop()
	for _, tp := range []string{topic, other} {
		require.Empty(t, zkServers(t, obs, tp), "servers of %s after the stop", tp)
	}
	require.False(t, zkExists(t, obs, "/kiteq/alive_servers/"+adv))
	pub.ExpectClosed()
	// Bindings outlive the broker, as KiteQ's do.
	require.True(t, zkExists(t, obs, "/kiteq/sub/"+topic+"/"+subGroup+"-bind"))
}

// drainBoth runs publish while acking every delivery arriving on pumps,
// until n distinct messages have arrived; it returns the deliveries per
// pump name. It runs off the test goroutine, so it reports errors.
func drainBoth(n int, pumps map[string]*kqPump, publish func()) (map[string]int, error) {
	type got struct {
		name string
		fr   kqFrame
		ok   bool
	}
	in := make(chan got)
	stop := make(chan struct{})
	defer close(stop)
	for name, p := range pumps {
		go func() {
			for {
				select {
				case fr, ok := <-p.frames:
					select {
					case in <- got{name, fr, ok}:
					case <-stop:
						return
					}
					if !ok {
						return
					}
				case <-stop:
					return
				}
			}
		}()
	}
	res := make(chan error, 1)
	counts := map[string]int{}
	go func() {
		seen := map[string]bool{}
		deadline := time.After(30 * time.Second)
		for len(seen) < n {
			select {
			case g := <-in:
				if !g.ok {
					res <- fmt.Errorf("%s: connection closed", g.name)
					return
				}
				d, err := asDelivery(g.fr)
				if err != nil {
					res <- err
					return
				}
				counts[g.name]++
				seen[d.Header.GetMessageId()] = true
				if err := pumps[g.name].c.TryDeliverAck(d, true); err != nil {
					res <- err
					return
				}
			case <-deadline:
				res <- fmt.Errorf("%d of %d messages delivered within 30s", len(seen), n)
				return
			}
		}
		res <- nil
	}()
	publish()
	err := <-res
	return counts, err
}

// TestE2EZKBindingsFollowZooKeeper checks how the broker follows KiteQ
// bindings in ZooKeeper, on topics of its own: bindings written before it
// starts are known once it is ready; later nodes, changes and deletions
// are applied; deleting one group's node never makes it forget the other
// groups of the topic (KiteQ's broker briefly did, §12 item 13); a node
// that does not parse is skipped; KiteQ's watermark rule applies.
func TestE2EZKBindingsFollowZooKeeper(t *testing.T) {
	addr := zkTestAddr(t)
	obs := zkObserver(t, addr)
	sfx := compattest.NewID()[:8]
	t1, t2 := "kt-a-"+sfx, "kt-b-"+sfx
	t.Cleanup(func() { zkRemoveTopics(obs, t1, t2) })
	preGroup, otherGroup, badGroup := "s-pre-"+sfx, "s-other-"+sfx, "s-bad-"+sfx

	pre := registry.Binding{GroupID: preGroup, Topic: t1, MessageType: `pay-\d+`, BindType: registry.Regx,
		Version: registry.Version, Watermark: -1, Persistent: true}
	zkWriteBind(t, obs, t1, preGroup, []registry.Binding{pre})

	k := startZKDaemon(t, addr, []string{t1, t2})
	t.Cleanup(func() { _ = obs.Delete("/kiteq/all_servers/"+k.kiteq, -1) })
	nc := connect(t, k.url)

	// Known as soon as the broker is ready, with KiteQ's watermark rule
	// (<= 0 means 6000).
	all, err := listBindings(nc)
	require.NoError(t, err)
	wantPre := pre
	wantPre.Watermark = registry.DefaultWatermark
	require.Equal(t, []registry.Binding{wantPre}, all[preGroup])

	// A consumer of that group, found through ZooKeeper, gets a matching
	// NATS publish (the regx is unanchored, as in KiteQ).
	waitServers(t, obs, t1, k.kiteq)
	waitServers(t, obs, t2, k.kiteq)
	servers := zkServers(t, obs, t1)
	c := compattest.Dial(t, servers[0])
	c.MustHandshake(preGroup, "", 0)
	k.waitConsumers(t, 1)
	_, err = nc.Request("kq."+t1+".x-pay-42", []byte("p"), 5*time.Second)
	require.NoError(t, err)
	d := c.ExpectDelivery()
	require.Equal(t, "x-pay-42", d.Header.GetMessageType())
	c.DeliverAck(d, true)

	// A node written later, and one that does not parse.
	other := registry.Binding{GroupID: otherGroup, Topic: t1, MessageType: "refund", BindType: registry.Direct,
		Version: registry.Version, Watermark: 500, Persistent: false}
	zkWriteBind(t, obs, t1, otherGroup, []registry.Binding{other})
	zkWriteNode(t, obs, "/kiteq/sub/"+t1+"/"+badGroup+"-bind", []byte("{not json"))
	waitBindings(t, nc, otherGroup, []registry.Binding{other}, "a node written after the start")

	// Deleting one group's node: that group goes, the other stays in every
	// observation.
	require.NoError(t, obs.Delete("/kiteq/sub/"+t1+"/"+preGroup+"-bind", -1))
	require.Eventually(t, func() bool {
		all, err := listBindings(nc)
		if err != nil {
			return false
		}
		if !slices.Equal(all[otherGroup], []registry.Binding{other}) {
			t.Errorf("the bindings of %s were lost when %s's node was deleted: %+v", otherGroup, preGroup, all)
		}
		return len(all[preGroup]) == 0
	}, 10*time.Second, 5*time.Millisecond)

	// A changed node replaces the group's bindings; an empty array removes
	// them.
	fan := registry.Binding{GroupID: otherGroup, Topic: t1, MessageType: "*", BindType: registry.Fanout,
		Version: registry.Version, Watermark: 9000, Persistent: true}
	zkWriteBind(t, obs, t1, otherGroup, []registry.Binding{fan})
	wantFan := fan
	wantFan.Watermark = registry.DefaultWatermark // at most 6000
	waitBindings(t, nc, otherGroup, []registry.Binding{wantFan}, "a changed node")
	zkWriteNode(t, obs, "/kiteq/sub/"+t1+"/"+otherGroup+"-bind", []byte("[]"))
	waitBindings(t, nc, otherGroup, nil, "an empty array")

	k.stop()
	require.Empty(t, zkServers(t, obs, t1))
	require.Empty(t, zkServers(t, obs, t2))
}

// TestWithBoundPort: -bind host:0 advertises the port the listener got.
func TestWithBoundPort(t *testing.T) {
	bound := &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 41234}
	require.Equal(t, "127.0.0.1:41234", withBoundPort("127.0.0.1:0", bound))
	require.Equal(t, "broker.example:41234", withBoundPort("broker.example:0", bound))
	require.Equal(t, "broker.example:13800", withBoundPort("broker.example:13800", bound))
	require.Equal(t, "", withBoundPort("", bound))
}
