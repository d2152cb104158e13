package daemon

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/kitenats/kitenats/config"
	"github.com/kitenats/kitenats/store"
)

// startBroker runs a whole daemon (memory store unless mod says otherwise)
// on a random NATS port and returns its client URL.
func startBroker(t *testing.T, mod func(*config.Config)) string {
	return startTestDaemon(t, mod).br.ClientURL()
}

// startTestDaemon runs a daemon on random 127.0.0.1 ports (NATS and KiteQ),
// with the memory store and a quick recover loop unless mod says otherwise,
// until the test ends.
func startTestDaemon(t *testing.T, mod func(*config.Config)) *Daemon {
	t.Helper()
	cfg := config.Default()
	cfg.NATS, cfg.Bind, cfg.AdminPort = "127.0.0.1:0", "127.0.0.1:0", -1
	cfg.DB, cfg.Recover = "memory://", 20*time.Millisecond
	if mod != nil {
		mod(&cfg)
	}
	d, stop, err := Start(context.Background(), cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, stop()) })
	return d
}

func connect(t *testing.T, url string, opts ...nats.Option) *nats.Conn {
	t.Helper()
	nc, err := nats.Connect(url, opts...)
	require.NoError(t, err)
	t.Cleanup(nc.Close)
	return nc
}

// request sends a $KQ.API call and decodes the reply into out.
func request(t *testing.T, nc *nats.Conn, subject string, body any, out any) {
	t.Helper()
	b, err := json.Marshal(body)
	require.NoError(t, err)
	msg, err := nc.Request(subject, b, 5*time.Second)
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal(msg.Data, out), string(msg.Data))
}

type apiErr struct {
	Error *struct {
		Code    int `json:"code"`
		ErrCode int `json:"err_code"`
	} `json:"error"`
}

// consume binds a consumer of group on its own connection and returns the
// channel its deliveries arrive on.
func consume(t *testing.T, url, group, bindings string, extra string) (*nats.Conn, chan *nats.Msg) {
	t.Helper()
	return consumeWith(t, url, group, bindings, extra, nats.UserInfo(group, ""))
}

// consumeWith is consume on a connection made with opts (TLS, a client
// certificate) instead of the group as user.
func consumeWith(t *testing.T, url, group, bindings string, extra string, opts ...nats.Option) (*nats.Conn, chan *nats.Msg) {
	t.Helper()
	nc := connect(t, url, opts...)
	ch := make(chan *nats.Msg, 100000)
	deliver := "$KQ.DLV." + group + "." + nats.NewInbox()[len("_INBOX."):]
	_, err := nc.ChanSubscribe(deliver, ch)
	require.NoError(t, err)
	var r struct {
		Consumer string `json:"consumer"`
		apiErr
	}
	msg, err := nc.Request("$KQ.API.BIND."+group, []byte(`{"deliver":"`+deliver+`","bindings":[`+bindings+`]`+extra+`}`), 5*time.Second)
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal(msg.Data, &r))
	require.Nil(t, r.Error, string(msg.Data))
	require.NotEmpty(t, r.Consumer)
	return nc, ch
}

func recv(t *testing.T, ch chan *nats.Msg) *nats.Msg {
	t.Helper()
	select {
	case m := <-ch:
		return m
	case <-time.After(5 * time.Second):
		t.Fatal("no delivery within 5s")
		return nil
	}
}

func requireNone(t *testing.T, ch chan *nats.Msg, d time.Duration) {
	t.Helper()
	select {
	case m := <-ch:
		t.Fatalf("unexpected delivery %s %v", m.Subject, m.Header)
	case <-time.After(d):
	}
}

