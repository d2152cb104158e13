package daemon

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/proto"

	"github.com/kitenats/kitenats/compat/compattest"
	"github.com/kitenats/kitenats/compat/wire"
	"github.com/kitenats/kitenats/config"
	"github.com/kitenats/kitenats/registry"
)

// kiteqDaemon is a whole daemon, KiteQ adapter included, on random ports.
type kiteqDaemon struct {
	d     *Daemon
	url   string // NATS client URL
	kiteq string // KiteQ TCP address
}

// startKiteQ runs a daemon (memory store unless mod says otherwise) with
// its NATS server and its KiteQ adapter on 127.0.0.1 random ports, until the
// test ends. Unlike startBroker it keeps the daemon, so that tests can give
// KiteQ groups their bindings (a KiteQ client takes them from the registry).
func startKiteQ(t *testing.T, mod func(*config.Config)) *kiteqDaemon {
	t.Helper()
	d := startTestDaemon(t, mod)
	require.NotNil(t, d.kiteq, "the daemon runs the KiteQ adapter")
	return &kiteqDaemon{d: d, url: d.br.ClientURL(), kiteq: d.kiteq.Addr().String()}
}

// bind gives group a persistent direct binding of (topic, messageType), as
// a KiteQ client's registry entry would.
func (k *kiteqDaemon) bind(t *testing.T, group, topic, messageType string) {
	t.Helper()
	require.NoError(t, k.d.broker.AddBindings(context.Background(), group, []registry.Binding{
		{GroupID: group, Topic: topic, MessageType: messageType, BindType: registry.Direct, Persistent: true},
	}))
}

// waitConsumers waits until the broker has n consumers.
func (k *kiteqDaemon) waitConsumers(t *testing.T, n int) {
	t.Helper()
	require.Eventually(t, func() bool {
		st, err := k.d.broker.Stat(context.Background())
		return err == nil && len(st.Consumers) == n
	}, 5*time.Second, 10*time.Millisecond)
}

func kiteqClient(t *testing.T, addr, group string, warmingupSec int32) *compattest.Client {
	t.Helper()
	c := compattest.Dial(t, addr)
	c.MustHandshake(group, "", warmingupSec)
	return c
}

