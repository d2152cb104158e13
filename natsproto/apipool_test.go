package natsproto

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestLaneOf(t *testing.T) {
	require.Equal(t, "s-trade", laneOf("$KQ.API.BIND.s-trade", APIPrefix))
	require.Equal(t, "s%2Etrade", laneOf("$KQ.API.CONSUMER.DELETE.s%2Etrade", APIPrefix))
	require.Equal(t, "LIST", laneOf("$KQ.API.TX.LIST", APIPrefix), "TX as the group named LIST")
	require.Equal(t, adminLane, laneOf("$KQ.API.STAT", APIPrefix), "a legacy admin call")
	require.Equal(t, adminLane, laneOf("$KQ.ADMIN.TX.LIST", AdminPrefix))
	require.Equal(t, 1, laneWorkers(4, 2))
	require.Equal(t, 2, laneWorkers(4, 8))
	require.Equal(t, 1, laneWorkers(1, 8))
}

// TestAPIPoolTurnsAndLimits: one group's calls occupy at most its share of
// the workers, so another group's call is served while they block; past
// its queue a group's call is refused at once with 429; Sync waits for the
// calls taken before it; at stop the calls still queued get 503 and every
// worker ends (goleak, TestMain).
func TestAPIPoolTurnsAndLimits(t *testing.T) {
	h := newHarness(t, nil)
	p := newAPIPool(h.s, Config{APIWorkers: 2, APIQueue: 3}) // one worker per group
	h.s.mu.Lock()
	h.s.pool = p
	h.s.mu.Unlock()
	defer h.s.stopPool()

	release := make(chan struct{})
	started := make(chan string, 10)
	route := func(_ context.Context, call string, _ []byte) ([]byte, error) {
		started <- call
		if call == "BIND.s-flood" {
			<-release
		}
		return []byte(`{}`), nil
	}
	call := func(group string, i int) {
		p.enqueue(&Msg{Subject: "$KQ.API.BIND." + group, Reply: fmt.Sprint("_INBOX.", group, ".", i)}, APIPrefix, route)
	}
	call("s-flood", 0)
	require.Equal(t, "BIND.s-flood", <-started) // served, and blocked
	for i := range 5 {
		call("s-flood", i+1) // three queued, two refused
	}
	refused := h.tr.take("_INBOX.s-flood.")
	require.Len(t, refused, 2)
	for _, m := range refused {
		require.Equal(t, 429, errCode(t, m.Data))
		require.Contains(t, string(m.Data), "apiQueuePerGroup")
	}
	require.EqualValues(t, 2, h.stat().LimitRefusals.APIQueue)

	start := time.Now()
	call("s-calm", 0)
	require.Equal(t, "BIND.s-calm", <-started, "served while s-flood's call blocks")
	require.Eventually(t, func() bool { return len(h.tr.take("_INBOX.s-calm.0")) == 1 }, 5*time.Second, time.Millisecond)
	t.Logf("s-calm answered in %s", time.Since(start))

	// Sync waits for the calls taken before it.
	synced := make(chan error, 1)
	go func() { synced <- h.s.Sync(context.Background()) }()
	select {
	case err := <-synced:
		t.Fatalf("Sync returned (%v) while calls it must wait for are queued", err)
	case <-time.After(50 * time.Millisecond):
	}
	release <- struct{}{}
	require.Equal(t, "BIND.s-flood", <-started, "the next of s-flood's calls")
	// Stop: the call being served ends, the two queued get 503.
	stopped := make(chan struct{})
	go func() { h.s.stopPool(); close(stopped) }()
	require.Eventually(t, func() bool {
		p.mu.Lock()
		defer p.mu.Unlock()
		return p.stopped
	}, 5*time.Second, time.Millisecond)
	close(release)
	<-stopped
	require.NoError(t, <-synced)
	var codes []int
	for _, m := range h.tr.take("_INBOX.s-flood.") {
		codes = append(codes, errCode(t, m.Data))
	}
	require.ElementsMatch(t, []int{0, 0, 503, 503}, codes)
}

// TestAPIRequestTooLarge: a call over maxRequestBytes is refused with 413
// before it is queued.
func TestAPIRequestTooLarge(t *testing.T) {
	h := newHarness(t, nil)
	h.s.cfg.MaxRequestBytes = 10
	require.Equal(t, 413, errCode(t, h.api("BIND.s-trade", `{"deliver":"$KQ.DLV.s-trade.x"}`)))
	require.Contains(t, string(h.admin("STAT", `{"padding":"............"}`)), "maxRequestBytes")
	require.EqualValues(t, 2, h.stat().LimitRefusals.RequestBytes)
}
