//go:build integration

package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/require"
)

// chromiumPath is Debian's chromium (scripts/deps.sh test installs it).
// Without it the browser tests skip, or fail when CI is set.
func chromiumPath(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("chromium")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("chromium is not installed: CI must run the dashboard's browser test (scripts/deps.sh test installs Debian's chromium): %v", err)
		}
		t.Skipf("chromium is not installed (scripts/deps.sh test, or apt-get install chromium): %v", err)
	}
	return p
}

// artifactPath is where a test artifact named name goes: $KITENATS_ARTIFACTS,
// else integration/artifacts (gitignored).
func artifactPath(t *testing.T, name string) string {
	t.Helper()
	dir := os.Getenv("KITENATS_ARTIFACTS")
	if dir == "" {
		dir = "artifacts"
	}
	require.NoError(t, os.MkdirAll(dir, 0o755))
	abs, err := filepath.Abs(filepath.Join(dir, name))
	require.NoError(t, err)
	return abs
}

// adminPort returns a free port on 127.0.0.1, for -pport (the admin HTTP
// listens on the -nats host).
func adminPort(t *testing.T) string {
	t.Helper()
	_, port, err := net.SplitHostPort(freeAddr(t))
	require.NoError(t, err)
	return port
}

// dashStat is the part of $KQ.ADMIN.STAT the dashboard test compares.
type dashStat struct {
	Published int64 `json:"published"`
	Delivered int64 `json:"delivered"`
	Acked     int64 `json:"acked"`
	Nacked    int64 `json:"nacked"`
	Prepares  int64 `json:"prepares"`
	Topics    []struct {
		Topic    string `json:"topic"`
		Messages int64  `json:"messages"`
		Prepared int64  `json:"prepared"`
	} `json:"topics"`
	Groups []struct {
		Topic    string `json:"topic"`
		Group    string `json:"groupId"`
		Pending  int64  `json:"pending"`
		Inflight int64  `json:"inflight"`
		Dead     int64  `json:"dead"`
	} `json:"groups"`
	Consumers []struct {
		ID           string `json:"id"`
		Group        string `json:"groupId"`
		Inflight     int    `json:"inflight"`
		WarmingupSec int    `json:"warmingupSec"`
		Joined       int64  `json:"joined"`
		WarmupPct    int    `json:"warmupPct"`
	} `json:"consumers"`
}

func adminStat(t *testing.T, nc *nats.Conn) dashStat {
	t.Helper()
	msg, err := nc.Request("$KQ.ADMIN.STAT", nil, 5*time.Second)
	require.NoError(t, err)
	var st dashStat
	require.NoError(t, json.Unmarshal(msg.Data, &st), string(msg.Data))
	return st
}

// dead is the dead count of (topic, group) in st.
func (st dashStat) dead(topic, group string) int64 {
	for _, g := range st.Groups {
		if g.Topic == topic && g.Group == group {
			return g.Dead
		}
	}
	return 0
}

// pageState is what the dashboard shows, read from its DOM.
type pageState struct {
	Polls    int              `json:"polls"`
	Error    string           `json:"error"` // the page's last error, if the last call failed
	Counters map[string]int64 `json:"counters"`
	Groups   []struct {
		Topic    string `json:"topic"`
		Group    string `json:"group"`
		Pending  int64  `json:"pending"`
		Inflight int64  `json:"inflight"`
		Dead     int64  `json:"dead"`
	} `json:"groups"`
	Topics []struct {
		Topic    string `json:"topic"`
		Messages int64  `json:"messages"`
		Prepared int64  `json:"prepared"`
	} `json:"topics"`
	Consumers []struct {
		ID        string `json:"id"`
		WarmupPct int    `json:"warmupPct"`
		Inflight  int    `json:"inflight"`
	} `json:"consumers"`
	Tx  []string `json:"tx"`
	DLQ []struct {
		ID      string `json:"id"`
		Kind    string `json:"kind"`
		Preview string `json:"preview"`
	} `json:"dlq"`
	DLQTotal int64 `json:"dlqTotal"`
}

