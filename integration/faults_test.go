//go:build integration

package integration

import (
	"bufio"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/require"
)

// mountTmpfs mounts a tmpfs of size bytes in a temporary directory and
// unmounts it at cleanup. Call it before NewBroker, so that the broker is
// killed before the unmount. Where mounting is not permitted (not root) it
// skips, or fails when CI is set.
func mountTmpfs(t *testing.T, size int64) string {
	t.Helper()
	dir := t.TempDir()
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, fmt.Sprintf("size=%d", size)); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("CI must run the disk-full tests (they mount a tmpfs, as root): %v", err)
		}
		t.Skipf("skipping: mounting a tmpfs needs root: %v", err)
	}
	t.Cleanup(func() {
		if err := syscall.Unmount(dir, 0); err != nil {
			t.Errorf("unmount %s: %v", dir, err)
		}
	})
	return dir
}

// diskFree returns the bytes available on dir's filesystem, and its size.
func diskFree(t *testing.T, dir string) (free, size int64) {
	t.Helper()
	var st syscall.Statfs_t
	require.NoError(t, syscall.Statfs(dir, &st))
	return int64(st.Bavail) * st.Bsize, int64(st.Blocks) * st.Bsize
}

func mib(n int64) string { return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20)) }

// adminBroker returns a stopped broker on uri with its admin HTTP on a free
// port, and the admin base URL.
func adminBroker(t *testing.T, uri string) (*Broker, string) {
	t.Helper()
	b := NewBroker(t, uri)
	_, port, err := net.SplitHostPort(freeAddr(t))
	require.NoError(t, err)
	b.Args = []string{"-pport", port}
	return b, "http://127.0.0.1:" + port
}

// healthz returns /healthz's status and body.
func healthz(t *testing.T, base string) (int, string) {
	t.Helper()
	resp, err := http.Get(base + "/healthz")
	require.NoError(t, err)
	defer func() { _ = resp.Body.Close() }()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, strings.TrimSpace(string(body))
}

// scrapeGauges returns the unlabelled samples of /metrics whose name starts
// with prefix.
func scrapeGauges(t *testing.T, base, prefix string) map[string]float64 {
	t.Helper()
	resp, err := http.Get(base + "/metrics")
	require.NoError(t, err)
	defer func() { _ = resp.Body.Close() }()
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		name, v, ok := strings.Cut(sc.Text(), " ")
		if !ok || !strings.HasPrefix(name, prefix) || strings.Contains(name, "{") {
			continue
		}
		f, err := strconv.ParseFloat(v, 64)
		require.NoError(t, err, sc.Text())
		out[name] = f
	}
	require.NoError(t, sc.Err())
	return out
}

// publishReply sends one acknowledged publish of body and returns the ack
// or the error reply.
func publishReply(nc *nats.Conn, subject, id string, body []byte) (*pubAck, error) {
	msg, err := nc.RequestMsg(&nats.Msg{Subject: subject, Header: nats.Header{"Kq-Msg-Id": {id}}, Data: body}, 10*time.Second)
	if err != nil {
		return nil, err
	}
	var ack pubAck
	if err := json.Unmarshal(msg.Data, &ack); err != nil {
		return nil, fmt.Errorf("reply %q: %w", msg.Data, err)
	}
	return &ack, nil
}

