//go:build integration

package integration

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestIntegrationCrashBroker kills the broker with SIGKILL in the middle of
// an acknowledged publish load, restarts it on the same store and drains
// the group: every publish whose ack came back must be delivered at least
// once (zero loss), on every durable store. A slow consumer holds part of
// the load when the broker dies, so leased deliveries are covered too.
func TestIntegrationCrashBroker(t *testing.T) {
	for _, sm := range storeModes {
		t.Run(sm.name, func(t *testing.T) { testCrashBroker(t, sm.uri(t)) })
	}
}

func testCrashBroker(t *testing.T, uri string) {
	b := NewBroker(t, uri)
	b.Start()
	const group = "s-crash"
	bind := []binding{{Topic: "crash", MessageType: "pay", BindType: "direct", Persistent: true}}
	// ackWait 1 s: the lease of its deliveries (ack wait + 2 s margin)
	// ends soon after the restart.
	const ackWait = time.Second
	slow := startConsumer(t, b.URL(), consumerConfig{Group: group, Bindings: bind, MaxInflight: 64, AckWait: ackWait, Handle: ackConfirmed(5 * time.Millisecond)})

	pubs := newPubLog()
	stop := startLoad(t, b.URL(), loadConfig{
		Subject: "kq.crash.pay", Publishers: 4, Window: 16, Timeout: 5 * time.Second, Max: 300_000, Body: body(128),
	}, pubs)
	defer stop()
	waitFor(t, 10*time.Second, func() bool { return pubs.ackedCount() > 0 }, "a first publish ack")
	<-time.After(1500 * time.Millisecond) // the load runs for 1.5 s
	b.Kill()
	killedAt := time.Now()
	stop()
	sinceAck := killedAt.Sub(pubs.lastAckAt())
	require.Less(t, sinceAck, 500*time.Millisecond, "the kill must land mid-load: the last publish ack came %v before it", sinceAck)
	slow.Close()
	attempted, acked := pubs.snapshot()
	preDeliveries := slow.Deliveries()
	confirmed := slow.Confirmed()
	require.NotEmpty(t, acked)

	b.Start()
	restartTook := time.Since(killedAt)
	drain := startConsumer(t, b.URL(), consumerConfig{Group: group, Bindings: bind})
	// At least the lease of the slow consumer's deliveries plus a margin.
	waited := drain.Drain(3*time.Second, ackWait+2*time.Second+time.Second, 90*time.Second)

	missing, unique, total, dups, phantom := lossReport(attempted, acked, slow, drain)
	var redeliveredAfterAck []string
	for id := range drain.Seen() {
		if confirmed[id] {
			redeliveredAfterAck = append(redeliveredAfterAck, id)
		}
	}
	t.Logf("%s: publishes attempted %d, acked %d, errors %v; deliveries before the kill %d (%d acks confirmed), after the restart %d; "+
		"delivered %d unique ids in %d deliveries: %d duplicates; %d stored without an ack; last publish ack %v before the kill; restart %v, drain %v",
		uri, len(attempted), len(acked), pubs.errorKinds(), preDeliveries, len(confirmed), drain.Deliveries(),
		unique, total, dups, unique-countIn(acked, slow, drain), sinceAck.Round(time.Microsecond), restartTook.Round(time.Millisecond), waited.Round(time.Millisecond))
	require.Empty(t, missing, "LOSS: %d of %d acknowledged publishes never delivered after kill -9: %s",
		len(missing), len(acked), sample(missing, 10))
	require.Zero(t, phantom, "deliveries of ids never published")
	require.Zero(t, pubs.dupAcks, "duplicate acks for ids sent once")
	require.Empty(t, redeliveredAfterAck, "%d messages whose ack was confirmed durable came back after the crash: %s",
		len(redeliveredAfterAck), sample(redeliveredAfterAck, 10))
	code, _ := b.Stop(15 * time.Second)
	require.Zero(t, code, "exit code after SIGTERM")
}

