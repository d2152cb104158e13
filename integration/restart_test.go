//go:build integration

package integration

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/require"
)

// TestIntegrationRestartKeepsBindings binds a group, stops the broker with
// SIGTERM (a clean exit 0), restarts it and publishes while the group has
// no consumer: the group still collects the messages, and a consumer that
// binds with an empty binding list gets them, because bindings live in the
// store when there is no registry.
func TestIntegrationRestartKeepsBindings(t *testing.T) {
	for _, sm := range storeModes {
		t.Run(sm.name, func(t *testing.T) { testRestartKeepsBindings(t, sm.uri(t)) })
	}
}

func testRestartKeepsBindings(t *testing.T, uri string) {
	b := NewBroker(t, uri)
	b.Start()
	const group = "s-keep"
	c := startConsumer(t, b.URL(), consumerConfig{Group: group, Bindings: []binding{{Topic: "keep", MessageType: "evt", BindType: "direct", Persistent: true}}})
	c.Close()
	waitFor(t, 5*time.Second, func() bool { return len(mustStat(t, b.URL()).Consumers) == 0 }, "the consumer to leave")
	code, took := b.Stop(10 * time.Second)
	require.Zero(t, code, "exit code after SIGTERM")
	t.Logf("%s: graceful stop took %v", uri, took.Round(time.Millisecond))

	b.Start()
	nc, err := nats.Connect(b.URL(), nats.NoReconnect())
	require.NoError(t, err)
	defer nc.Close()
	const n = 20
	want := map[string]bool{}
	for i := range n {
		id := newID()
		msg, err := nc.RequestMsg(&nats.Msg{Subject: "kq.keep.evt", Header: nats.Header{"Kq-Msg-Id": {id}}, Data: fmt.Appendf(nil, "m%d", i)}, 5*time.Second)
		require.NoError(t, err)
		var ack pubAck
		require.NoError(t, json.Unmarshal(msg.Data, &ack), string(msg.Data))
		require.Nil(t, ack.Error, string(msg.Data))
		want[id] = true
	}
	s := mustStat(t, b.URL())
	pending, _ := s.group("keep", group)
	require.EqualValues(t, n, pending, "STAT pending of (keep, %s) after the restart: the stored bindings must collect", group)

	c2 := startConsumer(t, b.URL(), consumerConfig{Group: group}) // "bindings":[]
	waitFor(t, 10*time.Second, func() bool { return len(c2.Seen()) >= n }, "%d deliveries to the re-bound group", n)
	for id := range c2.Seen() {
		require.True(t, want[id], "unexpected delivery %s", id)
	}
	code, _ = b.Stop(10 * time.Second)
	require.Zero(t, code, "exit code after SIGTERM")
}

// TestIntegrationGracefulShutdown sends SIGTERM while publishes are being
// acknowledged and deliveries are in flight (the consumer acks half of
// them slowly and holds the rest): the broker must exit 0 within its drain
// timeout plus a margin, and after a restart every acknowledged publish
// that the consumer had not acknowledged is delivered, while nothing whose
// ack was confirmed comes back.
func TestIntegrationGracefulShutdown(t *testing.T) {
	for _, sm := range storeModes {
		t.Run(sm.name, func(t *testing.T) { testGracefulShutdown(t, sm.uri(t)) })
	}
}

func testGracefulShutdown(t *testing.T, uri string) {
	b := NewBroker(t, uri)
	b.Start()
	const group = "s-grace"
	bind := []binding{{Topic: "grace", MessageType: "pay", BindType: "direct", Persistent: true}}
	const ackWait = 2 * time.Second
	ackSlowly := ackConfirmed(10 * time.Millisecond)
	c1 := startConsumer(t, b.URL(), consumerConfig{Group: group, Bindings: bind, MaxInflight: 64, AckWait: ackWait,
		Handle: func(c *Consumer, m *nats.Msg) {
			id := m.Header.Get("Kq-Msg-Id")
			if id[len(id)-1]%2 == 0 { // about half of the ids: acknowledged after 10 ms
				ackSlowly(c, m)
				return
			}
			hold(c, m)
		}})

	pubs := newPubLog()
	stop := startLoad(t, b.URL(), loadConfig{
		Subject: "kq.grace.pay", Publishers: 4, Window: 8, Timeout: 10 * time.Second, Max: 300_000, Body: body(128),
	}, pubs)
	defer stop()
	waitFor(t, 10*time.Second, func() bool { return c1.Deliveries() >= 64 }, "64 deliveries")
	<-time.After(time.Second) // load and deliveries keep going for a second
	s := mustStat(t, b.URL())
	_, inflight := s.group("grace", group)
	require.Positive(t, inflight, "deliveries in flight before SIGTERM")
	code, took := b.Stop(15 * time.Second)
	stop()
	c1.Close()
	attempted, acked := pubs.snapshot()
	confirmed, ackSent := c1.Confirmed(), c1.AckSent()
	require.Zero(t, code, "exit code after SIGTERM with deliveries in flight")
	require.Less(t, took, 10*time.Second, "SIGTERM to exit (the drain timeout is 5 s)")

	b.Start()
	c2 := startConsumer(t, b.URL(), consumerConfig{Group: group})
	// At least the lease of c1's last deliveries (ack wait + 2 s margin).
	waited := c2.Drain(3*time.Second, ackWait+3*time.Second, 90*time.Second)

	got2 := c2.Seen()
	var lost, back []string
	for id := range acked {
		if got2[id] == 0 && !ackSent[id] {
			lost = append(lost, id)
		}
	}
	for id := range got2 {
		if confirmed[id] {
			back = append(back, id)
		}
	}
	_, unique, total, dups, phantom := lossReport(attempted, acked, c1, c2)
	t.Logf("%s: %d in flight at SIGTERM, exit %d after %v; publishes attempted %d, acked %d, errors %v; consumer acks sent %d, confirmed %d; "+
		"after the restart %d deliveries; overall %d unique ids in %d deliveries (%d duplicates); drain %v",
		uri, inflight, code, took.Round(time.Millisecond), len(attempted), len(acked), pubs.errorKinds(), len(ackSent), len(confirmed),
		c2.Deliveries(), unique, total, dups, waited.Round(time.Millisecond))
	require.Empty(t, lost, "LOSS: %d acknowledged publishes the consumer never acknowledged were not delivered after the restart: %s", len(lost), sample(lost, 10))
	require.Empty(t, back, "%d messages whose ack was confirmed came back after the restart: %s", len(back), sample(back, 10))
	require.Zero(t, phantom, "deliveries of ids never published")
	code, _ = b.Stop(15 * time.Second)
	require.Zero(t, code, "exit code after SIGTERM")
}