// readPage is a script that returns the page's numbers as pageState.
const readPage = `(() => {
  const n = (s) => Number(String(s).replace(/,/g, ''));
  const txt = (id) => document.getElementById(id).textContent;
  const cell = (tr, c) => n(tr.querySelector('.' + c).textContent);
  return {
    polls: Number(document.body.dataset.polls || 0),
    error: document.body.dataset.error || '',
    counters: Object.fromEntries(['published', 'delivered', 'acked', 'nacked', 'prepares', 'pending', 'inflight', 'dead']
      .map((k) => [k, n(txt('c-' + k))])),
    groups: [...document.querySelectorAll('#groups tbody tr[data-group]')].map((tr) => ({
      topic: tr.dataset.topic, group: tr.dataset.group,
      pending: cell(tr, 'pending'), inflight: cell(tr, 'inflight'), dead: cell(tr, 'dead') })),
    topics: [...document.querySelectorAll('#topics tbody tr[data-topic]')].map((tr) => ({
      topic: tr.dataset.topic, messages: cell(tr, 'messages'), prepared: cell(tr, 'prepared') })),
    consumers: [...document.querySelectorAll('#consumers tbody tr[data-id]')].map((tr) => ({
      id: tr.dataset.id, warmupPct: Number(tr.querySelector('td.warmup').dataset.pct),
      inflight: Number(tr.querySelector('td.inflight').dataset.n) })),
    tx: [...document.querySelectorAll('#tx tbody tr[data-id]')].map((tr) => tr.dataset.id),
    dlq: [...document.querySelectorAll('#dlq-table tbody tr[data-id]')].map((tr) => ({
      id: tr.dataset.id, kind: tr.querySelector('.kind').textContent, preview: tr.querySelector('pre').textContent })),
    dlqTotal: n(txt('dlq-total')),
  };
})()`

