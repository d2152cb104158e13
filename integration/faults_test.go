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
		return code == http.StatusOK && free > size*3/4
	}, "/healthz ok and the space back")
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