func TestE2EJetStreamPublishAndConsume(t *testing.T) {
	url := startBroker(t, nil)
	_, ch := consume(t, url, "s-trade", `{"topic":"trade","messageType":"pay-succ","bindType":"direct","persistent":true}`, "")
	nc := connect(t, url)
	js, err := jetstream.New(nc)
	require.NoError(t, err)
	ack, err := js.Publish(context.Background(), "kq.trade.pay-succ", []byte("hello"))
	require.NoError(t, err)
	require.Equal(t, "trade", ack.Stream)
	require.NotZero(t, ack.Sequence)

	m := recv(t, ch)
	require.Equal(t, "hello", string(m.Data))
	require.Equal(t, "trade", m.Header.Get("Kq-Topic"))
	require.Equal(t, "1", m.Header.Get("Kq-Deliver-Count"))
	require.NoError(t, m.AckSync())

	// Dedup: the same Nats-Msg-Id twice is stored once.
	a1, err := js.Publish(context.Background(), "kq.trade.pay-succ", []byte("x"), jetstream.WithMsgID("order-1"))
	require.NoError(t, err)
	a2, err := js.Publish(context.Background(), "kq.trade.pay-succ", []byte("x"), jetstream.WithMsgID("order-1"))
	require.NoError(t, err)
	require.False(t, a1.Duplicate)
	require.True(t, a2.Duplicate)
	require.Equal(t, a1.Sequence, a2.Sequence)
	require.NoError(t, recv(t, ch).Ack())
	requireNone(t, ch, 200*time.Millisecond)

	// An expectation we do not check fails loudly.
	_, err = js.Publish(context.Background(), "kq.trade.pay-succ", []byte("x"), jetstream.WithExpectLastSequence(5))
	require.Error(t, err)
	// Async publish works too.
	f, err := js.PublishAsync("kq.trade.pay-succ", []byte("async"))
	require.NoError(t, err)
	select {
	case pa := <-f.Ok():
		require.Equal(t, "trade", pa.Stream)
	case err := <-f.Err():
		t.Fatal(err)
	}
	require.NoError(t, recv(t, ch).Ack())
}

func TestE2EPublishRefusals(t *testing.T) {
	url := startBroker(t, func(c *config.Config) { c.Topics = []string{"trade"}; c.MaxPayload = 64 << 10 })
	nc := connect(t, url)
	try := func(subject string, hdr nats.Header, body []byte) int {
		t.Helper()
		msg, err := nc.RequestMsg(&nats.Msg{Subject: subject, Header: hdr, Data: body}, 5*time.Second)
		require.NoError(t, err)
		var r apiErr
		require.NoError(t, json.Unmarshal(msg.Data, &r), string(msg.Data))
		if r.Error == nil {
			return 0
		}
		return r.Error.Code
	}
	require.Equal(t, 0, try("kq.trade.pay", nil, []byte("ok")))
	require.Equal(t, 400, try("kq.trade.pay%2e", nil, nil), "lower-case hex is not canonical")
	require.Equal(t, 404, try("kq.user.pay", nil, nil), "topic not served")
	require.Equal(t, 400, try("kq.trade.pay", nats.Header{"Kq-Unknown": {"1"}}, nil))
	require.Equal(t, 400, try("kq.trade.pay", nats.Header{"Kq-Deliver-Limit": {"101"}}, nil))
	require.Equal(t, 400, try("kq.trade.pay", nats.Header{"Kq-Expires": {"1"}}, nil), "already past")
	require.Equal(t, 400, try("kq.trade.pay", nats.Header{"Kq-Msg-Id": {"xyz"}}, nil))
	require.Equal(t, 400, try("kq.trade.pay", nats.Header{"Kq-Fly": {"true"}, "Kq-Tx": {"prepare"}, "Kq-Msg-Id": {strings.Repeat("a", 32)}, "Kq-Group": {"p"}}, nil))
	require.Equal(t, 400, try("kq.trade.pay", nats.Header{"Kq-Tx": {"prepare"}, "Kq-Group": {"p"}}, nil), "a prepare needs its id")
	require.Equal(t, 400, try("kq.trade.pay", nats.Header{"Kq-Tx": {"prepare"}, "Kq-Msg-Id": {strings.Repeat("a", 32)}}, nil), "and its group")
	require.Equal(t, 400, try("kq.trade.pay", nats.Header{"Kq-Tx": {"commit"}, "Kq-Msg-Id": {strings.Repeat("a", 32)}, "Kq-Group": {"p"}}, nil))
	require.Equal(t, 0, try("kq.trade.pay", nats.Header{"Kq-Tx": {"prepare"}, "Kq-Msg-Id": {strings.Repeat("a", 32)}, "Kq-Group": {"p"}}, nil))
	require.Equal(t, 0, try("kq.trade.pay", nats.Header{"Nats-TTL": {"30m"}}, nil))
	require.Equal(t, 0, try("kq.trade.pay", nil, make([]byte, 64<<10)), "a body of exactly max_payload is taken")
	require.Equal(t, 0, try("kq.trade.pay", nats.Header{"Kq-Expires": {strconv.FormatInt(math.MaxInt64, 10)}}, nil),
		"a far expiry is clamped to 7 days, not wrapped into the past")
	// The server refuses what is over max_payload before the broker sees it.
	err := nc.Publish("kq.trade.pay", make([]byte, 65<<10))
	require.Error(t, err)
}