func TestE2EKiteQProducerToNATSConsumer(t *testing.T) {
	k := startKiteQ(t, func(c *config.Config) { c.Topics = []string{"trade"} })
	_, ch := consume(t, k.url, "s-nats", `{"topic":"trade","messageType":"pay-succ","bindType":"direct","persistent":true}`, "")
	p := kiteqClient(t, k.kiteq, "p-trade", 0)

	// A bytes message, Snappy-compressed as BuildByteMessage does, with
	// properties: the NATS consumer gets it raw, with every header.
	id := compattest.NewID()
	h := compattest.Header(id, "trade", "pay-succ", "p-trade")
	h.Snappy = proto.Bool(true)
	h.DeliverLimit = proto.Int32(5)
	h.Properties = compattest.Props("orderNo", "42", "amount", "9.90")
	body, err := wire.EncodeBody(wire.CmdBytesMessage, []byte("paid"))
	require.NoError(t, err)
	ack := p.ExpectStoreAck(p.Publish(wire.CmdBytesMessage, h, body))
	require.True(t, ack.GetStatus(), ack.GetFeedback())
	require.Equal(t, id, ack.GetMessageId())

	m := recv(t, ch)
	require.Equal(t, "paid", string(m.Data))
	require.Equal(t, id, m.Header.Get("Kq-Msg-Id"))
	require.Equal(t, "trade", m.Header.Get("Kq-Topic"))
	require.Equal(t, "pay-succ", m.Header.Get("Kq-Message-Type"))
	require.Equal(t, "p-trade", m.Header.Get("Kq-Group"))
	require.Equal(t, "bytes", m.Header.Get("Kq-Body-Type"))
	require.Equal(t, "5", m.Header.Get("Kq-Deliver-Limit"))
	require.Equal(t, fmt.Sprint(h.GetCreateTime()), m.Header.Get("Kq-Created"))
	require.Equal(t, "42", m.Header.Get("orderNo"))
	require.Equal(t, "9.90", m.Header.Get("amount"))
	require.NoError(t, m.AckSync())

	// A string message keeps its kind.
	sid := compattest.NewID()
	require.True(t, p.ExpectStoreAck(p.Publish(wire.CmdStringMessage, compattest.Header(sid, "trade", "pay-succ", "p-trade"), []byte("héllo"))).GetStatus())
	m = recv(t, ch)
	require.Equal(t, sid, m.Header.Get("Kq-Msg-Id"))
	require.Equal(t, "string", m.Header.Get("Kq-Body-Type"))
	require.Equal(t, "héllo", string(m.Data))
	require.NoError(t, m.AckSync())

	// The same id again is a duplicate: accepted, stored and delivered once.
	ack = p.ExpectStoreAck(p.Publish(wire.CmdStringMessage, compattest.Header(sid, "trade", "pay-succ", "p-trade"), []byte("héllo")))
	require.True(t, ack.GetStatus())
	require.Contains(t, ack.GetFeedback(), "Duplicate")

	// Refusals carry the broker's description, as NATS replies do.
	ack = p.ExpectStoreAck(p.Publish(wire.CmdBytesMessage, compattest.Header(compattest.NewID(), "user", "x", "p-trade"), []byte("x")))
	require.False(t, ack.GetStatus())
	require.Equal(t, "kq: topic not served: user", ack.GetFeedback())
	tx := compattest.Header(compattest.NewID(), "trade", "pay-succ", "p-trade")
	tx.Commit = proto.Bool(false)
	ack = p.ExpectStoreAck(p.Publish(wire.CmdBytesMessage, tx, []byte("x")))
	require.True(t, ack.GetStatus(), "a prepared message is stored: %s", ack.GetFeedback())
	requireNone(t, ch, 200*time.Millisecond) // and delivered to nobody until committed
}

func TestE2ENATSProducerToKiteQConsumer(t *testing.T) {
	k := startKiteQ(t, nil)
	k.bind(t, "s-kiteq", "trade", "pay-succ")
	c := kiteqClient(t, k.kiteq, "s-kiteq", 0)
	k.waitConsumers(t, 1)

	nc := connect(t, k.url)
	id := compattest.NewID()
	reply, err := nc.RequestMsg(&nats.Msg{Subject: "kq.trade.pay-succ", Data: []byte("from nats"), Header: nats.Header{
		"Kq-Msg-Id": {id}, "Kq-Group": {"p-nats"}, "Kq-Body-Type": {"string"}, "Kq-Deliver-Limit": {"7"}, "orderNo": {"42"},
	}}, 5*time.Second)
	require.NoError(t, err)
	require.NotContains(t, string(reply.Data), "error")

	d := c.ExpectDelivery()
	require.Equal(t, wire.CmdStringMessage, d.Cmd)
	require.GreaterOrEqual(t, d.Opaque, uint32(0x80000000))
	require.Equal(t, id, d.Header.GetMessageId())
	require.Equal(t, "trade", d.Header.GetTopic())
	require.Equal(t, "pay-succ", d.Header.GetMessageType())
	require.Equal(t, "p-nats", d.Header.GetGroupId())
	require.Equal(t, int32(7), d.Header.GetDeliverLimit())
	require.False(t, d.Header.GetSnappy())
	require.Greater(t, d.Header.GetExpiredTime(), time.Now().Unix())
	require.Len(t, d.Header.GetProperties(), 1)
	require.Equal(t, "orderNo", d.Header.GetProperties()[0].GetKey())
	require.Equal(t, "42", d.Header.GetProperties()[0].GetValue())
	require.Equal(t, "from nats", string(d.Body))
	c.DeliverAck(d, true)

	require.Eventually(t, func() bool {
		st, err := k.d.broker.Stat(context.Background())
		if err != nil {
			return false
		}
		for _, g := range st.Groups {
			if g.Pending != 0 || g.Inflight != 0 {
				return false
			}
		}
		return st.Acked == 1
	}, 5*time.Second, 20*time.Millisecond, "the DeliverAck completed the message")
	c.ExpectSilence(200 * time.Millisecond)
}