// TestIntegrationDashboard loads the admin dashboard in a real headless
// browser (Debian's chromium through chromedp) against a live broker with
// traffic: producers, an acking group, a group that NAKs with deliver limit
// 1 (dead letters), a consumer warming up, a prepared message. The numbers
// the page shows must be $KQ.ADMIN.STAT's; replay and delete on the page
// must re-queue (the consumer gets the message again) and discard a dead
// letter. A screenshot is kept as a test artifact.
func TestIntegrationDashboard(t *testing.T) {
	chrome := chromiumPath(t)
	began := time.Now()
	port := adminPort(t)
	b := NewBroker(t, "memory://")
	b.Args = []string{"-pport", port}
	b.Start()
	base := "http://127.0.0.1:" + port

	const topic = "trade"
	ok := startConsumer(t, b.URL(), consumerConfig{Group: "s-trade",
		Bindings: []binding{{Topic: topic, MessageType: "pay-succ", BindType: "direct", Persistent: true}}})
	// Warming up for 10 minutes, bound to a type nobody publishes: it shows
	// a warmup in progress and no backlog.
	warm := startConsumer(t, b.URL(), consumerConfig{Group: "s-warm", WarmupSec: 600,
		Bindings: []binding{{Topic: topic, MessageType: "refund", BindType: "direct", Persistent: true}}})
	// NAKs until acking is switched on: with a deliver limit of 1, every
	// message it NAKs is a dead letter of s-fail.
	var acking atomic.Bool
	fail := startConsumer(t, b.URL(), consumerConfig{Group: "s-fail",
		Bindings: []binding{{Topic: topic, MessageType: "pay-fail", BindType: "direct", Persistent: true}},
		Handle: func(c *Consumer, m *nats.Msg) {
			if acking.Load() {
				ackNow(c, m)
				return
			}
			_ = c.nc.Publish(m.Reply, []byte("-NAK"))
		}})

	nc, err := nats.Connect(b.URL(), nats.UserInfo("p-trade", ""))
	require.NoError(t, err)
	t.Cleanup(nc.Close)
	publish := func(msgType, id string, hdr nats.Header, body []byte) {
		t.Helper()
		if hdr == nil {
			hdr = nats.Header{}
		}
		hdr.Set("Kq-Msg-Id", id)
		msg, err := nc.RequestMsg(&nats.Msg{Subject: "kq." + topic + "." + msgType, Header: hdr, Data: body}, 5*time.Second)
		require.NoError(t, err)
		var ack pubAck
		require.NoError(t, json.Unmarshal(msg.Data, &ack), string(msg.Data))
		require.Nil(t, ack.Error, string(msg.Data))
	}

	// The browser.
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chrome), chromedp.NoSandbox, chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.WindowSize(1280, 1800))
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancelAlloc()
	bctx, cancelBrowser := chromedp.NewContext(actx, chromedp.WithLogf(t.Logf))
	defer cancelBrowser()
	ctx, cancel := context.WithTimeout(bctx, 3*time.Minute)
	defer cancel()
	browserStart := time.Now()
	require.NoError(t, chromedp.Do(ctx, chromedp.Navigate(base+"/dashboard")), "loading the dashboard")
	t.Logf("chromium started and loaded the page in %v", time.Since(browserStart).Round(time.Millisecond))

	read := func() pageState {
		t.Helper()
		p, err := chromedp.Run(ctx, chromedp.Evaluate[pageState](readPage))
		require.NoError(t, err)
		return p
	}
	waitPolls := func(n int) pageState {
		t.Helper()
		var p pageState
		waitFor(t, 30*time.Second, func() bool { p = read(); return p.Polls >= n }, "the page's poll %d", n)
		return p
	}
	p := waitPolls(1)
	require.Empty(t, p.Error, "the page's first poll")

	// Traffic for a few seconds while the page polls, so that its rate chart
	// has something to draw.
	var failIDs []string
	for i := range 40 {
		publish("pay-succ", newID(), nil, []byte(fmt.Sprintf(`{"order":%d,"amount":"12.50"}`, i)))
		if i%10 == 0 {
			id := newID()
			failIDs = append(failIDs, id)
			publish("pay-fail", id, nats.Header{"Kq-Deliver-Limit": {"1"}, "order": {fmt.Sprint(i)}},
				[]byte(fmt.Sprintf(`{"order":%d,"error":"card declined"}`, i)))
		}
		time.Sleep(100 * time.Millisecond)
	}
	binID := newID()
	failIDs = append(failIDs, binID)
	publish("pay-fail", binID, nats.Header{"Kq-Deliver-Limit": {"1"}}, []byte{0x00, 0x01, 0xfe, 0xff, 0x80})
	txID := newID()
	publish("pay-succ", txID, nats.Header{"Kq-Tx": {"prepare"}, "Kq-Group": {"p-trade"}}, []byte("prepared, not committed"))

	// Quiet: every pay-succ acked, every pay-fail dead.
	waitFor(t, 30*time.Second, func() bool {
		st := adminStat(t, nc)
		var inflight, pending int64
		for _, g := range st.Groups {
			inflight += g.Inflight
			pending += g.Pending
		}
		return inflight == 0 && pending == 0 && st.dead(topic, "s-fail") == int64(len(failIDs))
	}, "every pay-succ acked and %d dead letters", len(failIDs))

	// The page's numbers after two more polls are STAT's (nothing moves
	// now but the warmup and the prepared message's checks).
	before := adminStat(t, nc)
	p = waitPolls(read().Polls + 2) // the second began after this read
	after := adminStat(t, nc)
	require.Equal(t, before.Published, after.Published, "quiet")
	require.Equal(t, after.Published, p.Counters["published"])
	require.Equal(t, after.Delivered, p.Counters["delivered"])
	require.Equal(t, after.Acked, p.Counters["acked"])
	require.Equal(t, after.Nacked, p.Counters["nacked"])
	require.Equal(t, after.Prepares, p.Counters["prepares"])
	require.Equal(t, int64(len(failIDs)), p.Counters["dead"])
	require.Len(t, p.Groups, len(after.Groups))
	for i, g := range after.Groups {
		pg := p.Groups[i]
		require.Equal(t, [2]string{g.Topic, g.Group}, [2]string{pg.Topic, pg.Group})
		require.Equal(t, [3]int64{g.Pending, g.Inflight, g.Dead}, [3]int64{pg.Pending, pg.Inflight, pg.Dead}, "%s/%s", g.Topic, g.Group)
	}
	require.Len(t, p.Topics, len(after.Topics))
	for i, tp := range after.Topics {
		require.Equal(t, tp.Topic, p.Topics[i].Topic)
		require.Equal(t, [2]int64{tp.Messages, tp.Prepared}, [2]int64{p.Topics[i].Messages, p.Topics[i].Prepared}, tp.Topic)
	}
	require.Len(t, p.Consumers, len(after.Consumers))
	for i, c := range after.Consumers {
		pc := p.Consumers[i]
		require.Equal(t, c.ID, pc.ID)
		require.Equal(t, c.Inflight, pc.Inflight)
		require.GreaterOrEqual(t, pc.WarmupPct, before.Consumers[i].WarmupPct, "warmup of %s", c.ID)
		require.LessOrEqual(t, pc.WarmupPct, c.WarmupPct, "warmup of %s", c.ID)
		if c.ID == warm.ID {
			require.Equal(t, 600, c.WarmingupSec)
			require.Less(t, c.WarmupPct, 100, "still warming up")
			require.NotZero(t, c.Joined)
		} else {
			require.Equal(t, 100, c.WarmupPct, "no warmup: warm at once")
		}
	}
	require.Contains(t, p.Tx, txID, "the prepared message is listed")

	// The dead letters of s-fail, with their bodies.
	require.NoError(t, chromedp.Do(ctx, chromedp.Click(chromedp.CSS(`#groups tr[data-group="s-fail"] button.show-dlq`))))
	waitFor(t, 10*time.Second, func() bool { p = read(); return len(p.DLQ) == len(failIDs) }, "the dead letters listed")
	require.Equal(t, int64(len(failIDs)), p.DLQTotal)
	byID := map[string]int{}
	for i, d := range p.DLQ {
		byID[d.ID] = i
	}
	first := p.DLQ[byID[failIDs[0]]]
	require.Equal(t, "text", first.Kind)
	require.Contains(t, first.Preview, `"error":"card declined"`)
	require.Equal(t, "hex", p.DLQ[byID[binID]].Kind)
	require.Equal(t, "0001feff80", p.DLQ[byID[binID]].Preview)

	shot := artifactPath(t, "dashboard.png")
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(shot, png, 0o644))
	t.Logf("dashboard screenshot: %s (%d bytes)", shot, len(png))

	// Replay one: it is re-queued for s-fail, whose consumer now acks it.
	acking.Store(true)
	replayed := failIDs[0]
	require.NoError(t, chromedp.Do(ctx, chromedp.Click(chromedp.CSS(fmt.Sprintf(`#dlq-table tr[data-id="%s"] button.replay`, replayed)))))
	waitFor(t, 15*time.Second, func() bool { return fail.Seen()[replayed] == 2 }, "the replayed message delivered again")
	waitFor(t, 15*time.Second, func() bool { return adminStat(t, nc).dead(topic, "s-fail") == int64(len(failIDs)-1) }, "STAT's dead count to drop")
	waitFor(t, 10*time.Second, func() bool { p = read(); return p.DLQTotal == int64(len(failIDs)-1) }, "the page to list one dead letter less")
	for _, d := range p.DLQ {
		require.NotEqual(t, replayed, d.ID, "a replayed letter is no longer listed")
	}

	// Delete one: two clicks (the first arms the button); gone for good.
	deleted := failIDs[1]
	del := chromedp.CSS(fmt.Sprintf(`#dlq-table tr[data-id="%s"] button.delete`, deleted))
	require.NoError(t, chromedp.Do(ctx, chromedp.Click(del), chromedp.Click(del)))
	waitFor(t, 15*time.Second, func() bool { return adminStat(t, nc).dead(topic, "s-fail") == int64(len(failIDs)-2) }, "STAT's dead count to drop after the delete")
	waitFor(t, 10*time.Second, func() bool { p = read(); return p.DLQTotal == int64(len(failIDs)-2) }, "the page to list one dead letter less")
	time.Sleep(500 * time.Millisecond) // a delete must not deliver
	require.Equal(t, 1, fail.Seen()[deleted], "a deleted letter is not delivered again")
	require.Zero(t, ok.Seen()[txID], "the prepared message is delivered to nobody")

	p = waitPolls(read().Polls + 2)
	require.Equal(t, int64(len(failIDs)-2), p.Counters["dead"])
	require.Empty(t, p.Error, "no error on the page")
	png, err = chromedp.Run(ctx, chromedp.FullScreenshot(100))
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(artifactPath(t, "dashboard-after.png"), png, 0o644))
	t.Logf("browser test took %v", time.Since(began).Round(time.Millisecond))
}