// TestIntegrationDiskFull runs the broker on a 64 MiB tmpfs with a backlog
// that fills it: publishes are refused with 503 naming the full disk while
// /healthz answers 503 saying why and /metrics flags it; a consumer then
// gets and acks every acknowledged message (none lost), the space comes
// back, /healthz answers "ok" again and publishes are acknowledged again,
// all without a restart. Then another file takes every byte left, so that
// the journal's own writes run out: 503 again, no failure, and publishes
// acknowledged again once the file is gone.
func TestIntegrationDiskFull(t *testing.T) {
	mnt := mountTmpfs(t, 64<<20)
	b, admin := adminBroker(t, "rocksdb://"+mnt+"/data?journalSegmentSize=2MiB&minFree=16MiB")
	b.Start()
	const group, topic = "s-disk", "disk"
	bind := []binding{{Topic: topic, MessageType: "evt", BindType: "direct", Persistent: true}}
	startConsumer(t, b.URL(), consumerConfig{Group: group, Bindings: bind}).Close()
	waitFor(t, 5*time.Second, func() bool { return len(mustStat(t, b.URL()).Consumers) == 0 }, "the binding consumer to leave")

	// Publish 4 KiB bodies that do not compress, on 4 connections, until
	// the disk is full and then some: refusals while /healthz is polled.
	start := time.Now()
	var (
		mu        sync.Mutex
		acked     = map[string]bool{}
		refusals  int
		refusal   string // the first refusal's description
		refusedAt time.Duration
		otherErrs []string
	)
	var sawHealth atomic.Bool
	var wg sync.WaitGroup
	for p := range 4 {
		nc, err := nats.Connect(b.URL(), nats.NoReconnect())
		require.NoError(t, err)
		defer nc.Close()
		wg.Add(1)
		go func() {
			defer wg.Done()
			body := make([]byte, 4<<10)
			for i := 0; !sawHealth.Load() && time.Since(start) < 60*time.Second; i++ {
				_, _ = rand.Read(body)
				id := fmt.Sprintf("%08x%024x", p, i)
				ack, err := publishReply(nc, "kq."+topic+".evt", id, body)
				mu.Lock()
				switch {
				case err != nil:
					otherErrs = append(otherErrs, err.Error())
				case ack.Error != nil:
					if refusals++; refusals == 1 {
						refusal, refusedAt = fmt.Sprintf("%d %d %s", ack.Error.Code, ack.Error.ErrCode, ack.Error.Description), time.Since(start)
					}
					if ack.Error.Code != 503 {
						otherErrs = append(otherErrs, ack.Error.Description)
					}
				default:
					acked[id] = true
				}
				mu.Unlock()
				if err != nil || ack.Error != nil {
					time.Sleep(10 * time.Millisecond)
				}
			}
		}()
	}
	var health string
	var gauges map[string]float64
	var healthAt time.Duration
	waitFor(t, 60*time.Second, func() bool {
		code, body := healthz(t, admin)
		if code == http.StatusOK {
			return false
		}
		health, healthAt = fmt.Sprintf("%d %s", code, body), time.Since(start)
		gauges = scrapeGauges(t, admin, "kitenats_")
		return true
	}, "/healthz to say the disk is full")
	sawHealth.Store(true)
	wg.Wait()
	free, size := diskFree(t, mnt)
	mu.Lock()
	t.Logf("%d publishes acked, first refused at %v: %q; %d refusals in all; /healthz at %v: %q; disk free %s of %s",
		len(acked), refusedAt.Round(time.Millisecond), refusal, refusals, healthAt.Round(time.Millisecond), health, mib(free), mib(size))
	t.Logf("metrics then: no_space %v failed %v healthy %v disk_free %s journal %s", gauges["kitenats_store_no_space"], gauges["kitenats_store_failed"],
		gauges["kitenats_healthy"], mib(int64(gauges["kitenats_store_disk_free_bytes"])), mib(int64(gauges["kitenats_store_journal_bytes"])))
	require.Empty(t, otherErrs, "only 503 refusals")
	require.Positive(t, refusals)
	require.Contains(t, refusal, "503 14503 kq: store full: no space left on the broker's disk")
	require.Contains(t, health, "503 ")
	require.Contains(t, health, "disk full")
	require.Contains(t, health, "minFree")
	require.Equal(t, 1.0, gauges["kitenats_store_no_space"])
	require.Equal(t, 0.0, gauges["kitenats_store_failed"])
	require.Equal(t, 0.0, gauges["kitenats_healthy"])
	require.Greater(t, len(acked), 3000, "the disk held thousands of 4 KiB messages")
	mu.Unlock()

	// Drain: every acknowledged publish arrives and is acked.
	drainStart := time.Now()
	c := startConsumer(t, b.URL(), consumerConfig{Group: group, MaxInflight: 512})
	waitFor(t, 120*time.Second, func() bool {
		p, f := mustStat(t, b.URL()).group(topic, group)
		return len(c.Seen()) >= len(acked) && p == 0 && f == 0
	}, "the consumer to get and ack the %d messages", len(acked))
	seen := c.Seen()
	var missing []string
	for id := range acked {
		if seen[id] == 0 {
			missing = append(missing, id)
		}
	}
	require.Empty(t, missing, "LOSS: %s", sample(missing, 10))
	drained := time.Since(drainStart)

	// The space comes back and the broker takes publishes again.
	waitFor(t, 60*time.Second, func() bool {
		code, _ := healthz(t, admin)
		free, size := diskFree(t, mnt)
		return code == http.StatusOK && free > size/2
	}, "/healthz ok and the space back (half the disk free: the 8 MiB space reserve file is back too)")
	back := time.Since(drainStart)
	free, _ = diskFree(t, mnt)
	gauges = scrapeGauges(t, admin, "kitenats_store_")
	nc, err := nats.Connect(b.URL(), nats.NoReconnect())
	require.NoError(t, err)
	defer nc.Close()
	for i := range 100 {
		ack, err := publishReply(nc, "kq."+topic+".evt", fmt.Sprintf("ffffffff%024x", i), make([]byte, 4<<10))
		require.NoError(t, err)
		require.Nil(t, ack.Error, "publish after the space came back")
	}
	t.Logf("drained and acked %d in %v; /healthz ok and %s free %v after the drain began; metrics: no_space %v journal %s; 100 publishes acked again",
		len(acked), drained.Round(time.Millisecond), mib(free), back.Round(time.Millisecond), gauges["kitenats_store_no_space"], mib(int64(gauges["kitenats_store_journal_bytes"])))
	require.Equal(t, 0.0, gauges["kitenats_store_no_space"])

	// Another program takes every byte left: the journal's own writes run
	// out of space. Publishes get 503, the broker does not fail, and once
	// the file is gone they are acknowledged again.
	ballast := mnt + "/ballast"
	f, err := os.Create(ballast)
	require.NoError(t, err)
	chunk := make([]byte, 64<<10)
	for {
		if _, err := f.Write(chunk); err != nil {
			require.ErrorIs(t, err, syscall.ENOSPC)
			break
		}
	}
	require.NoError(t, f.Close())
	refused, hardAcked := 0, 0
	var hardRefusal string
	for i := range 50 {
		ack, err := publishReply(nc, "kq."+topic+".evt", fmt.Sprintf("eeeeeeee%024x", i), make([]byte, 4<<10))
		require.NoError(t, err)
		if ack.Error != nil {
			require.Equal(t, 503, ack.Error.Code, ack.Error.Description)
			hardRefusal = ack.Error.Description
			refused++
		} else {
			hardAcked++
		}
	}
	code, body := healthz(t, admin)
	t.Logf("disk filled by another file: %d of 50 publishes refused (%q), %d acked; /healthz %d %q", refused, hardRefusal, hardAcked, code, body)
	require.Positive(t, refused)
	require.Equal(t, http.StatusServiceUnavailable, code)
	require.NoError(t, os.Remove(ballast))
	gone := time.Now()
	waitFor(t, 30*time.Second, func() bool { code, _ := healthz(t, admin); return code == http.StatusOK }, "/healthz ok once the file is gone")
	okAfter := time.Since(gone)
	for i := range 50 {
		ack, err := publishReply(nc, "kq."+topic+".evt", fmt.Sprintf("dddddddd%024x", i), make([]byte, 4<<10))
		require.NoError(t, err)
		require.Nil(t, ack.Error, "publish after the file went")
	}
	t.Logf("file removed: /healthz ok after %v, 50 publishes acked", okAfter.Round(time.Millisecond))
	b.RequireRunning()
	require.NotContains(t, b.Stderr(), "refuses writes until", "the store never failed")
}

