package bench

import (
	"bytes"
	"flag"
	"io"
	"regexp"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

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

// TestResolveStore: without -db, --compare measures the daemon's default
// store (RocksDB, durability async) in a temporary directory that the
// returned func removes, and each broker of the run gets a fresh
// directory in it; an explicit -db (memory:// included) is kept as it is,
// and so is the JetStream memory-store reference beside memory://; without
// --compare the default is memory://.
func TestResolveStore(t *testing.T) {
	c := benchConfig{Compare: true}
	cleanup, err := c.resolveStore(false)
	require.NoError(t, err)
	require.NotEmpty(t, c.tempDir)
	require.Equal(t, "rocksdb://"+c.tempDir, c.DB)
	require.NotContains(t, c.DB, "?", "durability async: the rocksdb default")
	require.DirExists(t, c.tempDir)
	require.Contains(t, c.Store, c.DB)
	require.Contains(t, c.Store, "temporary directory")
	require.Contains(t, c.Store, "async")
	require.Contains(t, c.storeName(), "rocksdb")
	require.Len(t, references(c.DB), 2, "JetStream file store and core NATS")
	a, err := c.storeURI()
	require.NoError(t, err)
	b, err := c.storeURI()
	require.NoError(t, err)
	require.NotEqual(t, a, b, "each broker of the run starts on an empty store")
	require.True(t, strings.HasPrefix(a, "rocksdb://"+c.tempDir+"/"), a)
	cleanup()
	require.NoDirExists(t, c.tempDir)

	for _, compare := range []bool{false, true} {
		c := benchConfig{Compare: compare, DB: "memory://"}
		cleanup, err := c.resolveStore(true)
		require.NoError(t, err)
		cleanup()
		require.Equal(t, "memory://", c.DB)
		require.Equal(t, "memory://", c.Store)
		require.Equal(t, "memory://", c.storeName())
		require.Empty(t, c.tempDir)
		uri, err := c.storeURI()
		require.NoError(t, err)
		require.Equal(t, "memory://", uri)
		require.Len(t, references(c.DB), 3, "with -db memory:// the JetStream memory store too")
	}

	c = benchConfig{}
	cleanup, err = c.resolveStore(false)
	require.NoError(t, err)
	cleanup()
	require.Equal(t, "memory://", c.DB)
	require.Empty(t, c.tempDir)
}

// TestPrintResultsAligns: the table's columns line up whatever the
// length of the target names.
func TestPrintResultsAligns(t *testing.T) {
	var out bytes.Buffer
	printResults(&out, []benchResult{
		{Name: "kitenats rocksdb:///a/very/long/directory/name/that/is/long?durability=sync", Msgs: 1000, Elapsed: time.Second, Size: 512,
			AckLat: []time.Duration{time.Millisecond}, CPU: 30 * time.Millisecond},
		{Name: "core NATS", Msgs: 123456789, Elapsed: time.Second, Size: 512},
	})
	lines := strings.Split(strings.TrimPrefix(out.String(), "\n"), "\n")
	pos := func(line string, col int) int { // rune offset of column col
		f := regexp.MustCompile(`\S+( \S+)*`).FindAllStringIndex(line, -1)
		return utf8.RuneCountInString(line[:f[col][0]])
	}
	for col := 1; col < 10; col++ {
		require.Equal(t, pos(lines[0], col), pos(lines[1], col), "column %d\n%s", col, out.String())
		require.Equal(t, pos(lines[0], col), pos(lines[2], col), "column %d\n%s", col, out.String())
	}
	// scripts/benchpair.sh reads msgs/s and CPU/msg from the end of the
	// kitenats row, counting from its end: awk's $(NF-7) and $(NF-1).
	f := strings.Fields(lines[1])
	require.Equal(t, "1000", f[len(f)-9], "msgs")
	require.Equal(t, "1000", f[len(f)-8], "msgs/s")
	require.Equal(t, "0.5", f[len(f)-7], "MB/s")
	require.Equal(t, "30.0µs", f[len(f)-2], "CPU/msg")
}

// TestProgressPlainOffTerminal: off a terminal (CI logs, pipes) the
// progress is a line at the start and one at the end: no carriage
// returns, no escape sequences.
func TestProgressPlainOffTerminal(t *testing.T) {
	var out bytes.Buffer
	require.False(t, isTerminal(&out))
	p := newProgress(&out, "kitenats memory://", 100, false)
	p.set(50, "sent 60, delivered 50")
	p.finish("sent 100, delivered 100")
	require.Regexp(t, `^kitenats memory://: running\nkitenats memory://: sent 100, delivered 100 in \S+\n$`, out.String())
	require.NotContains(t, out.String(), "\r")
	require.NotContains(t, out.String(), "\x1b")

	out.Reset()
	p = newProgress(&out, "kitenats memory://", 100, true)
	p.set(50, "sent 60, delivered 50")
	p.finish("sent 100, delivered 100")
	require.Contains(t, out.String(), "50%", "a terminal gets the bar")
	require.Contains(t, out.String(), "sent 60, delivered 50")
}

// TestRunHelp: bench -h prints its usage, flags and examples on stdout and
// returns flag.ErrHelp; a bad flag points at -h.
func TestRunHelp(t *testing.T) {
	var out bytes.Buffer
	require.ErrorIs(t, run([]string{"-h"}, &out), flag.ErrHelp)
	require.True(t, strings.HasPrefix(out.String(), "usage: kitenats bench "), out.String())
	require.Contains(t, out.String(), "\nflags:\n  -")
	require.Contains(t, out.String(), "\nexamples:\n  kitenats bench -msgs 100000 --compare")
	out.Reset()
	require.ErrorContains(t, run([]string{"-nope"}, &out), "kitenats bench -h for help")
	require.Empty(t, out.String())
}