func TestE2EKiteQRedeliveryAfterNak(t *testing.T) {
	k := startKiteQ(t, nil)
	k.bind(t, "s-kiteq", "trade", "pay")
	c := kiteqClient(t, k.kiteq, "s-kiteq", 0)
	k.waitConsumers(t, 1)
	p := kiteqClient(t, k.kiteq, "p-trade", 0)
	id := compattest.NewID()
	require.True(t, p.ExpectStoreAck(p.Publish(wire.CmdBytesMessage, compattest.Header(id, "trade", "pay", "p-trade"), []byte("x"))).GetStatus())

	first := c.ExpectDelivery()
	require.Equal(t, id, first.Header.GetMessageId())
	c.DeliverAck(first, false)
	second := c.ExpectDelivery()
	require.Equal(t, id, second.Header.GetMessageId(), "a NACKed message comes back")
	require.NotEqual(t, first.Opaque, second.Opaque, "with a fresh opaque")
	c.DeliverAck(second, true)
	c.ExpectSilence(300 * time.Millisecond)
}

// TestE2EKiteQWarmup checks the ramp of kiteq-protocol.md §8.1 from
// warmingupSec: a connection that just joined with a long warmup is almost
// never chosen, while two connections without warmup share evenly.
func TestE2EKiteQWarmup(t *testing.T) {
	const n = 300
	k := startKiteQ(t, nil)
	k.bind(t, "s-warm", "trade", "pay")
	k.bind(t, "s-even", "trade", "pay")
	clients := map[string]*compattest.Client{
		"hot":   kiteqClient(t, k.kiteq, "s-warm", 0),
		"cold":  kiteqClient(t, k.kiteq, "s-warm", 3600),
		"even1": kiteqClient(t, k.kiteq, "s-even", 0),
		"even2": kiteqClient(t, k.kiteq, "s-even", 0),
	}
	k.waitConsumers(t, 4)

	var mu sync.Mutex
	counts := map[string]int{}
	seen := map[string]map[string]bool{"s-warm": {}, "s-even": {}}
	var wg sync.WaitGroup
	for name, c := range clients {
		group := "s-warm"
		if strings.HasPrefix(name, "even") {
			group = "s-even"
		}
		c.Timeout = time.Minute // the reads end when the test closes the connection
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				d, err := c.TryDelivery()
				if err != nil {
					return
				}
				mu.Lock()
				counts[name]++
				seen[group][d.Header.GetMessageId()] = true
				mu.Unlock()
				if c.TryDeliverAck(d, true) != nil {
					return
				}
			}
		}()
	}

	nc := connect(t, k.url)
	for i := 0; i < n; i++ {
		_, err := nc.Request("kq.trade.pay", []byte("x"), 5*time.Second)
		require.NoError(t, err)
	}
	require.Eventually(t, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(seen["s-warm"]) == n && len(seen["s-even"]) == n
	}, 20*time.Second, 20*time.Millisecond, "every message reaches both groups")
	for _, c := range clients {
		c.Close()
	}
	wg.Wait()

	t.Logf("deliveries per connection: %v", counts)
	require.Less(t, counts["cold"], n/10, "a connection warming up for an hour gets about 0.5%%")
	require.Greater(t, counts["hot"], n*9/10)
	require.Greater(t, counts["even1"], n/5, "without warmup the choice is uniform")
	require.Greater(t, counts["even2"], n/5)
}