// segmentRecords returns the offset of each record of a journal segment
// (an 8-byte magic, then records of a 4-byte little-endian length, a
// 4-byte checksum and the payload).
func segmentRecords(data []byte) []int {
	var offs []int
	for off := 8; off+8 <= len(data); {
		offs = append(offs, off)
		off += 8 + int(uint32(data[off])|uint32(data[off+1])<<8|uint32(data[off+2])<<16|uint32(data[off+3])<<24)
	}
	return offs
}

// TestIntegrationJournalBitFlip publishes a backlog, kills the broker with
// SIGKILL (the journal stays), flips a bit in the middle of the journal
// segment and restarts it: the broker starts, logs one error naming the
// segment, the offset and the messages of the damaged record, counts it
// in /metrics, keeps the segment as .damaged, and delivers every other
// acknowledged message.
func TestIntegrationJournalBitFlip(t *testing.T) {
	dir := t.TempDir()
	b, admin := adminBroker(t, "rocksdb://"+dir+"/data")
	b.Start()
	const group, topic = "s-flip", "flip"
	attempted, acked := publishBacklog(t, b.URL(), group, topic, 2000, 4)
	b.Kill()

	jdir := dir + "/data/journal"
	entries, err := os.ReadDir(jdir)
	require.NoError(t, err)
	var segs []string
	for _, e := range entries {
		if strings.HasSuffix(e.Name(), ".log") {
			segs = append(segs, jdir+"/"+e.Name())
		}
	}
	require.NotEmpty(t, segs, "a killed broker leaves its journal")
	name := segs[len(segs)-1]
	data, err := os.ReadFile(name)
	require.NoError(t, err)
	offs := segmentRecords(data)
	require.Greater(t, len(offs), 10)
	bad := offs[len(offs)/2]
	data[bad+8+60] ^= 0x08 // in the payload of the middle record
	require.NoError(t, os.WriteFile(name, data, 0o640))

	b.Start()
	logs := b.Stderr()
	var line string
	for _, l := range strings.Split(logs, "\n") {
		if strings.Contains(l, "level=ERROR") && strings.Contains(l, "journal: skipped") {
			line = l
		}
	}
	t.Logf("the error line: %s", line)
	require.NotEmpty(t, line, "an error line for the damaged record:\n%s", logs)
	require.Contains(t, line, "segment="+name)
	require.Contains(t, line, "offset="+strconv.Itoa(bad))
	require.FileExists(t, name+".damaged")
	g := scrapeGauges(t, admin, "kitenats_store_")
	require.Equal(t, 1.0, g["kitenats_store_corrupt_records_total"])

	// The damaged record's messages are named; every other acknowledged
	// publish is delivered.
	named := map[string]bool{}
	if _, list, ok := strings.Cut(line, "messages=\"["); ok {
		list, _, _ = strings.Cut(list, "]")
		for _, m := range strings.Fields(list) {
			named[strings.TrimPrefix(m, topic+"/")] = true
		}
	}
	c := startConsumer(t, b.URL(), consumerConfig{Group: group})
	c.Drain(2*time.Second, 0, 60*time.Second)
	missing, _, _, _, _ := lossReport(attempted, acked, c)
	var lost []string
	for _, id := range missing {
		if !named[id] {
			lost = append(lost, id)
		}
	}
	t.Logf("%d acked publishes; the damaged record named %d messages; %d of those not delivered; %d others missing", len(acked), len(named), len(missing)-len(lost), len(lost))
	require.Empty(t, lost, "only the damaged record's messages may be missing")
	require.Positive(t, len(named))
}