// TestE2EDoneWhen is issue #2's acceptance scenario: 10,000 messages, two
// groups (direct and regx) on one topic, several messageTypes, one consumer
// per group acking every message and NAKing every tenth once; every NAKed
// message comes back, each group gets exactly what its binding matches, and
// STAT shows nothing pending at the end.
func TestE2EDoneWhen(t *testing.T) {
	// Ack timeouts are not what this test is about: on a loaded machine (the
	// race detector, other packages' tests) a consumer holding 1,000
	// deliveries can take longer than the default 5 s to ack the last one,
	// which then comes again.
	url := startBroker(t, func(c *config.Config) { c.AckWait = time.Minute })
	const n = 10000
	types := []string{"pay-succ", "pay-fail", "refund"}
	_, chA := consume(t, url, "s-direct", `{"topic":"trade","messageType":"pay-succ","bindType":"direct","persistent":true}`, "")
	_, chB := consume(t, url, "s-regx", `{"topic":"trade","messageType":"^pay-","bindType":"regx","persistent":true}`, "")
	nc := connect(t, url)
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(512))
	require.NoError(t, err)
	want := map[string]map[string]bool{"s-direct": {}, "s-regx": {}}
	for i := 0; i < n; i++ {
		mt := types[i%len(types)]
		id := fmt.Sprintf("%032x", i+1)
		// A loaded machine (the race detector, parallel packages) can hold
		// 512 acks for more than the default 200 ms stall wait.
		_, err := js.PublishMsgAsync(&nats.Msg{Subject: "kq.trade." + mt, Header: nats.Header{"Kq-Msg-Id": {id}}, Data: []byte(mt)},
			jetstream.WithStallWait(10*time.Second))
		require.NoError(t, err)
		if mt == "pay-succ" {
			want["s-direct"][id] = true
		}
		if strings.HasPrefix(mt, "pay-") {
			want["s-regx"][id] = true
		}
	}
	select {
	case <-js.PublishAsyncComplete():
	case <-time.After(30 * time.Second):
		t.Fatal("publish acks did not complete")
	}

	var wg sync.WaitGroup
	got := map[string]map[string]int{"s-direct": {}, "s-regx": {}}
	naked := map[string]map[string]bool{"s-direct": {}, "s-regx": {}}
	for g, ch := range map[string]chan *nats.Msg{"s-direct": chA, "s-regx": chB} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			acked := map[string]bool{}
			for len(acked) < len(want[g]) {
				var m *nats.Msg
				select {
				case m = <-ch:
				case <-time.After(10 * time.Second):
					t.Errorf("%s: stalled at %d of %d", g, len(acked), len(want[g]))
					return
				}
				id := m.Header.Get("Kq-Msg-Id")
				got[g][id]++
				if !want[g][id] {
					t.Errorf("%s got %s (%s) that its binding does not match", g, id, m.Subject)
				}
				if i := len(got[g]); i%10 == 0 && !naked[g][id] {
					naked[g][id] = true
					_ = m.Nak()
					continue
				}
				_ = m.Ack()
				acked[id] = true
			}
		}()
	}
	wg.Wait()
	for g := range want {
		require.Len(t, got[g], len(want[g]), g)
		for id := range naked[g] {
			require.Equal(t, 2, got[g][id], "%s: NAKed %s must come back once", g, id)
		}
	}
	require.Eventually(t, func() bool {
		var st struct {
			Groups []struct{ Pending, Inflight int64 }
		}
		request(t, nc, "$KQ.API.STAT", nil, &st)
		for _, g := range st.Groups {
			if g.Pending != 0 || g.Inflight != 0 {
				return false
			}
		}
		return true
	}, 5*time.Second, 50*time.Millisecond, "STAT shows nothing pending")
}

func TestE2EConsumerKilledMidDelivery(t *testing.T) {
	url := startBroker(t, nil)
	bind := `{"topic":"trade","messageType":"pay","bindType":"direct","persistent":true}`
	victim, chV := consume(t, url, "s-trade", bind, `,"maxInflight":1`)
	nc := connect(t, url)
	_, err := nc.Request("kq.trade.pay", []byte("x"), 5*time.Second)
	require.NoError(t, err)
	first := recv(t, chV)
	_, chS := consume(t, url, "s-trade", "", "")
	victim.Close() // dies without acking
	m := recv(t, chS)
	require.Equal(t, first.Header.Get("Kq-Msg-Id"), m.Header.Get("Kq-Msg-Id"))
	require.Equal(t, "2", m.Header.Get("Kq-Deliver-Count"))
	require.NoError(t, m.AckSync())
}

