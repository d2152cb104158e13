package admin_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kitenats/kitenats/admin"
)

// fakeDash is a Source with the Dashboard's methods: it keeps dead letters
// of one (topic, group) and records the actions.
type fakeDash struct {
	fakeSource
	mu      sync.Mutex
	letters []admin.DeadLetter
	actions []string
	refuse  error // returned by the actions when set
}

func (f *fakeDash) DeadLetters(_ context.Context, topic, group string, offset, limit int) (int, []admin.DeadLetter, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var all []admin.DeadLetter
	for _, l := range f.letters {
		if l.Topic == topic && l.Group == group {
			all = append(all, l)
		}
	}
	if offset >= len(all) {
		return len(all), nil, nil
	}
	return len(all), all[offset:min(len(all), offset+limit)], nil
}

func (f *fakeDash) act(what, topic, id, group string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.refuse != nil {
		return f.refuse
	}
	f.actions = append(f.actions, what+" "+topic+" "+id+" "+group)
	return nil
}

func (f *fakeDash) Replay(_ context.Context, topic, id, group string) error {
	return f.act("replay", topic, id, group)
}

func (f *fakeDash) DeleteDead(_ context.Context, topic, id, group string) error {
	return f.act("delete", topic, id, group)
}

func (f *fakeDash) PreparedTxs(_ context.Context, offset, limit int) (int, json.RawMessage, error) {
	return 1, json.RawMessage(`[{"topic":"trade","id":"00ff","ageSeconds":42,"checks":3}]`), nil
}

// dashServer runs an admin server over src until the test ends.
func dashServer(t *testing.T, secret string, src admin.Source) (base string, client *http.Client) {
	t.Helper()
	s, err := admin.New(admin.Config{Addr: "127.0.0.1:0", AdminSecret: secret}, src)
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	client = &http.Client{Transport: &http.Transport{}, Timeout: 10 * time.Second}
	t.Cleanup(func() {
		client.CloseIdleConnections()
		cancel()
		require.NoError(t, <-done)
	})
	return "http://" + s.Addr().String(), client
}

// call sends one request; user "" sends no credentials; csrf sets the
// dashboard's header.
func call(t *testing.T, c *http.Client, method, url, user, pass string, csrf bool, body string) (int, http.Header, string) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, url, rd)
	require.NoError(t, err)
	if user != "" {
		req.SetBasicAuth(user, pass)
	}
	if csrf {
		req.Header.Set("X-Kitenats", "1")
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.Do(req)
	require.NoError(t, err)
	defer func() { _ = resp.Body.Close() }()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, resp.Header, string(b)
}

