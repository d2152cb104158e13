package bench

import (
	"io"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestBenchKiteQ runs `kitenats bench --protocol kiteq` on a tiny workload,
// so that the KiteQ bench keeps working.
func TestBenchKiteQ(t *testing.T) {
	c := benchConfig{Msgs: 200, Size: kiteqBenchSize, Pubs: 2, Consumers: 2, Groups: 2, Pending: 1,
		DB: "memory://", Timeout: time.Minute, Out: io.Discard}
	r, err := benchKiteQRun(c)
	require.NoError(t, err)
	require.Equal(t, c.Msgs*c.Groups, r.Msgs, "every group got every message")
	require.Len(t, r.AckLat, c.Msgs, "one store ack per publish")
	require.GreaterOrEqual(t, len(r.DeliverLat), c.Msgs*c.Groups)
	require.Positive(t, r.rate())

	// The command line: flag parsing and dispatch, with a duration.
	require.NoError(t, Run([]string{"--protocol", "kiteq", "-duration", "200ms", "-consumers", "1"}))
	require.ErrorContains(t, Run([]string{"--protocol", "kiteq", "-msgs", "10", "-pending", "8"}), "synchronous")
	require.ErrorContains(t, Run([]string{"--protocol", "amqp", "-msgs", "10"}), "want nats or kiteq")
}