func TestE2EKiteQSecrets(t *testing.T) {
	k := startKiteQ(t, func(c *config.Config) {
		c.Secrets = map[string]string{"p-trade": "p4ss"}
		c.AdminSecret = "root"
	})
	bad := compattest.Dial(t, k.kiteq)
	ack := bad.Handshake("p-trade", "wrong", 0)
	require.False(t, ack.GetStatus())
	require.NotEmpty(t, ack.GetFeedback())
	bad.ExpectClosed()

	good := compattest.Dial(t, k.kiteq)
	good.MustHandshake("p-trade", "p4ss", 0)
	good.Heartbeat(time.Now().Unix())
}

// publishPipelined publishes n messages of size bytes to (topic,
// messageType) from a KiteQ connection of group, window publishes in flight
// at a time, and requires every store ack.
func publishPipelined(t *testing.T, addr, group, topic, messageType string, n, size, window int) {
	t.Helper()
	p := kiteqClient(t, addr, group, 0)
	body := []byte(strings.Repeat("k", size))
	for sent := 0; sent < n; {
		batch := min(window, n-sent)
		opaques := make([]uint32, batch)
		for i := range opaques {
			opaques[i] = p.Publish(wire.CmdBytesMessage, compattest.Header(compattest.NewID(), topic, messageType, group), body)
		}
		for _, o := range opaques {
			ack := p.ExpectStoreAck(o)
			require.True(t, ack.GetStatus(), ack.GetFeedback())
		}
		sent += batch
	}
}

// TestE2EKiteQClientSocketKeepsUp: kiteq-client-go's consumer (16 KiB
// receive buffer, 50 dispatchers, heartbeats) gets a burst of 2 KiB
// messages on loopback. Every message arrives once, promptly, without a
// heartbeat timeout or a reconnect. Before the delivery window and the
// segment size cap the broker queued megabytes for it and Linux trickled
// them out at a few dozen messages a second on the zero-window probe timer.
func TestE2EKiteQClientSocketKeepsUp(t *testing.T) {
	k := startKiteQ(t, func(c *config.Config) { c.Topics = []string{"user-profile"} })
	k.bind(t, "s-mts-test1", "user-profile", "profile-update")
	kite, err := compattest.StartKite(t, k.kiteq, compattest.KiteConfig{
		Group: "s-mts-test1", HeartbeatPeriod: 2 * time.Second, HeartbeatTimeout: time.Second,
	})
	require.NoError(t, err)
	k.waitConsumers(t, 1)

	const n = 20000
	publishPipelined(t, k.kiteq, "go-kite-test", "user-profile", "profile-update", n, 2<<10, 256)
	// At the trickle this would take minutes; 30 s is generous for a
	// machine under -race.
	deadline := time.Now().Add(30 * time.Second)
	for kite.Stats().Unique < n && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	st := kite.Stats()
	require.Equal(t, int64(n), st.Unique, "consumed within 30 s: %+v", st)
	require.Equal(t, int64(n), st.Received, "each message once")
	require.Zero(t, st.HeartbeatFailures)
	require.Zero(t, st.Reconnects)
	bs, err := k.d.broker.Stat(context.Background())
	require.NoError(t, err)
	require.Zero(t, bs.Redelivered)
	require.Zero(t, bs.Timeouts)
}

