package rocksdb

import (
	"bufio"
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"os/exec"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kitenats/kitenats/store"
)

// The child process of TestStoreRocksDBKill9 reads its directory and mode
// from these variables.
const (
	crashEnvDir   = "KITENATS_ROCKSDB_CRASH_DIR"
	crashEnvMode  = "KITENATS_ROCKSDB_CRASH_MODE"
	crashEnvStart = "KITENATS_ROCKSDB_CRASH_START" // the first batch to write
)

// crashChildLimit bounds the child in case its parent died: it stops by
// itself after this long.
const crashChildLimit = 30 * time.Second

// TestStoreRocksDBCrashChild is the child process of TestStoreRocksDBKill9:
// it opens the store (replaying what an earlier child left), writes the
// batches of writer 0 from batch KITENATS_ROCKSDB_CRASH_START on until it is
// killed, and prints "acked k" once batch k's Write returned. In Async mode the WAL is never
// synced (the interval is an hour): only the OS holds it.
func TestStoreRocksDBCrashChild(t *testing.T) {
	dir := os.Getenv(crashEnvDir)
	if dir == "" {
		t.Skip("the child of TestStoreRocksDBKill9")
	}
	var d Durability
	require.NoError(t, d.UnmarshalText([]byte(os.Getenv(crashEnvMode))))
	start := 0
	if v := os.Getenv(crashEnvStart); v != "" {
		var err error
		start, err = strconv.Atoi(v)
		require.NoError(t, err)
	}
	fmt.Println("opening") //nolint:forbidigo // the protocol with the parent process
	// Small journal segments: the child rotates (moves records to RocksDB,
	// flushes it, deletes segments) many times before it is killed.
	s, err := Open(Config{Dir: dir, Durability: d, SyncInterval: time.Hour, JournalSegmentSize: 16 << 10})
	require.NoError(t, err)
	defer func() { require.NoError(t, s.Close()) }()
	stop := time.Now().Add(crashChildLimit)
	for k := start; time.Now().Before(stop); k++ {
		_, err := s.Write(context.Background(), midWriteBatch(0, k))
		require.NoError(t, err)
		fmt.Printf("acked %d\n", k) //nolint:forbidigo // the protocol with the parent process
	}
}

// TestStoreRocksDBKill9 kills a writing process with SIGKILL and checks
// that every acknowledged batch survives, complete, and that no batch is
// partly applied.
func TestStoreRocksDBKill9(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a child process")
	}
	for _, d := range []Durability{Async, Sync} {
		t.Run(d.String(), func(t *testing.T) {
			dir := t.TempDir()
			last := runAndKill(t, dir, d, 0, 100)
			n := requireSurvived(t, dir, d, last)
			t.Logf("%d batches acknowledged, %d found after the kill", last+1, n)
		})
	}
}

// TestStoreRocksDBKill9Repeated kills the writer again and again on the
// same directory, each child replaying what the last one left and going
// on from there; one child is killed 0 to 3 ms after it begins to open the
// store (in its open or its replay, or just after). Every acknowledged
// batch survives every kill.
func TestStoreRocksDBKill9Repeated(t *testing.T) {
	if testing.Short() {
		t.Skip("starts child processes")
	}
	dir := t.TempDir()
	n := 0
	for cycle := range 5 {
		var last int
		if cycle == 3 {
			last = killSoon(t, dir, Async, n, time.Duration(rand.IntN(3000))*time.Microsecond)
		} else {
			last = runAndKill(t, dir, Async, n, n+40)
		}
		found := requireSurvived(t, dir, Async, last)
		require.GreaterOrEqual(t, found, n, "cycle %d: the batches of earlier cycles survived", cycle)
		t.Logf("cycle %d: batches %d..%d acknowledged, %d found", cycle, n, last, found)
		n = found
	}
}

// requireSurvived opens dir and checks that the batches up to last (and
// any the child wrote without reporting) are all there, exactly, with
// nothing partly applied. It returns how many batches it found.
func requireSurvived(t *testing.T, dir string, d Durability, last int) int {
	t.Helper()
	s := openTest(t, dir, d)
	defer func() { require.NoError(t, s.Close()) }()
	checkInvariants(t, s)
	// The child may have written a few more batches than it reported:
	// find how many it wrote (the retried messages of a batch stay
	// stored), then check the exact state they leave.
	n := 0
	for ; ; n++ {
		if _, err := s.Get(context.Background(), "t", midID(0, n, 4)); err != nil {
			require.ErrorIs(t, err, store.ErrNotFound)
			break
		}
	}
	require.Greater(t, n, last, "every acknowledged batch survived")
	requireMidWrites(t, s, 0, n)
	return n
}

