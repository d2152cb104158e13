//go:build integration

package integration

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kitenats/kitenats/internal/powerfs"
)

// Power cuts, not only kill -9 (issue #16 item 11). A killed process
// leaves its writes in the page cache, so the crash tests cannot tell
// whether durability=sync really syncs. These tests put the RocksDB store
// on a powerfs disk (internal/powerfs: a FUSE filesystem that keeps only
// what was fsynced, and only the names whose directory was fsynced), run
// an acknowledged publish load, and at a random moment cut the power and
// kill -9 the broker at once; then power on (every fourth time cutting the
// power again while the broker starts), restart the broker on the same
// directory and drain the group. KITENATS_POWERCUT_SEED replays a run's
// random moments (logged as "seed").

// powerCutRate is the publish rate of the load, in messages a second: the
// async window's loss is stated at this rate.
const powerCutRate = 4000

// asyncSlack is what the async loss window may exceed syncInterval by: the
// fsync itself, and the scheduling of the syncer's tick.
const asyncSlack = 250 * time.Millisecond

// TestIntegrationPowerCutSync: durability=sync loses no acknowledged
// publish over 20 power cuts at random moments.
func TestIntegrationPowerCutSync(t *testing.T) {
	res := runPowerCuts(t, "sync", 20)
	require.Zero(t, res.lost, "LOSS: durability=sync lost %d of %d acknowledged publishes over %d power cuts", res.lost, res.acked, res.cuts)
}

// TestIntegrationPowerCutAsync: over 20 power cuts, durability=async
// (syncInterval 1 s, the default) loses at most the publishes acknowledged in the last
// syncInterval before a cut, as the README states.
func TestIntegrationPowerCutAsync(t *testing.T) {
	res := runPowerCuts(t, "async", 20)
	require.LessOrEqual(t, res.maxAge, time.Second+asyncSlack,
		"durability=async lost a publish acknowledged %v before the cut: more than syncInterval (1 s) + %v", res.maxAge, asyncSlack)
}

// powerCutResult sums up the cuts of one run.
type powerCutResult struct {
	cuts, acked, lost int
	startupCuts       int           // cuts while the broker started, besides those under load
	maxLostAtOnce     int           // the most publishes one cut lost
	maxAge            time.Duration // the oldest lost ack, before its cut
}

// powerDisk returns a powered-on powerfs disk mounted at a fresh
// directory. Where FUSE is missing the test skips, or fails when CI is set.
func powerDisk(t *testing.T) (disk *powerfs.FS, mnt string) {
	t.Helper()
	if err := powerfs.Available(); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("CI must run the power-cut tests: %v", err)
		}
		t.Skipf("skipping the power-cut tests: %v", err)
	}
	disk, err := powerfs.New(filepath.Join(t.TempDir(), "backing"))
	require.NoError(t, err)
	mnt = filepath.Join(t.TempDir(), "mnt")
	require.NoError(t, os.Mkdir(mnt, 0o750))
	require.NoError(t, disk.Mount(mnt))
	t.Cleanup(func() { require.NoError(t, disk.Close()) })
	return disk, mnt
}

// powerCutSeed returns KITENATS_POWERCUT_SEED, or a fresh seed, and logs it.
func powerCutSeed(t *testing.T) uint64 {
	t.Helper()
	seed := rand.Uint64()
	if v := os.Getenv("KITENATS_POWERCUT_SEED"); v != "" {
		var err error
		seed, err = strconv.ParseUint(v, 10, 64)
		require.NoError(t, err, "KITENATS_POWERCUT_SEED")
	}
	t.Logf("seed %d (KITENATS_POWERCUT_SEED=%d replays the random moments)", seed, seed)
	return seed
}