// TestE2EAckThenCloseCounts is issue #13's item 4: a consumer that acks
// and closes its connection at once (the README's nats.go snippet) gets its
// ack counted, though the ack and the disconnect notice reach the broker by
// different paths. In each of three rounds (a group and messageType of its
// own), 200 consumers on their own connections, each holding one delivery,
// ack it and close together; none of those messages is delivered again: not
// to the group's remaining member, not in STAT.
func TestE2EAckThenCloseCounts(t *testing.T) {
	const rounds, n = 3, 200
	url := startBroker(t, nil)
	nc := connect(t, url)
	var survivors []chan *nats.Msg
	for r := range rounds {
		group, mt := "s-trade-"+strconv.Itoa(r), "pay-"+strconv.Itoa(r)
		bind := `{"topic":"trade","messageType":"` + mt + `","bindType":"direct","persistent":true}`
		conns := make([]*nats.Conn, n)
		chs := make([]chan *nats.Msg, n)
		for i := range n {
			conns[i], chs[i] = consume(t, url, group, bind, `,"maxInflight":1`)
		}
		for i := range n {
			_, err := nc.Request("kq.trade."+mt, []byte(strconv.Itoa(i)), 5*time.Second)
			require.NoError(t, err)
		}
		ms := make([]*nats.Msg, n)
		for i := range n {
			ms[i] = recv(t, chs[i]) // maxInflight 1: one delivery each
		}
		_, survivor := consume(t, url, group, "", "")
		survivors = append(survivors, survivor)

		var wg sync.WaitGroup
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if err := ms[i].Ack(); err != nil {
					t.Errorf("ack %d: %v", i, err)
				}
				conns[i].Close()
			}()
		}
		wg.Wait()
	}

	var st struct {
		Consumers   []any
		Redelivered int64
		Acked       int64
		Groups      []struct{ Pending, Inflight int64 }
	}
	require.Eventually(t, func() bool {
		request(t, nc, "$KQ.API.STAT", nil, &st)
		return len(st.Consumers) == rounds
	}, 10*time.Second, 20*time.Millisecond, "the broker saw every close")
	// A failed delivery goes at once to the survivor, or after the 1 s pause
	// of a refused send: watch longer than that.
	again := func() (n int) {
		for _, ch := range survivors {
			n += len(ch)
		}
		return n
	}
	require.Never(t, func() bool { return again() > 0 }, 1500*time.Millisecond, 20*time.Millisecond,
		"acked before the close, delivered again")
	require.Eventually(t, func() bool {
		request(t, nc, "$KQ.API.STAT", nil, &st)
		for _, g := range st.Groups {
			if g.Pending != 0 || g.Inflight != 0 {
				return false
			}
		}
		return len(st.Groups) == rounds
	}, 5*time.Second, 20*time.Millisecond, "every message acked and deleted")
	require.Zero(t, st.Redelivered)
	require.Equal(t, int64(rounds*n), st.Acked)
}

func TestE2EPersistentCollectsNonPersistentDrops(t *testing.T) {
	url := startBroker(t, nil)
	ncK, _ := consume(t, url, "s-keep", `{"topic":"trade","messageType":"pay","persistent":true}`, "")
	ncD, _ := consume(t, url, "s-drop", `{"topic":"trade","messageType":"pay","persistent":false}`, "")
	ncK.Close()
	ncD.Close()
	nc := connect(t, url)
	require.Eventually(t, func() bool {
		var st struct{ Consumers []any }
		request(t, nc, "$KQ.API.STAT", nil, &st)
		return len(st.Consumers) == 0
	}, 5*time.Second, 20*time.Millisecond)
	_, err := nc.Request("kq.trade.pay", []byte("x"), 5*time.Second)
	require.NoError(t, err)
	_, chK := consume(t, url, "s-keep", "", "")
	_, chD := consume(t, url, "s-drop", "", "")
	require.NoError(t, recv(t, chK).Ack())
	requireNone(t, chD, 300*time.Millisecond)
}