// startChild starts the crash child on dir, writing from batch start.
func startChild(t *testing.T, dir string, d Durability, start int) (*exec.Cmd, *bufio.Scanner) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestStoreRocksDBCrashChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), crashEnvDir+"="+dir, crashEnvMode+"="+d.String(), crashEnvStart+"="+strconv.Itoa(start))
	cmd.Stderr = testWriter{t}
	out, err := cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	return cmd, bufio.NewScanner(out)
}

// killSoon starts the child, kills it wait after it says it opens the
// store, whatever it is doing then, and returns the last batch it
// acknowledged (start-1 if none).
func killSoon(t *testing.T, dir string, d Durability, start int, wait time.Duration) int {
	t.Helper()
	cmd, sc := startChild(t, dir, d, start)
	guard := time.AfterFunc(crashChildLimit, func() { _ = cmd.Process.Kill() })
	defer guard.Stop()
	for sc.Scan() && sc.Text() != "opening" {
	}
	last := make(chan int, 1)
	go func() {
		l := start - 1
		for sc.Scan() {
			var k int
			if _, err := fmt.Sscanf(sc.Text(), "acked %d", &k); err == nil {
				l = k
			}
		}
		last <- l
	}()
	time.Sleep(wait)
	require.NoError(t, cmd.Process.Kill())
	_ = cmd.Wait() // closes stdout: the reader ends
	return <-last
}

// runAndKill runs the child on dir from batch start until it acknowledged
// batch atLeast, kills it with SIGKILL and returns the last batch it
// acknowledged.
func runAndKill(t *testing.T, dir string, d Durability, start, atLeast int) int {
	t.Helper()
	cmd, sc := startChild(t, dir, d, start)
	guard := time.AfterFunc(crashChildLimit, func() { _ = cmd.Process.Kill() })
	defer guard.Stop()
	last := start - 1
	for last < atLeast && sc.Scan() {
		var k int
		if _, err := fmt.Sscanf(sc.Text(), "acked %d", &k); err == nil {
			last = k
		}
	}
	require.NoError(t, cmd.Process.Kill())
	_ = cmd.Wait() // "signal: killed"
	require.GreaterOrEqual(t, last, atLeast, "the child acknowledged enough batches")
	return last
}

// BenchmarkRocksDBWrite measures the publish path as the Batcher drives it:
// per iteration, one Write of 256 saves of 512-byte messages with one
// group, then one Write acknowledging all of them (which deletes them). In
// sync mode each Write is one fsync.
func BenchmarkRocksDBWrite(b *testing.B) {
	const batch, size = 256, 512
	for _, d := range []Durability{Async, Sync} {
		b.Run(d.String(), func(b *testing.B) {
			s, err := Open(Config{Dir: b.TempDir(), Durability: d, Logger: slog.New(slog.DiscardHandler)})
			require.NoError(b, err)
			defer func() { require.NoError(b, s.Close()) }()
			body := make([]byte, size)
			ctx := context.Background()
			now := time.Now()
			b.SetBytes(batch * size)
			b.ReportAllocs()
			start := time.Now()
			for i := 0; b.Loop(); i++ {
				saves := make([]*store.Message, batch)
				acks := make([]store.Update, batch)
				for j := range saves {
					id := fmt.Sprintf("%016x%016x", i, j)
					saves[j] = &store.Message{
						Topic: "trade", ID: id, MessageType: "pay-succ", Group: "p-trade",
						BodyType: store.BodyBytes, Body: body, Created: now, DeliverLimit: 100, Seq: uint64(i*batch + j),
						Groups: []store.GroupState{{Group: "s-trade", NextAttempt: now.Add(time.Minute)}},
					}
					acks[j] = store.Update{Op: store.OpAck, Topic: "trade", ID: id, Group: "s-trade"}
				}
				_, err := s.Write(ctx, &store.Batch{Now: now, DedupWindow: 2 * time.Minute, Saves: saves})
				require.NoError(b, err)
				_, err = s.Write(ctx, &store.Batch{Now: now, Updates: acks})
				require.NoError(b, err)
			}
			b.ReportMetric(float64(b.N*batch)/time.Since(start).Seconds(), "msgs/s")
		})
	}
}