// runPowerCuts runs cuts cycles of load, power cut and restart on one
// broker in durability mode and checks each restart: every acknowledged
// publish delivered except, in async mode, those the cut took.
func runPowerCuts(t *testing.T, durability string, cuts int) powerCutResult {
	rng := rand.New(rand.NewPCG(powerCutSeed(t), 0))
	disk, mnt := powerDisk(t)
	// The store's directory does not exist yet: the broker creates it, and
	// the first cut lands on a fresh store.
	b := NewBroker(t, "rocksdb://"+filepath.Join(mnt, "data")+"?durability="+durability)
	const group, topic = "s-power", "power"
	bind := []binding{{Topic: topic, MessageType: "evt", BindType: "direct", Persistent: true}}
	var res powerCutResult
	b.Start()
	// Bind the group persistently and leave, so that publishes are kept for
	// it while the load runs.
	startConsumer(t, b.URL(), consumerConfig{Group: group, Bindings: bind}).Close()
	// Each cycle's load runs on the broker the last cycle restarted after
	// its cut (that replayed what the cut left).
	for cut := range cuts {
		pubs := newPubLog()
		stop := startLoad(t, b.URL(), loadConfig{
			Subject: "kq." + topic + ".evt", Publishers: 4, Window: 16, Timeout: 5 * time.Second,
			Rate: powerCutRate, Max: 100_000, Body: body(128),
		}, pubs)
		waitFor(t, 10*time.Second, func() bool { return pubs.ackedCount() > 0 }, "a first publish ack")
		time.Sleep(time.Duration(100+rng.IntN(1500)) * time.Millisecond)
		// The power cut: the disk keeps only what was synced, and the
		// process dies with it.
		cutAt := time.Now()
		disk.Cut()
		killNow(t, b)
		stop()
		_, acked := pubs.snapshot()

		require.NoError(t, disk.Mount(mnt), "power on")
		if cut%4 == 3 {
			// Cut the power again while the broker starts: in its open, its
			// replay of what the last cut left, or just after.
			b.launch()
			time.Sleep(time.Duration(rng.IntN(400)) * time.Millisecond)
			disk.Cut()
			killNow(t, b)
			require.NoError(t, disk.Mount(mnt), "power on")
			res.startupCuts++
		}
		b.Start()
		c := startConsumer(t, b.URL(), consumerConfig{Group: group, Bindings: bind})
		waitFor(t, 60*time.Second, func() bool {
			p, in := mustStat(t, b.URL()).group(topic, group)
			return p == 0 && in == 0
		}, "the group to be drained after power cut %d", cut+1)
		c.Close()
		seen := c.Seen()
		var ages []time.Duration
		newestKept := time.Duration(1<<63 - 1) // the age of the last acked publish that survived
		pubs.mu.Lock()
		for id := range acked {
			age := cutAt.Sub(pubs.ackAt[id])
			if seen[id] == 0 {
				ages = append(ages, age)
			} else {
				newestKept = min(newestKept, age)
			}
		}
		pubs.mu.Unlock()
		slices.Sort(ages)
		res.cuts++
		res.acked += len(acked)
		res.lost += len(ages)
		res.maxLostAtOnce = max(res.maxLostAtOnce, len(ages))
		lostWindow := "none"
		if len(ages) > 0 {
			res.maxAge = max(res.maxAge, ages[len(ages)-1])
			lostWindow = fmt.Sprintf("acked %v to %v before the cut", ages[0].Round(time.Millisecond), ages[len(ages)-1].Round(time.Millisecond))
		}
		kept := "none survived"
		if len(ages) < len(acked) {
			kept = fmt.Sprintf("the newest that survived was acked %v before the cut", newestKept.Round(time.Millisecond))
		}
		t.Logf("cut %d: %d publishes acked (the last %v before the cut; errors %v), %d lost (%s); %s; %d deliveries after the restart",
			cut+1, len(acked), cutAt.Sub(pubs.lastAckAt()).Round(time.Millisecond), pubs.errorKinds(), len(ages), lostWindow,
			kept, c.Deliveries())
		// The journal is a log: a cut keeps a prefix of it. A publish acked
		// well after one that was lost must be lost too (acks of one
		// batch reach their publishers a few milliseconds apart).
		if len(ages) > 0 && newestKept < ages[len(ages)-1]-100*time.Millisecond {
			t.Errorf("cut %d kept a publish acked %v before it but lost one acked %v before it: not a prefix of the journal",
				cut+1, newestKept.Round(time.Millisecond), ages[len(ages)-1].Round(time.Millisecond))
		}
		require.NotEmpty(t, acked)
		if durability == "sync" && len(ages) > 0 {
			t.Errorf("LOSS at cut %d: %d acknowledged publishes gone", cut+1, len(ages))
		}
	}
	code, _ := b.Stop(15 * time.Second)
	require.Zero(t, code, "exit code after SIGTERM")
	t.Logf("durability=%s: %d power cuts under load (and %d more while the broker started), %d publishes acknowledged at %d/s, %d lost (at most %d at one cut); the oldest lost ack came %v before its cut",
		durability, res.cuts, res.startupCuts, res.acked, powerCutRate, res.lost, res.maxLostAtOnce, res.maxAge.Round(time.Millisecond))
	return res
}

// killNow kills the broker with SIGKILL and waits for it to be gone; unlike
// Kill it accepts a process that already died (of the I/O errors a cut
// gives it).
func killNow(t *testing.T, b *Broker) {
	t.Helper()
	r := b.current()
	_ = r.cmd.Process.Signal(syscall.SIGKILL)
	select {
	case <-r.exited:
	case <-time.After(10 * time.Second):
		t.Fatal("the process survived SIGKILL for 10 s")
	}
}