// countIn counts the ids of set some consumer got.
func countIn(set map[string]bool, cs ...*Consumer) int {
	got := map[string]bool{}
	for _, c := range cs {
		for id := range c.Seen() {
			if set[id] {
				got[id] = true
			}
		}
	}
	return len(got)
}

// TestIntegrationCrashConsumer resets the TCP connection of a consumer that
// holds unacknowledged deliveries, in the middle of a publish load: another
// consumer of the group must get everything, the victim's deliveries at once
// (its ack wait is a minute, far longer than the test waits).
func TestIntegrationCrashConsumer(t *testing.T) {
	for _, sm := range storeModes {
		t.Run(sm.name, func(t *testing.T) { testCrashConsumer(t, sm.uri(t)) })
	}
}

func testCrashConsumer(t *testing.T, uri string) {
	b := NewBroker(t, uri)
	b.Start()
	const group = "s-victim"
	bind := []binding{{Topic: "victim", MessageType: "pay", BindType: "direct", Persistent: true}}
	victim := startConsumer(t, b.URL(), consumerConfig{Group: group, Bindings: bind, MaxInflight: 256, AckWait: time.Minute, Handle: hold, Abrupt: true})
	survivor := startConsumer(t, b.URL(), consumerConfig{Group: group, Bindings: bind})

	pubs := newPubLog()
	stop := startLoad(t, b.URL(), loadConfig{
		Subject: "kq.victim.pay", Publishers: 4, Window: 16, Timeout: 5 * time.Second, Max: 300_000, Body: body(128),
	}, pubs)
	defer stop()
	start := time.Now()
	waitFor(t, 10*time.Second, func() bool { return victim.Deliveries() >= 50 }, "the victim to hold 50 deliveries")
	<-time.After(time.Until(start.Add(750 * time.Millisecond)))
	victim.Kill()
	killedAt := time.Now()
	held := victim.Seen()
	<-time.After(time.Until(start.Add(1500 * time.Millisecond)))
	stop()
	attempted, acked := pubs.snapshot()
	waited := survivor.Drain(3*time.Second, 0, 60*time.Second)
	b.RequireRunning()

	missing, unique, total, dups, phantom := lossReport(attempted, acked, survivor)
	got := survivor.Seen()
	var notRedelivered []string
	var lastHeld time.Time
	survivor.mu.Lock()
	for id := range held {
		switch {
		case got[id] == 0:
			notRedelivered = append(notRedelivered, id)
		case survivor.maxAttempt[id] < 2:
			t.Errorf("%s: held by the victim, redelivered with Kq-Deliver-Count %d", id, survivor.maxAttempt[id])
		}
		if f := survivor.first[id]; f.After(lastHeld) {
			lastHeld = f
		}
	}
	survivor.mu.Unlock()
	t.Logf("%s: publishes attempted %d, acked %d, errors %v; victim held %d when killed; survivor got %d unique ids in %d deliveries (%d duplicates); "+
		"the victim's last held message reached the survivor %v after the kill; drain %v",
		uri, len(attempted), len(acked), pubs.errorKinds(), len(held), unique, total, dups,
		lastHeld.Sub(killedAt).Round(time.Millisecond), waited.Round(time.Millisecond))
	require.NotEmpty(t, acked)
	require.Empty(t, notRedelivered, "%d deliveries held by the killed consumer never reached the survivor: %s", len(notRedelivered), sample(notRedelivered, 10))
	require.Empty(t, missing, "LOSS: %d of %d acknowledged publishes never reached the survivor: %s", len(missing), len(acked), sample(missing, 10))
	require.Zero(t, phantom, "deliveries of ids never published")
	require.Less(t, lastHeld.Sub(killedAt), 10*time.Second, "the victim's deliveries must go to the survivor when its connection dies, not after its ack wait")
	code, _ := b.Stop(15 * time.Second)
	require.Zero(t, code, "exit code after SIGTERM")
}
