//go:build integration

package integration

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestIntegrationBacklogDeliveredOnce publishes a backlog while the group
// has no consumer, then binds one consumer that acknowledges every delivery
// at once: with no failure at all (no crash, no NAK, no ack timeout) each
// message must be delivered exactly once, as attempt 1 (README: "every
// matching group gets each message once … redelivered on failure").
func TestIntegrationBacklogDeliveredOnce(t *testing.T) {
	for _, sm := range storeModes {
		t.Run(sm.name, func(t *testing.T) { testBacklogDeliveredOnce(t, sm.uri(t)) })
	}
}

func testBacklogDeliveredOnce(t *testing.T, uri string) {
	b := NewBroker(t, uri)
	b.Start()
	const group, n = "s-backlog", 5000
	attempted, acked := publishBacklog(t, b.URL(), group, "backlog", n, 4)

	c := startConsumer(t, b.URL(), consumerConfig{Group: group}) // acks every delivery at once
	c.Drain(2*time.Second, 0, 60*time.Second)
	s := mustStat(t, b.URL())
	missing, unique, total, dups, phantom := lossReport(attempted, acked, c)
	c.mu.Lock()
	var again int
	for _, a := range c.maxAttempt {
		if a > 1 {
			again++
		}
	}
	c.mu.Unlock()
	t.Logf("%s: backlog of %d acked publishes; %d deliveries of %d unique ids: %d duplicates (%d with Kq-Deliver-Count > 1); STAT delivered %d, redelivered %d, acked %d, timeouts %d",
		uri, len(acked), total, unique, dups, again, s.Delivered, s.Redelivered, s.Acked, s.Timeouts)
	require.Empty(t, missing, "LOSS: %s", sample(missing, 10))
	require.Zero(t, phantom)
	require.Zero(t, s.Timeouts, "no delivery should time out: the consumer acks at once")
	require.Zero(t, dups, "a backlog drained by a consumer that acks at once must be delivered once per message, with no failure in between")
}

// publishBacklog binds group to topic's messageType evt (persistently, with
// a consumer that leaves at once), then publishes n acknowledged messages
// on pubs connections while the group has no consumer. It returns the ids
// attempted and acknowledged.
func publishBacklog(t *testing.T, url, group, topic string, n, pubs int) (attempted, acked map[string]bool) {
	t.Helper()
	bind := []binding{{Topic: topic, MessageType: "evt", BindType: "direct", Persistent: true}}
	startConsumer(t, url, consumerConfig{Group: group, Bindings: bind}).Close()
	waitFor(t, 5*time.Second, func() bool { return len(mustStat(t, url).Consumers) == 0 }, "the binding consumer to leave")
	log := newPubLog()
	stop := startLoad(t, url, loadConfig{Subject: "kq." + topic + ".evt", Publishers: pubs, Window: 16, Timeout: 5 * time.Second, Max: n, Body: body(64)}, log)
	waitFor(t, 60*time.Second, func() bool { return log.ackedCount() >= n }, "%d publish acks", n)
	stop()
	return log.snapshot()
}
