//go:build integration

package integration

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/require"
)

// overloadSeconds is the length of TestIntegrationOverload's load:
// KITENATS_OVERLOAD_SECONDS, default 60.
func overloadSeconds(t *testing.T) int {
	t.Helper()
	v := os.Getenv("KITENATS_OVERLOAD_SECONDS")
	if v == "" {
		return 60
	}
	n, err := strconv.Atoi(v)
	require.NoError(t, err, "KITENATS_OVERLOAD_SECONDS")
	require.Positive(t, n, "KITENATS_OVERLOAD_SECONDS")
	return n
}

// monitorSample is one look at the broker during the overload.
type monitorSample struct {
	at          time.Duration // since the load started
	statTook    time.Duration
	statErr     error
	pendingSlow int64
	pendingFast int64
	writeQueue  int
	rss         int64
}

// TestIntegrationOverload is issue #3 item 8: on rocksdb async, a producer
// publishes with acks at several times the rate a slow consumer (acks after
// a small delay, maxInflight 64) can take, for KITENATS_OVERLOAD_SECONDS.
// Throughout: every publish is answered within 3 s (success, or a clear 429
// or 503, never a timeout); the slow consumer keeps getting deliveries at
// its own pace (no gap over 5 s); a second group on another topic with a
// fast consumer keeps a steady rate; $KQ.API.STAT answers within 1 s; the
// broker's RSS stays under 500 MB; and the backlog shows in STAT's pending.
func TestIntegrationOverload(t *testing.T) {
	secs := overloadSeconds(t)
	dur := time.Duration(secs) * time.Second
	b := NewBroker(t, "rocksdb://"+t.TempDir()+"?durability=async")
	b.Start()

	const (
		slowDelay  = 5 * time.Millisecond // the slow consumer's work per message: at most 200/s
		slowRate   = 1500.0               // its producer: 7.5 times that
		fastRate   = 200.0                // the other topic's producer; its consumer acks at once
		fastWindow = 5 * time.Second      // the fast consumer's rate is checked per window
	)
	slow := startConsumer(t, b.URL(), consumerConfig{
		Group: "s-slow", Bindings: []binding{{Topic: "ovl-slow", MessageType: "evt", BindType: "direct", Persistent: true}},
		MaxInflight: 64,
		Handle: func(c *Consumer, m *nats.Msg) {
			time.Sleep(slowDelay) // the consumer's work
			ackNow(c, m)
		},
	})
	fast := startConsumer(t, b.URL(), consumerConfig{
		Group: "s-fast", Bindings: []binding{{Topic: "ovl-fast", MessageType: "evt", BindType: "direct", Persistent: true}},
	})

	slowPubs, fastPubs := newPubLog(), newPubLog()
	start := time.Now()
	stopSlow := startLoad(t, b.URL(), loadConfig{
		Subject: "kq.ovl-slow.evt", Publishers: 2, Window: 64, Timeout: 3 * time.Second,
		Rate: slowRate, Max: int(slowRate) * secs * 2, Body: body(256),
	}, slowPubs)
	defer stopSlow()
	stopFast := startLoad(t, b.URL(), loadConfig{
		Subject: "kq.ovl-fast.evt", Publishers: 1, Window: 16, Timeout: 3 * time.Second,
		Rate: fastRate, Max: int(fastRate) * secs * 2, Body: body(256),
	}, fastPubs)
	defer stopFast()

	// The monitor asks STAT (1 s deadline) and reads RSS twice a second.
	mon, err := nats.Connect(b.URL(), nats.NoReconnect(), nats.Name("monitor"))
	require.NoError(t, err)
	defer mon.Close()
	var (
		samplesMu sync.Mutex
		samples   []monitorSample
	)
	monDone := make(chan struct{})
	monStop := make(chan struct{})
	go func() {
		defer close(monDone)
		tk := time.NewTicker(500 * time.Millisecond)
		defer tk.Stop()
		for {
			select {
			case <-monStop:
				return
			case <-tk.C:
			}
			s := monitorSample{at: time.Since(start)}
			st, took, err := stat(mon, time.Second)
			s.statTook, s.statErr = took, err
			if err == nil {
				s.pendingSlow, _ = st.group("ovl-slow", "s-slow")
				s.pendingFast, _ = st.group("ovl-fast", "s-fast")
				s.writeQueue = st.WriteQueue
			}
			if rss, err := b.RSS(); err == nil {
				s.rss = rss
			}
			samplesMu.Lock()
			samples = append(samples, s)
			samplesMu.Unlock()
		}
	}()

	<-time.After(dur) // the overload runs for its whole length
	loadEnd := time.Since(start)
	stopSlow()
	stopFast()
	close(monStop)
	<-monDone
	b.RequireRunning()
	fast.Drain(2*time.Second, 0, 30*time.Second)

	// Figures.
	slowLat, fastLat := slowPubs.latencies(), fastPubs.latencies()
	_, slowAcked := slowPubs.snapshot()
	_, fastAcked := fastPubs.snapshot()
	slowTimes, fastTimes := slow.Times(), fast.Times()
	var maxStat time.Duration
	var maxRSS int64
	var statErrs []string
	var trace strings.Builder
	for i, s := range samples {
		maxStat = max(maxStat, s.statTook)
		maxRSS = max(maxRSS, s.rss)
		if s.statErr != nil {
			statErrs = append(statErrs, fmt.Sprintf("at %v: %v", s.at.Round(time.Millisecond), s.statErr))
		}
		if i%20 == 19 || i == len(samples)-1 {
			fmt.Fprintf(&trace, "\n  t=%3.0fs pending slow %7d fast %5d, write queue %5d, STAT %6v, RSS %4d MB",
				s.at.Seconds(), s.pendingSlow, s.pendingFast, s.writeQueue, s.statTook.Round(time.Millisecond), s.rss>>20)
		}
	}
	slowGap := maxGap(slowTimes, start, start.Add(loadEnd))
	fastGap := maxGap(fastTimes, start, start.Add(loadEnd))
	minFast, minFastAt := minPerWindow(fastTimes, start, loadEnd, fastWindow)
	slowDeliveryRate := float64(countBetween(slowTimes, start, start.Add(loadEnd))) / loadEnd.Seconds()
	t.Logf("overload %v on rocksdb async:\n"+
		"  slow topic: %d publishes acked (%.0f/s), errors %v, ack latency p50 %v p99 %v max %v\n"+
		"  fast topic: %d publishes acked (%.0f/s), errors %v, ack latency p50 %v p99 %v max %v\n"+
		"  slow consumer: %d deliveries (%.0f/s, its pace at most %.0f/s), longest gap %v\n"+
		"  fast consumer: %d deliveries, longest gap %v, slowest %v window %d deliveries (from t=%ds)\n"+
		"  STAT: %d samples, slowest %v, %d errors; broker RSS max %d MB%s",
		loadEnd.Round(time.Millisecond),
		len(slowAcked), float64(len(slowAcked))/loadEnd.Seconds(), slowPubs.errorKinds(),
		percentile(slowLat, 0.5), percentile(slowLat, 0.99), percentile(slowLat, 1),
		len(fastAcked), float64(len(fastAcked))/loadEnd.Seconds(), fastPubs.errorKinds(),
		percentile(fastLat, 0.5), percentile(fastLat, 0.99), percentile(fastLat, 1),
		len(slowTimes), slowDeliveryRate, float64(time.Second/slowDelay), slowGap.Round(time.Millisecond),
		len(fastTimes), fastGap.Round(time.Millisecond), fastWindow, minFast, minFastAt,
		len(samples), maxStat.Round(time.Millisecond), len(statErrs), maxRSS>>20, trace.String())

	// Every publish is answered in time: an ack, or a clear 429/503.
	for _, p := range []*pubLog{slowPubs, fastPubs} {
		for kind, n := range p.errorKinds() {
			require.Contains(t, []string{"error 429", "error 503"}, kind, "%d publishes failed with %q: every publish must be answered within 3 s, by an ack or a 429/503", n, kind)
		}
	}
	require.Greater(t, float64(len(slowAcked)), slowRate*loadEnd.Seconds()*0.5, "the slow topic's producer got far fewer acks than it asked for")
	// The slow consumer is served at its own pace throughout.
	require.LessOrEqual(t, slowGap, 5*time.Second, "the slow consumer starved")
	require.Greater(t, slowDeliveryRate, 0.4*float64(time.Second/slowDelay), "the slow consumer got far less than it can take")
	// The other group keeps a steady rate.
	require.LessOrEqual(t, fastGap, 2*time.Second, "the fast consumer stalled")
	if minFast >= 0 { // -1: the load was shorter than one window
		require.GreaterOrEqual(t, float64(minFast), fastRate*fastWindow.Seconds()*0.5, "the fast consumer's slowest %v window (from t=%ds)", fastWindow, minFastAt)
	}
	fastGot := fast.Seen()
	var fastMissing []string
	for id := range fastAcked {
		if fastGot[id] == 0 {
			fastMissing = append(fastMissing, id)
		}
	}
	require.Empty(t, fastMissing, "acknowledged publishes on the fast topic never delivered")
	// STAT answers within 1 s; memory stays bounded.
	require.Empty(t, statErrs, "STAT must answer within 1 s throughout")
	require.NotEmpty(t, samples)
	require.Less(t, maxRSS, int64(500<<20), "broker RSS")
	// The backlog shows in STAT.
	first, last := samples[len(samples)/3], samples[len(samples)-1]
	require.Greater(t, last.pendingSlow, first.pendingSlow, "STAT pending of the slow group must grow with the backlog")
	backlog := int64(len(slowAcked) - len(slowTimes))
	require.GreaterOrEqual(t, last.pendingSlow, backlog/2, "STAT pending %d for a backlog of about %d", last.pendingSlow, backlog)

	code, took := b.Stop(15 * time.Second)
	t.Logf("SIGTERM with a backlog of %d: exit %d after %v", last.pendingSlow, code, took.Round(time.Millisecond))
	require.Zero(t, code, "exit code after SIGTERM")
}

// maxGap is the longest time between from, consecutive arrivals in
// [from, to], and to.
func maxGap(times []time.Time, from, to time.Time) time.Duration {
	var gap time.Duration
	prev := from
	for _, at := range times {
		if at.Before(from) || at.After(to) {
			continue
		}
		gap = max(gap, at.Sub(prev))
		prev = at
	}
	return max(gap, to.Sub(prev))
}

func countBetween(times []time.Time, from, to time.Time) int {
	n := 0
	for _, at := range times {
		if !at.Before(from) && !at.After(to) {
			n++
		}
	}
	return n
}

// minPerWindow returns the fewest arrivals in one whole window of the load
// (windows start at start+1s, after connections warmed up) and the second
// its window starts at.
func minPerWindow(times []time.Time, start time.Time, length, window time.Duration) (int, int) {
	from := start.Add(time.Second)
	n := int((length - time.Second) / window)
	counts := make([]int, n)
	for _, at := range times {
		if w := int(at.Sub(from) / window); at.After(from) && w < n {
			counts[w]++
		}
	}
	best, at := -1, 0
	for w, c := range counts {
		if best < 0 || c < best {
			best, at = c, 1+w*int(window/time.Second)
		}
	}
	return best, at
}