func TestE2EDeliverLimitDeadLetters(t *testing.T) {
	url := startBroker(t, nil)
	_, ch := consume(t, url, "s-trade", `{"topic":"trade","messageType":"pay","persistent":true}`, "")
	nc := connect(t, url)
	_, err := nc.RequestMsg(&nats.Msg{Subject: "kq.trade.pay", Header: nats.Header{"Kq-Deliver-Limit": {"3"}}, Data: []byte("x")}, 5*time.Second)
	require.NoError(t, err)
	for i := 0; i < 3; i++ {
		require.NoError(t, recv(t, ch).Nak())
	}
	requireNone(t, ch, 200*time.Millisecond)
	var p struct {
		Total int
		Items []struct{ ID, Reason string }
	}
	require.Eventually(t, func() bool {
		request(t, nc, "$KQ.API.DLQ.LIST", map[string]string{"topic": "trade", "groupId": "s-trade"}, &p)
		return p.Total == 1
	}, 5*time.Second, 20*time.Millisecond)
	require.Equal(t, "deliver limit reached", p.Items[0].Reason)
}

func TestE2ESecretsMode(t *testing.T) {
	url := startBroker(t, func(c *config.Config) {
		c.Secrets = map[string]string{"s-trade": "s3cret", "p-trade": "p4ss"}
		c.AdminSecret = "root"
	})
	_, err := nats.Connect(url, nats.UserInfo("s-trade", "wrong"))
	require.Error(t, err)
	_, err = nats.Connect(url, nats.UserInfo("nobody", ""))
	require.Error(t, err)

	cons := connect(t, url, nats.UserInfo("s-trade", "s3cret"), nats.CustomInboxPrefix("_INBOX_s-trade"))
	ch := make(chan *nats.Msg, 10)
	_, err = cons.ChanSubscribe("$KQ.DLV.s-trade.a", ch)
	require.NoError(t, err)
	var r struct{ Consumer string }
	request(t, cons, "$KQ.API.BIND.s-trade", map[string]any{"deliver": "$KQ.DLV.s-trade.a",
		"bindings": []map[string]any{{"topic": "trade", "messageType": "pay", "persistent": true}}}, &r)
	require.NotEmpty(t, r.Consumer)

	prod := connect(t, url, nats.UserInfo("p-trade", "p4ss"), nats.CustomInboxPrefix("_INBOX_p-trade"))
	_, err = prod.Request("kq.trade.pay", []byte("x"), 5*time.Second)
	require.NoError(t, err)
	require.NoError(t, recv(t, ch).AckSync(), "acks and replies are allowed")

	// A group cannot bind as another group, nor read its deliveries.
	errs := make(chan error, 1)
	spy := connect(t, url, nats.UserInfo("p-trade", "p4ss"), nats.CustomInboxPrefix("_INBOX_p-trade"), nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) { errs <- err }))
	_, err = spy.Request("$KQ.API.BIND.s-trade", []byte(`{}`), 300*time.Millisecond)
	require.Error(t, err)
	_, err = spy.SubscribeSync("$KQ.DLV.s-trade.a")
	require.NoError(t, err)
	require.NoError(t, spy.Flush())
	select {
	case err := <-errs:
		require.ErrorContains(t, err, "Permissions Violation")
	case <-time.After(2 * time.Second):
		t.Fatal("no permissions violation")
	}
	admin := connect(t, url, nats.UserInfo("admin", "root"), nats.CustomInboxPrefix("_INBOX_admin"))
	var st struct{ Consumers []any }
	request(t, admin, "$KQ.ADMIN.STAT", nil, &st)
	require.Len(t, st.Consumers, 1)
	request(t, admin, "$KQ.API.STAT", nil, &st)
	require.Len(t, st.Consumers, 1, "the legacy subject still serves the admin")
}

// TestHealthSeesBrokerConnections: /healthz's source is healthy while the
// broker's own connections serve, and says which one broke otherwise.
func TestHealthSeesBrokerConnections(t *testing.T) {
	d := startTestDaemon(t, nil)
	src := adminSource{d}
	require.NoError(t, src.Health())
	require.NoError(t, d.out.Close())
	err := src.Health()
	require.Error(t, err)
	require.Contains(t, err.Error(), "outbound")
}

// failedStore is a store that reports a failure until a restart.
type failedStore struct{ store.Store }

func (failedStore) Failed() error { return errors.New("journal append: no space left on device") }

// TestHealthSeesFailedStore: a store that refuses writes until a restart
// makes /healthz's source unhealthy, saying so.
func TestHealthSeesFailedStore(t *testing.T) {
	d := startTestDaemon(t, nil)
	src := adminSource{d}
	require.NoError(t, src.Health())
	st := d.st
	d.st = failedStore{st}
	defer func() { d.st = st }()
	err := src.Health()
	require.ErrorContains(t, err, "restart the broker")
	require.ErrorContains(t, err, "no space left")
}