// TestIntegrationCorruptTable flips a byte in the middle of a RocksDB table
// and starts the broker: it exits at once with one line naming the store,
// the file and what to do.
func TestIntegrationCorruptTable(t *testing.T) {
	dir := t.TempDir()
	b := NewBroker(t, "rocksdb://"+dir+"/data")
	b.Start()
	const group, topic = "s-sst", "sst"
	publishBacklog(t, b.URL(), group, topic, 2000, 4)
	code, _ := b.Stop(30 * time.Second) // a clean stop: everything in tables
	require.Zero(t, code)
	tables, err := filepath.Glob(dir + "/data/*.sst")
	require.NoError(t, err)
	require.NotEmpty(t, tables)
	var biggest string
	var size int64
	for _, f := range tables {
		fi, err := os.Stat(f)
		require.NoError(t, err)
		if fi.Size() > size {
			biggest, size = f, fi.Size()
		}
	}
	data, err := os.ReadFile(biggest)
	require.NoError(t, err)
	data[len(data)/2] ^= 0x01
	require.NoError(t, os.WriteFile(biggest, data, 0o640))

	r := b.launch()
	select {
	case <-r.exited:
	case <-time.After(30 * time.Second):
		t.Fatal("the broker did not exit on a damaged table")
	}
	var line string
	for _, l := range strings.Split(r.stderr.String(), "\n") {
		if strings.HasPrefix(l, "kitenats: ") {
			line = l
		}
	}
	t.Logf("exit %d: %s", r.state.ExitCode(), line)
	require.NotZero(t, r.state.ExitCode())
	require.Contains(t, line, "kitenats: open store rocksdb://"+dir+"/data")
	require.Contains(t, line, biggest)
	require.Contains(t, line, "Corruption")
	require.Contains(t, line, "restore the directory from a backup")
}