// TestE2EKiteQClientReconnects: the client reconnects the way it does
// after three failed heartbeats (the unanswered ping goes out on the new
// connection before its ConnMeta). The handshake succeeds and the consumer
// gets what is published afterwards.
func TestE2EKiteQClientReconnects(t *testing.T) {
	k := startKiteQ(t, func(c *config.Config) { c.Topics = []string{"user-profile"} })
	k.bind(t, "s-mts-test1", "user-profile", "profile-update")
	kite, err := compattest.StartKite(t, k.kiteq, compattest.KiteConfig{Group: "s-mts-test1"})
	require.NoError(t, err)
	k.waitConsumers(t, 1)
	publishPipelined(t, k.kiteq, "go-kite-test", "user-profile", "profile-update", 10, 100, 10)
	require.Eventually(t, func() bool { return kite.Stats().Unique == 10 }, 5*time.Second, 10*time.Millisecond)

	require.NoError(t, kite.Reconnect())
	require.Eventually(t, func() bool { // the old connection has left
		st, err := k.d.broker.Stat(context.Background())
		n := 0
		for _, c := range st.Consumers {
			if c.Group == "s-mts-test1" {
				n++
			}
		}
		return err == nil && n == 1
	}, 5*time.Second, 10*time.Millisecond)
	publishPipelined(t, k.kiteq, "go-kite-test", "user-profile", "profile-update", 10, 100, 10)
	require.Eventually(t, func() bool { return kite.Stats().Unique == 20 }, 5*time.Second, 10*time.Millisecond)
	require.Equal(t, int64(1), kite.Stats().Reconnects)
}

// TestE2EKiteQUnmatchedPublish: a KiteQ publish no group binds is accepted
// with KiteQ's usual answer (its wire format has no room for a group count)
// and counted as unmatched, as a NATS publish is.
func TestE2EKiteQUnmatchedPublish(t *testing.T) {
	k := startKiteQ(t, nil)
	p := kiteqClient(t, k.kiteq, "p-trade", 0)
	ack := p.ExpectStoreAck(p.Publish(wire.CmdBytesMessage, compattest.Header(compattest.NewID(), "trade", "nobody", "p-trade"), []byte("x")))
	require.True(t, ack.GetStatus(), ack.GetFeedback())
	require.Regexp(t, `^Store Result true Cost:\d+$`, ack.GetFeedback())
	st, err := k.d.broker.Stat(context.Background())
	require.NoError(t, err)
	require.Equal(t, int64(1), st.Unmatched)
	require.Equal(t, int64(1), st.Published)
}

// TestE2EKiteQStuckConsumerLosesItsShare: one member's listener hangs (its
// client stops acknowledging). It is sent only its delivery window; the
// group's other member gets everything else at once and, after the ack
// wait, what the stuck one holds: every message consumed once by the group.
func TestE2EKiteQStuckConsumerLosesItsShare(t *testing.T) {
	k := startKiteQ(t, func(c *config.Config) {
		c.Topics = []string{"user-profile"}
		c.AckWait = time.Second
	})
	k.bind(t, "s-mts-test1", "user-profile", "profile-update")
	release := make(chan struct{})
	var stuckGot atomic.Int64
	stuck, err := compattest.StartKite(t, k.kiteq, compattest.KiteConfig{
		Group: "s-mts-test1",
		OnMessage: func(compattest.Delivery) bool {
			stuckGot.Add(1)
			<-release
			return false
		},
	})
	require.NoError(t, err)
	t.Cleanup(func() { close(release); stuck.Close() }) // release first: its dispatchers wait on it
	var mu sync.Mutex
	seen := map[string]int{}
	healthy, err := compattest.StartKite(t, k.kiteq, compattest.KiteConfig{
		Group: "s-mts-test1",
		OnMessage: func(d compattest.Delivery) bool {
			mu.Lock()
			seen[d.Header.GetMessageId()]++
			mu.Unlock()
			return true
		},
	})
	require.NoError(t, err)
	k.waitConsumers(t, 2)

	const n = 2000
	publishPipelined(t, k.kiteq, "go-kite-test", "user-profile", "profile-update", n, 2<<10, 256)
	require.Eventually(t, func() bool { return healthy.Stats().Unique == n }, 20*time.Second, 20*time.Millisecond)
	// The stuck member was sent at most its window (256 KiB of ~2.2 KiB
	// frames), plus what was reserved for it before it filled.
	require.Less(t, stuckGot.Load(), int64(130), "deliveries to the stuck member")
	mu.Lock()
	defer mu.Unlock()
	for id, c := range seen {
		require.Equal(t, 1, c, "message %s acknowledged by the healthy member once", id)
	}
}
