//go:build integration

package integration

import (
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestIntegrationMySQLTakeover: two brokers share one MySQL store. Broker
// a takes acknowledged publishes for a group that has no consumer yet and
// is killed with SIGKILL; broker b does not deliver a's messages (they are
// a's) until `kitenats adopt` moves them to b, which then delivers every
// acknowledged one to its consumer, while it runs.
func TestIntegrationMySQLTakeover(t *testing.T) {
	uri := mysqlStore(t)
	a := NewBroker(t, uri+"&broker=broker-a")
	a.Start()
	const group, n = "s-takeover", 500
	attempted, acked := publishBacklog(t, a.URL(), group, "takeover", n, 2)
	a.Kill()
	bind := []binding{{Topic: "takeover", MessageType: "evt", BindType: "direct", Persistent: true}}

	b := NewBroker(t, uri+"&broker=broker-b")
	b.Start()
	c := startConsumer(t, b.URL(), consumerConfig{Group: group, Bindings: bind})
	time.Sleep(500 * time.Millisecond) // several recover ticks
	require.Zero(t, c.Deliveries(), "b delivers none of a's messages before it adopts them")

	out, err := exec.Command(binPath, "adopt", "-db", uri+"&broker=broker-b", "-from", "broker-a").CombinedOutput()
	require.NoError(t, err, "%s", out)
	t.Logf("kitenats adopt: %s", out)
	require.Contains(t, string(out), "rows moved", "progress is shown")
	require.Regexp(t, `\n\d+ messages of "broker-a" now belong to "broker-b"`, string(out))

	c.Drain(2*time.Second, 0, 60*time.Second)
	missing, unique, total, dups, phantom := lossReport(attempted, acked, c)
	t.Logf("%d acked publishes on broker-a; after the takeover broker-b delivered %d of %d unique ids (%d duplicates)", len(acked), total, unique, dups)
	require.Empty(t, missing, "LOSS: %s", sample(missing, 10))
	require.Zero(t, phantom)

	again, err := exec.Command(binPath, "adopt", "-db", uri+"&broker=broker-b", "-from", "broker-a").CombinedOutput()
	require.NoError(t, err, "%s", again)
	require.True(t, strings.Contains(string(again), `0 messages of "broker-a"`), "nothing left to move: %s", again)
}