// TestIntegrationMemoryFlood floods a bounded memory store: publishes past
// maxbytes are refused with 503 "store full" at the bound, the broker's
// RSS stops growing there, and a flood of publishes nobody takes (unique
// ids: their dedup entries) grows it up to maxcap dedup entries and no
// further.
func TestIntegrationMemoryFlood(t *testing.T) {
	const maxcap, maxbytes, bodySize = 50_000, 16 << 20, 1 << 10
	b := NewBroker(t, fmt.Sprintf("memory://?maxcap=%d&maxbytes=%d", maxcap, maxbytes))
	b.Start()
	const group, topic = "s-flood", "flood"
	bind := []binding{{Topic: topic, MessageType: "evt", BindType: "direct", Persistent: true}}
	startConsumer(t, b.URL(), consumerConfig{Group: group, Bindings: bind}).Close()
	waitFor(t, 5*time.Second, func() bool { return len(mustStat(t, b.URL()).Consumers) == 0 }, "the binding consumer to leave")
	rss0, err := b.RSS()
	require.NoError(t, err)

	flood := func(subject string, n int) *pubLog {
		log := newPubLog()
		stop := startLoad(t, b.URL(), loadConfig{Subject: subject, Publishers: 4, Window: 32, Timeout: 10 * time.Second, Max: n, Body: body(bodySize)}, log)
		defer stop()
		waitFor(t, 120*time.Second, func() bool {
			log.mu.Lock()
			defer log.mu.Unlock()
			done := len(log.acked)
			for _, c := range log.errs {
				done += c
			}
			return done >= n
		}, "%d publishes answered", n)
		return log
	}
	// Up to the bound: 16 MiB of 1 KiB bodies is about 15,000 messages.
	first := flood("kq."+topic+".evt", 20_000)
	rssBound, err := b.RSS()
	require.NoError(t, err)
	stored := first.ackedCount()
	// Three times the bound again: every one refused.
	second := flood("kq."+topic+".evt", 60_000)
	rssFlood, err := b.RSS()
	require.NoError(t, err)
	t.Logf("stored %d of 20,000 (bound %d bytes); then 60,000 more: %d acked, errors %v; RSS %s at start, %s at the bound, %s after the flood",
		stored, maxbytes, second.ackedCount(), second.errorKinds(), mib(rss0), mib(rssBound), mib(rssFlood))
	require.Less(t, stored, 20_000)
	require.Greater(t, stored, 10_000)
	require.Zero(t, second.ackedCount(), "nothing past the bound")
	require.Equal(t, map[string]int{"error 503": 60_000}, second.errorKinds())
	require.Less(t, rssFlood-rssBound, int64(32<<20), "RSS bounded once the store is full")

	// Publishes nobody takes, each with a fresh id, well past maxcap: their
	// dedup entries are bounded too.
	third := flood("kq.nobody.evt", 200_000)
	rssUnmatched, err := b.RSS()
	require.NoError(t, err)
	fourth := flood("kq.nobody.evt", 200_000)
	rssUnmatched2, err := b.RSS()
	require.NoError(t, err)
	t.Logf("200,000 publishes nobody takes: %d acked, RSS %s; 200,000 more: %d acked, RSS %s", third.ackedCount(), mib(rssUnmatched), fourth.ackedCount(), mib(rssUnmatched2))
	require.Equal(t, 200_000, third.ackedCount())
	require.Equal(t, 200_000, fourth.ackedCount())
	require.Less(t, rssUnmatched-rssFlood, int64(48<<20), "dedup entries bounded (maxcap of them)")
	require.Less(t, rssUnmatched2-rssUnmatched, int64(16<<20), "no growth once the dedup table is at its bound")
	b.RequireRunning()
}
