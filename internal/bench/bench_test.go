package bench

import (
	"bytes"
	"io"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"
)

// TestPrintResultsRatios: the table has a CPU-per-message and a cores
// column, and each reference row gets the ratios of msgs/s and of CPU per
// message.
func TestPrintResultsRatios(t *testing.T) {
	var out bytes.Buffer
	printResults(&out, []benchResult{
		{Name: "kitenats", Msgs: 1000, Elapsed: time.Second, Size: 512, CPU: 30 * time.Millisecond},
		{Name: "JetStream", Msgs: 2000, Elapsed: 2 * time.Second, Size: 512, CPU: 30 * time.Millisecond},
		{Name: "no cpu", Msgs: 1000, Elapsed: time.Second, Size: 512},
	})
	s := out.String()
	require.Contains(t, s, "CPU/msg")
	require.Regexp(t, `cores\n`, s)
	require.Regexp(t, `30\.0µs +0\.03\n`, s, "kitenats: 30 ms of CPU in 1 s")
	require.Regexp(t, `15\.0µs +0\.01\n`, s, "JetStream: 30 ms of CPU in 2 s")
	require.Regexp(t, `no cpu .* - +-\n`, s)
	require.Contains(t, s, "30.0µs")
	require.Contains(t, s, "15.0µs")
	require.Contains(t, s, "ratio kitenats / JetStream: 1.000 (CPU per message: 2.00×)\n")
	require.Contains(t, s, "ratio kitenats / no cpu: 1.000\n", "no CPU figure, no CPU ratio")
}

func TestProcessCPUAdvances(t *testing.T) {
	before := processCPU()
	deadline := time.Now().Add(50 * time.Millisecond)
	for x := 0; time.Now().Before(deadline); x++ {
		_ = x * x
	}
	require.Greater(t, processCPU(), before, "CPU time grows while the process computes")
}

// TestBenchBrokerMsgIDs runs the NATS workload against the broker, with
// and without a Nats-Msg-Id on every publish: every publish is acked and
// every message delivered once to each group.
func TestBenchBrokerMsgIDs(t *testing.T) {
	for _, ids := range []bool{false, true} {
		c := benchConfig{Msgs: 300, Size: 64, Pubs: 1, Consumers: 2, Groups: 2, Pending: 32,
			DB: "memory://", MsgIDs: ids, Timeout: time.Minute, Out: io.Discard}
		r, err := benchBroker(c)
		require.NoError(t, err, "msgid %v", ids)
		require.Equal(t, c.Msgs*c.Groups, r.Msgs, "msgid %v: every group got every message", ids)
		require.Len(t, r.AckLat, c.Msgs, "msgid %v: one store ack per publish", ids)
		require.Positive(t, r.CPU)
	}
}

// TestBenchReferences: --compare measures JetStream's memory store only
// beside the broker's memory store, and every reference delivers the whole
// workload once per group (a real embedded JetStream, each storage).
func TestBenchReferences(t *testing.T) {
	require.Len(t, references("memory://"), 3)
	require.Len(t, references("rocksdb://./data"), 2)
	for _, storage := range []jetstream.StorageType{jetstream.FileStorage, jetstream.MemoryStorage} {
		c := benchConfig{Msgs: 300, Size: 64, Pubs: 1, Consumers: 2, Groups: 2, Pending: 32,
			DB: "memory://", Timeout: time.Minute, Out: io.Discard}
		r, err := benchJetStream(c, storage)
		require.NoError(t, err, storage)
		require.Equal(t, c.Msgs*c.Groups, r.Msgs, "%s: every group got every message", storage)
		require.Len(t, r.AckLat, c.Msgs, "%s: one ack per publish", storage)
		require.Contains(t, r.Name, map[jetstream.StorageType]string{jetstream.FileStorage: "file", jetstream.MemoryStorage: "memory"}[storage])
	}
}