// TestDashboardPage: the page and its assets are embedded and served,
// / leads to it, and nothing it loads comes from elsewhere.
func TestDashboardPage(t *testing.T) {
	base, c := dashServer(t, "", &fakeDash{})
	code, hd, body := call(t, c, "GET", base+"/dashboard", "", "", false, "")
	require.Equal(t, 200, code)
	require.Contains(t, hd.Get("Content-Type"), "text/html")
	require.Contains(t, hd.Get("Content-Security-Policy"), "default-src 'self'")
	require.Contains(t, body, `src="/dashboard/app.js"`)
	require.Contains(t, body, `<canvas id="chart-rates"`)
	require.NotContains(t, body, "http://", "no CDN: everything is served here")
	require.NotContains(t, body, "https://")
	for _, f := range []string{"app.js", "style.css"} {
		code, _, body := call(t, c, "GET", base+"/dashboard/"+f, "", "", false, "")
		require.Equal(t, 200, code, f)
		require.NotContains(t, body, "https://", f)
	}
	code, _, body = call(t, c, "GET", base+"/dashboard/", "", "", false, "")
	require.Equal(t, 200, code)
	require.Contains(t, body, `src="/dashboard/app.js"`)
	code, _, _ = call(t, c, "GET", base+"/dashboard/nothing.js", "", "", false, "")
	require.Equal(t, 404, code)

	noRedirect := &http.Client{Transport: c.Transport, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	code, hd, _ = call(t, noRedirect, "GET", base+"/", "", "", false, "")
	require.Equal(t, http.StatusFound, code)
	require.Equal(t, "/dashboard", hd.Get("Location"))
}

// TestDashboardAuth: with an admin secret (secrets mode) every dashboard
// route answers 401 without it, with a wrong one or another user, and
// serves the admin; the other endpoints stay open. Without a secret the
// dashboard is open.
func TestDashboardAuth(t *testing.T) {
	src := &fakeDash{letters: []admin.DeadLetter{{ID: "a1", Topic: "trade", Group: "s-trade", Body: []byte("x")}}}
	base, c := dashServer(t, "s3cret", src)
	routes := []struct{ method, path, body string }{
		{"GET", "/dashboard", ""},
		{"GET", "/dashboard/", ""},
		{"GET", "/dashboard/app.js", ""},
		{"GET", "/api/stat", ""},
		{"GET", "/api/binds", ""},
		{"GET", "/api/dlq?topic=trade&group=s-trade", ""},
		{"GET", "/api/tx", ""},
		{"POST", "/api/dlq/replay", `{"topic":"trade","id":"a1","groupId":"s-trade"}`},
		{"POST", "/api/dlq/delete", `{"topic":"trade","id":"a1","groupId":"s-trade"}`},
	}
	for _, r := range routes {
		for _, cred := range [][2]string{{"", ""}, {"admin", "wrong"}, {"admin", "s3cret "}, {"s-trade", "s3cret"}, {"admin", ""}} {
			code, hd, _ := call(t, c, r.method, base+r.path, cred[0], cred[1], true, r.body)
			require.Equal(t, http.StatusUnauthorized, code, "%s %s as %q", r.method, r.path, cred)
			require.Contains(t, hd.Get("WWW-Authenticate"), `Basic realm="kitenats admin"`)
		}
		code, _, body := call(t, c, r.method, base+r.path, "admin", "s3cret", true, r.body)
		require.Equal(t, http.StatusOK, code, "%s %s: %s", r.method, r.path, body)
	}
	require.Equal(t, []string{"replay trade a1 s-trade", "delete trade a1 s-trade"}, src.actions, "only the admin's actions ran")
	for _, p := range []string{"/stat", "/binds", "/healthz", "/metrics"} {
		code, _, _ := call(t, c, "GET", base+p, "", "", false, "")
		require.Equal(t, 200, code, "%s is unchanged", p)
	}

	open, oc := dashServer(t, "", src)
	for _, r := range routes {
		code, _, body := call(t, oc, r.method, open+r.path, "", "", true, r.body)
		require.Equal(t, http.StatusOK, code, "open mode: %s %s: %s", r.method, r.path, body)
	}
}

// TestDashboardCSRF: an action without the dashboard's header, or not a
// POST, changes nothing.
func TestDashboardCSRF(t *testing.T) {
	src := &fakeDash{}
	base, c := dashServer(t, "s3cret", src)
	body := `{"topic":"trade","id":"a1","groupId":"s-trade"}`
	for _, p := range []string{"/api/dlq/replay", "/api/dlq/delete"} {
		code, _, msg := call(t, c, "POST", base+p, "admin", "s3cret", false, body)
		require.Equal(t, http.StatusForbidden, code, p)
		require.Contains(t, msg, "X-Kitenats")
		code, _, _ = call(t, c, "GET", base+p, "admin", "s3cret", true, "")
		require.Equal(t, http.StatusMethodNotAllowed, code, p)
	}
	for _, bad := range []string{``, `{"topic":"trade","id":"a1"}`, `{"topic":"trade","id":"a1","groupId":"g","x":1}`, `not json`} {
		code, _, _ := call(t, c, "POST", base+"/api/dlq/replay", "admin", "s3cret", true, bad)
		require.Equal(t, http.StatusBadRequest, code, bad)
	}
	require.Empty(t, src.actions)

	src.refuse = &admin.Refusal{Status: http.StatusConflict, Err: errors.New("kq: stale")}
	code, _, msg := call(t, c, "POST", base+"/api/dlq/replay", "admin", "s3cret", true, body)
	require.Equal(t, http.StatusConflict, code, "a refusal keeps its status")
	require.Contains(t, msg, "kq: stale")
	src.refuse = errors.New("disk on fire")
	code, _, _ = call(t, c, "POST", base+"/api/dlq/delete", "admin", "s3cret", true, body)
	require.Equal(t, http.StatusInternalServerError, code)
}

// TestDashboardDeadLetters: /api/dlq pages a group's dead letters with a
// preview of each body: text when printable UTF-8, else hex, capped.
func TestDashboardDeadLetters(t *testing.T) {
	long := strings.Repeat("é", admin.PreviewBytes) // 2 bytes each: the cap splits one
	src := &fakeDash{letters: []admin.DeadLetter{
		{ID: "t1", Topic: "trade", Group: "s-trade", MessageType: "pay", Reason: "deliver limit", At: time.Unix(1700000000, 0),
			Properties: map[string]string{"order": "42"}, Body: []byte("hello\n<b>world</b>")},
		{ID: "b1", Topic: "trade", Group: "s-trade", Body: []byte{0, 1, 0xfe, 0xff}},
		{ID: "l1", Topic: "trade", Group: "s-trade", Body: []byte(long)},
		{ID: "c1", Topic: "trade", Group: "s-trade", Body: []byte("bell\x07")},
		{ID: "o1", Topic: "trade", Group: "other", Body: []byte("x")},
	}}
	base, c := dashServer(t, "", src)
	type item struct {
		ID         string            `json:"id"`
		Reason     string            `json:"reason"`
		At         int64             `json:"at"`
		Size       int               `json:"size"`
		Properties map[string]string `json:"properties"`
		Preview    struct {
			Encoding  string `json:"encoding"`
			Data      string `json:"data"`
			Truncated bool   `json:"truncated"`
		} `json:"preview"`
	}
	var page struct {
		Total, Offset, Limit int
		Items                []item
	}
	code, _, body := call(t, c, "GET", base+"/api/dlq?topic=trade&group=s-trade", "", "", false, "")
	require.Equal(t, 200, code, body)
	require.NoError(t, json.Unmarshal([]byte(body), &page))
	require.Equal(t, 4, page.Total)
	require.Equal(t, 20, page.Limit, "the default page")
	require.Len(t, page.Items, 4)
	text, bin, lng, ctl := page.Items[0], page.Items[1], page.Items[2], page.Items[3]
	require.Equal(t, "text", text.Preview.Encoding)
	require.Equal(t, "hello\n<b>world</b>", text.Preview.Data)
	require.False(t, text.Preview.Truncated)
	require.Equal(t, int64(1700000000), text.At)
	require.Equal(t, map[string]string{"order": "42"}, text.Properties)
	require.Equal(t, "hex", bin.Preview.Encoding)
	require.Equal(t, "0001feff", bin.Preview.Data)
	require.Equal(t, 4, bin.Size)
	require.Equal(t, "text", lng.Preview.Encoding)
	require.True(t, lng.Preview.Truncated)
	require.Equal(t, strings.Repeat("é", admin.PreviewBytes/2), lng.Preview.Data, "cut at a rune")
	require.Equal(t, 2*admin.PreviewBytes, lng.Size)
	require.Equal(t, "hex", ctl.Preview.Encoding, "a control character is not text")

	code, _, body = call(t, c, "GET", base+"/api/dlq?topic=trade&group=s-trade&offset=1&limit=2", "", "", false, "")
	require.Equal(t, 200, code, body)
	require.NoError(t, json.Unmarshal([]byte(body), &page))
	require.Equal(t, []string{"b1", "l1"}, []string{page.Items[0].ID, page.Items[1].ID})
	code, _, body = call(t, c, "GET", base+"/api/dlq?topic=trade&group=s-trade&offset=9", "", "", false, "")
	require.Equal(t, 200, code, body)
	require.Contains(t, body, `"items": []`)

	for _, q := range []string{"topic=trade", "group=s-trade", "topic=trade&group=g&offset=-1", "topic=trade&group=g&limit=0", "topic=trade&group=g&limit=x"} {
		code, _, _ := call(t, c, "GET", base+"/api/dlq?"+q, "", "", false, "")
		require.Equal(t, http.StatusBadRequest, code, q)
	}

	code, _, body = call(t, c, "GET", base+"/api/tx", "", "", false, "")
	require.Equal(t, 200, code)
	require.Contains(t, body, `"ageSeconds": 42`)
	require.Contains(t, body, `"total": 1`)
}

// TestDashboardWithoutSource: a Source without the Dashboard's methods
// still gets the page and the stat; the rest answers 501.
func TestDashboardWithoutSource(t *testing.T) {
	base, c := dashServer(t, "", fakeSource{})
	code, _, _ := call(t, c, "GET", base+"/api/stat", "", "", false, "")
	require.Equal(t, 200, code)
	code, _, _ = call(t, c, "GET", base+"/api/dlq?topic=a&group=b", "", "", false, "")
	require.Equal(t, http.StatusNotImplemented, code)
	code, _, _ = call(t, c, "GET", base+"/api/tx", "", "", false, "")
	require.Equal(t, http.StatusNotImplemented, code)
	code, _, _ = call(t, c, "POST", base+"/api/dlq/replay", "", "", true, `{"topic":"a","id":"b","groupId":"c"}`)
	require.Equal(t, http.StatusNotImplemented, code)
}