// TestIntegrationDashboardSecrets: in secrets mode the dashboard and its
// data answer 401 without the admin secret and serve it with it; /healthz
// stays open.
func TestIntegrationDashboardSecrets(t *testing.T) {
	conf := filepath.Join(t.TempDir(), "kitenats.toml")
	require.NoError(t, os.WriteFile(conf, []byte(`[clusters.default_dev]
adminSecret = "adm1n"
[clusters.default_dev.secrets]
s-trade = "s3cret"
`), 0o600))
	port := adminPort(t)
	b := NewBroker(t, "memory://")
	b.Args = []string{"-pport", port, "-configPath", conf}
	b.launch() // Start's readiness call has no secret: wait for /healthz instead
	base := "http://127.0.0.1:" + port
	client := &http.Client{Timeout: 5 * time.Second}
	defer client.CloseIdleConnections()
	do := func(path, user, pass string) (int, error) {
		req, err := http.NewRequest("GET", base+path, nil)
		require.NoError(t, err)
		if user != "" {
			req.SetBasicAuth(user, pass)
		}
		resp, err := client.Do(req)
		if err != nil {
			return 0, err
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		_ = resp.Body.Close()
		return resp.StatusCode, nil
	}
	waitFor(t, 60*time.Second, func() bool {
		b.RequireRunning()
		code, err := do("/healthz", "", "")
		return err == nil && code == http.StatusOK
	}, "the broker's /healthz")
	get := func(path, user, pass string) int {
		t.Helper()
		code, err := do(path, user, pass)
		require.NoError(t, err)
		return code
	}
	for _, path := range []string{"/dashboard", "/api/stat", "/api/tx", "/api/dlq?topic=trade&group=s-trade"} {
		require.Equal(t, http.StatusUnauthorized, get(path, "", ""), path)
		require.Equal(t, http.StatusUnauthorized, get(path, "admin", "s3cret"), "a group's secret is not the admin's: %s", path)
		require.Equal(t, http.StatusOK, get(path, "admin", "adm1n"), path)
	}
	require.Equal(t, http.StatusOK, get("/stat", "", ""), "the other endpoints are unchanged")
}
