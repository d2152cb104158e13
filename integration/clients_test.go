//go:build integration

package integration

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	_ "github.com/go-sql-driver/mysql" // DROP the databases a test created
	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/require"
	"golang.org/x/time/rate"
)

// storeMode is one store configuration the durability tests run against.
type storeMode struct {
	name string
	uri  func(t *testing.T) string // a fresh store for t
}

var storeModes = []storeMode{
	{"rocksdb-async", func(t *testing.T) string { return "rocksdb://" + t.TempDir() + "?durability=async" }},
	{"rocksdb-sync", func(t *testing.T) string { return "rocksdb://" + t.TempDir() + "?durability=sync" }},
	{"mysql", mysqlStore},
}

var mysqlCounter atomic.Int64

// mysqlStore returns the URI of a fresh MySQL store (a database prefix no
// other test uses) and drops its databases when the test ends. Without
// KITENATS_MYSQL_ADDR it skips, or fails when CI is set.
func mysqlStore(t *testing.T) string {
	t.Helper()
	addr := os.Getenv("KITENATS_MYSQL_ADDR")
	if addr == "" {
		if os.Getenv("CI") != "" {
			t.Fatal("KITENATS_MYSQL_ADDR is not set: CI must run the MySQL integration tests (scripts/mariadb.sh start DIR 13306; KITENATS_MYSQL_ADDR=127.0.0.1:13306)")
		}
		t.Skip("KITENATS_MYSQL_ADDR is not set: start a server with `scripts/mariadb.sh start /tmp/it-mysql 13306` and export KITENATS_MYSQL_ADDR=127.0.0.1:13306")
	}
	name := fmt.Sprintf("knit%d_%d", os.Getpid(), mysqlCounter.Add(1))
	t.Cleanup(func() { dropMySQL(t, addr, name) })
	return fmt.Sprintf("mysql://%s?db=%s&username=root", addr, name)
}

// dropMySQL drops every database named <prefix>_*: tables first, in
// parallel (DROP DATABASE alone drops them one by one, much slower).
func dropMySQL(t *testing.T, addr, prefix string) {
	t.Helper()
	db, err := sql.Open("mysql", "root@tcp("+addr+")/")
	if err != nil {
		t.Errorf("mysql cleanup: %v", err)
		return
	}
	defer func() { _ = db.Close() }()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	like := prefix + `\_%`
	rows, err := db.QueryContext(ctx, "SELECT table_schema, table_name FROM information_schema.tables WHERE table_schema LIKE ?", like)
	if err != nil {
		t.Errorf("mysql cleanup: %v", err)
		return
	}
	var tables []string
	for rows.Next() {
		var s, n string
		if err := rows.Scan(&s, &n); err != nil {
			t.Errorf("mysql cleanup: %v", err)
		}
		tables = append(tables, fmt.Sprintf("`%s`.`%s`", s, n))
	}
	_ = rows.Close()
	work := make(chan string)
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for tb := range work {
				if _, err := db.ExecContext(ctx, "DROP TABLE IF EXISTS "+tb); err != nil {
					t.Errorf("mysql cleanup: %v", err)
				}
			}
		}()
	}
	for _, tb := range tables {
		work <- tb
	}
	close(work)
	wg.Wait()
	rows, err = db.QueryContext(ctx, "SELECT schema_name FROM information_schema.schemata WHERE schema_name LIKE ?", like)
	if err != nil {
		t.Errorf("mysql cleanup: %v", err)
		return
	}
	var dbs []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			t.Errorf("mysql cleanup: %v", err)
		}
		dbs = append(dbs, s)
	}
	_ = rows.Close()
	for _, s := range dbs {
		if _, err := db.ExecContext(ctx, "DROP DATABASE IF EXISTS `"+s+"`"); err != nil {
			t.Errorf("mysql cleanup: %v", err)
		}
	}
}

// idPrefix makes this process's message ids unique across runs.
var idPrefix = func() uint64 {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return binary.BigEndian.Uint64(b[:])
}()

var idCounter atomic.Uint64

// newID returns a fresh Kq-Msg-Id: 32 lower-case hex digits.
func newID() string { return fmt.Sprintf("%016x%016x", idPrefix, idCounter.Add(1)) }

// waitFor polls cond every 20 ms until it holds, or fails the test.
func waitFor(t *testing.T, timeout time.Duration, cond func() bool, what string, args ...any) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for "+what, append([]any{timeout}, args...)...)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// apiError is the error object of every error reply.
type apiError struct {
	Code        int    `json:"code"`
	ErrCode     int    `json:"err_code"`
	Description string `json:"description"`
}

// pubAck is the reply to a publish with a reply subject.
type pubAck struct {
	Stream    string    `json:"stream"`
	Seq       uint64    `json:"seq"`
	Duplicate bool      `json:"duplicate"`
	ID        string    `json:"id"`
	Error     *apiError `json:"error"`
}

// pubLog records what a load sent and which publishes were acknowledged.
type pubLog struct {
	mu        sync.Mutex
	attempted map[string]bool
	acked     map[string]bool
	dupAcks   int            // acks saying duplicate (we never resend an id)
	errs      map[string]int // failure kind → count
	lats      []time.Duration
	lastAck   time.Time
	ackAt     map[string]time.Time // id → when its ack arrived
}

func newPubLog() *pubLog {
	return &pubLog{attempted: map[string]bool{}, acked: map[string]bool{}, errs: map[string]int{}, ackAt: map[string]time.Time{}}
}

// lastAckAt returns when the last successful ack arrived.
func (p *pubLog) lastAckAt() time.Time {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.lastAck
}

func (p *pubLog) ackedCount() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.acked)
}

// snapshot returns copies of the attempted and acknowledged ids.
func (p *pubLog) snapshot() (attempted, acked map[string]bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	attempted = make(map[string]bool, len(p.attempted))
	for k := range p.attempted {
		attempted[k] = true
	}
	acked = make(map[string]bool, len(p.acked))
	for k := range p.acked {
		acked[k] = true
	}
	return attempted, acked
}

func (p *pubLog) errorKinds() map[string]int {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make(map[string]int, len(p.errs))
	for k, v := range p.errs {
		out[k] = v
	}
	return out
}

// latencies returns the sorted latencies of every answered request.
func (p *pubLog) latencies() []time.Duration {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := append([]time.Duration(nil), p.lats...)
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}

func percentile(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	return sorted[min(len(sorted)-1, int(q*float64(len(sorted))))]
}

// loadConfig shapes a publish load.
type loadConfig struct {
	Subject    string
	Publishers int           // connections
	Window     int           // requests in flight per publisher
	Timeout    time.Duration // per request
	Rate       float64       // msgs/s over all publishers; 0: as fast as acks come back
	Max        int           // attempts in all: the load's bound
	Body       []byte
}

// startLoad runs cfg.Publishers connections, each with cfg.Window requests
// in flight, every one with a fresh Kq-Msg-Id, until stop is called, Max
// attempts were made, or the connection closed (the broker died). stop
// waits for every request to end.
func startLoad(t *testing.T, url string, cfg loadConfig, log *pubLog) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var lim *rate.Limiter
	if cfg.Rate > 0 {
		lim = rate.NewLimiter(rate.Limit(cfg.Rate), max(1, int(cfg.Rate/50)))
	}
	var budget atomic.Int64
	budget.Store(int64(cfg.Max))
	var wg sync.WaitGroup
	var conns []*nats.Conn
	for p := range cfg.Publishers {
		nc, err := nats.Connect(url, nats.NoReconnect(), nats.Name(fmt.Sprintf("publisher-%d", p)))
		require.NoError(t, err)
		conns = append(conns, nc)
		for range cfg.Window {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for ctx.Err() == nil && budget.Add(-1) >= 0 {
					if lim != nil && lim.Wait(ctx) != nil {
						return
					}
					if !publishOne(nc, cfg, log) {
						return
					}
				}
			}()
		}
	}
	var once sync.Once
	return func() {
		once.Do(func() {
			cancel()
			wg.Wait()
			for _, nc := range conns {
				nc.Close()
			}
		})
	}
}

// publishOne sends one acknowledged publish and records the outcome. It
// returns false once the connection is closed.
func publishOne(nc *nats.Conn, cfg loadConfig, log *pubLog) bool {
	id := newID()
	log.mu.Lock()
	log.attempted[id] = true
	log.mu.Unlock()
	start := time.Now()
	msg, err := nc.RequestMsg(&nats.Msg{Subject: cfg.Subject, Header: nats.Header{"Kq-Msg-Id": {id}}, Data: cfg.Body}, cfg.Timeout)
	lat := time.Since(start)
	var kind string
	var ack pubAck
	switch {
	case errors.Is(err, nats.ErrTimeout):
		kind = "timeout"
	case errors.Is(err, nats.ErrConnectionClosed):
		kind = "connection closed"
	case errors.Is(err, nats.ErrNoResponders):
		kind = "no responders"
	case err != nil:
		kind = err.Error()
	default:
		if jerr := json.Unmarshal(msg.Data, &ack); jerr != nil {
			kind = fmt.Sprintf("bad reply %q", msg.Data)
		} else if ack.Error != nil {
			kind = fmt.Sprintf("error %d", ack.Error.Code)
		} else if ack.ID != id || ack.Stream == "" || ack.Seq == 0 {
			kind = fmt.Sprintf("bad ack %s for %s", msg.Data, id)
		}
	}
	log.mu.Lock()
	defer log.mu.Unlock()
	if err == nil {
		log.lats = append(log.lats, lat)
	}
	if kind != "" {
		log.errs[kind]++
		// No responders: the broker stopped taking publishes (shutdown).
		return !nc.IsClosed() && !errors.Is(err, nats.ErrNoResponders)
	}
	log.acked[id] = true
	log.lastAck = time.Now()
	log.ackAt[id] = log.lastAck
	if ack.Duplicate {
		log.dupAcks++
	}
	return true
}

// binding is one KiteQ binding as BIND takes it.
type binding struct {
	Topic       string `json:"topic"`
	MessageType string `json:"messageType"`
	BindType    string `json:"bindType"`
	Persistent  bool   `json:"persistent"`
}

// consumerConfig describes a consumer: one connection of group, one deliver
// subscription, one BIND.
type consumerConfig struct {
	Group       string
	Bindings    []binding // nil: BIND with "bindings":[] (the group's stored set)
	MaxInflight int
	AckWait     time.Duration
	WarmupSec   int // warmingupSec of the BIND (0: none)
	// Handle runs for each delivery, in order, on the subscription's
	// goroutine. Default: ackNow.
	Handle func(c *Consumer, m *nats.Msg)
	// Abrupt connects through a dialer that Kill can reset, so that the
	// broker sees the TCP connection die without a goodbye.
	Abrupt bool
}

// Consumer is a live consumer of a group and a record of what it got.
type Consumer struct {
	t      *testing.T
	nc     *nats.Conn
	dialer *rawDialer
	ID     string

	mu         sync.Mutex
	first      map[string]time.Time // id → first arrival
	seen       map[string]int       // id → deliveries
	maxAttempt map[string]int       // id → highest Kq-Deliver-Count
	times      []time.Time          // arrival of every delivery
	confirmed  map[string]bool      // +ACK answered with success
	ackSent    map[string]bool      // +ACK sent, answered or not
	held       int
	last       time.Time
}

// startConsumer connects, subscribes and binds, and fails the test if BIND
// does not answer with a consumer id.
func startConsumer(t *testing.T, url string, cfg consumerConfig) *Consumer {
	t.Helper()
	c := &Consumer{
		t: t, first: map[string]time.Time{}, seen: map[string]int{}, maxAttempt: map[string]int{},
		confirmed: map[string]bool{}, ackSent: map[string]bool{},
	}
	opts := []nats.Option{nats.UserInfo(cfg.Group, ""), nats.NoReconnect(), nats.Name("consumer-" + cfg.Group)}
	if cfg.Abrupt {
		c.dialer = &rawDialer{}
		opts = append(opts, nats.SetCustomDialer(c.dialer))
	}
	nc, err := nats.Connect(url, opts...)
	require.NoError(t, err)
	c.nc = nc
	t.Cleanup(nc.Close)
	handle := cfg.Handle
	if handle == nil {
		handle = ackNow
	}
	deliver := "$KQ.DLV." + cfg.Group + "." + nats.NewInbox()[len("_INBOX."):]
	sub, err := nc.Subscribe(deliver, func(m *nats.Msg) {
		id := m.Header.Get("Kq-Msg-Id")
		var attempt int
		_, _ = fmt.Sscan(m.Header.Get("Kq-Deliver-Count"), &attempt)
		now := time.Now()
		c.mu.Lock()
		if _, ok := c.first[id]; !ok {
			c.first[id] = now
		}
		c.seen[id]++
		c.maxAttempt[id] = max(c.maxAttempt[id], attempt)
		c.times = append(c.times, now)
		c.last = now
		c.mu.Unlock()
		handle(c, m)
	})
	require.NoError(t, err)
	require.NoError(t, sub.SetPendingLimits(-1, -1))
	bs := cfg.Bindings
	if bs == nil {
		bs = []binding{}
	}
	req := map[string]any{"deliver": deliver, "bindings": bs}
	if cfg.MaxInflight > 0 {
		req["maxInflight"] = cfg.MaxInflight
	}
	if cfg.AckWait > 0 {
		req["ackWait"] = int64(cfg.AckWait)
	}
	if cfg.WarmupSec > 0 {
		req["warmingupSec"] = cfg.WarmupSec
	}
	body, err := json.Marshal(req)
	require.NoError(t, err)
	msg, err := nc.Request("$KQ.API.BIND."+cfg.Group, body, 10*time.Second)
	require.NoError(t, err, "BIND %s", body)
	var r struct {
		Consumer string    `json:"consumer"`
		Error    *apiError `json:"error"`
	}
	require.NoError(t, json.Unmarshal(msg.Data, &r), string(msg.Data))
	require.Nil(t, r.Error, "BIND %s: %s", body, msg.Data)
	require.NotEmpty(t, r.Consumer)
	c.ID = r.Consumer
	return c
}

// ackNow acknowledges at once, without waiting for the answer.
func ackNow(c *Consumer, m *nats.Msg) {
	c.mu.Lock()
	c.ackSent[m.Header.Get("Kq-Msg-Id")] = true
	c.mu.Unlock()
	_ = c.nc.Publish(m.Reply, []byte("+ACK"))
}

// ackConfirmed returns a handler that works for delay, then acknowledges
// with a request: an empty answer means the ack is durable (the contract),
// and the id is recorded as confirmed.
func ackConfirmed(delay time.Duration) func(c *Consumer, m *nats.Msg) {
	return func(c *Consumer, m *nats.Msg) {
		if delay > 0 {
			time.Sleep(delay) // the consumer's work
		}
		id := m.Header.Get("Kq-Msg-Id")
		c.mu.Lock()
		c.ackSent[id] = true
		c.mu.Unlock()
		r, err := c.nc.Request(m.Reply, []byte("+ACK"), 3*time.Second)
		if err == nil && len(r.Data) == 0 {
			c.mu.Lock()
			c.confirmed[id] = true
			c.mu.Unlock()
		}
	}
}

// hold keeps the delivery without ever answering it.
func hold(c *Consumer, _ *nats.Msg) {
	c.mu.Lock()
	c.held++
	c.mu.Unlock()
}

// Seen returns a copy of id → number of deliveries.
func (c *Consumer) Seen() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(map[string]int, len(c.seen))
	for k, v := range c.seen {
		out[k] = v
	}
	return out
}

// Deliveries returns how many deliveries arrived.
func (c *Consumer) Deliveries() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.times)
}

// Times returns a copy of the arrival times.
func (c *Consumer) Times() []time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]time.Time(nil), c.times...)
}

// Confirmed returns a copy of the ids whose +ACK was answered with success.
func (c *Consumer) Confirmed() map[string]bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(map[string]bool, len(c.confirmed))
	for k := range c.confirmed {
		out[k] = true
	}
	return out
}

// AckSent returns a copy of the ids an +ACK was sent for.
func (c *Consumer) AckSent() map[string]bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(map[string]bool, len(c.ackSent))
	for k := range c.ackSent {
		out[k] = true
	}
	return out
}

// Drain waits until no delivery arrived for quiet, and at least atLeast
// has passed; it fails the test if deliveries still flow after atMost.
// It returns how long it waited.
func (c *Consumer) Drain(quiet, atLeast, atMost time.Duration) time.Duration {
	c.t.Helper()
	start := time.Now()
	for {
		time.Sleep(50 * time.Millisecond) // polling the consumer's record
		c.mu.Lock()
		last := c.last
		c.mu.Unlock()
		if last.Before(start) {
			last = start
		}
		now := time.Now()
		if now.Sub(last) >= quiet && now.Sub(start) >= atLeast {
			return now.Sub(start)
		}
		if now.Sub(start) > atMost {
			c.t.Errorf("deliveries still arriving after %v", atMost)
			return now.Sub(start)
		}
	}
}

// Close closes the connection politely.
func (c *Consumer) Close() { c.nc.Close() }

// Kill resets the consumer's TCP connection (SO_LINGER 0: an RST, no
// goodbye) and waits until the client knows it is closed.
func (c *Consumer) Kill() {
	c.t.Helper()
	require.NotNil(c.t, c.dialer, "Kill needs consumerConfig.Abrupt")
	c.dialer.kill()
	waitFor(c.t, 5*time.Second, c.nc.IsClosed, "the killed consumer's connection to close")
}

// rawDialer keeps the TCP connections it dials so that they can be reset.
type rawDialer struct {
	mu    sync.Mutex
	conns []net.Conn
}

func (d *rawDialer) Dial(network, address string) (net.Conn, error) {
	c, err := (&net.Dialer{Timeout: 2 * time.Second}).Dial(network, address)
	if err == nil {
		d.mu.Lock()
		d.conns = append(d.conns, c)
		d.mu.Unlock()
	}
	return c, err
}

func (d *rawDialer) kill() {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, c := range d.conns {
		if tc, ok := c.(*net.TCPConn); ok {
			_ = tc.SetLinger(0)
		}
		_ = c.Close()
	}
}

// statReply is $KQ.API.STAT's answer, the parts we read.
type statReply struct {
	Groups []struct {
		Topic    string `json:"topic"`
		Group    string `json:"groupId"`
		Pending  int64  `json:"pending"`
		Inflight int64  `json:"inflight"`
		Dead     int64  `json:"dead"`
	} `json:"groups"`
	Consumers   []json.RawMessage `json:"consumers"`
	Published   int64             `json:"published"`
	Refused     int64             `json:"refused"`
	Dropped     int64             `json:"dropped"`
	Delivered   int64             `json:"delivered"`
	Redelivered int64             `json:"redelivered"`
	Acked       int64             `json:"acked"`
	Timeouts    int64             `json:"timeouts"`
	WriteQueue  int               `json:"writeQueue"`
	Error       *apiError         `json:"error"`
}

// stat asks $KQ.API.STAT once.
func stat(nc *nats.Conn, timeout time.Duration) (*statReply, time.Duration, error) {
	start := time.Now()
	msg, err := nc.Request("$KQ.API.STAT", nil, timeout)
	took := time.Since(start)
	if err != nil {
		return nil, took, err
	}
	var s statReply
	if err := json.Unmarshal(msg.Data, &s); err != nil {
		return nil, took, fmt.Errorf("STAT reply %q: %w", msg.Data, err)
	}
	if s.Error != nil {
		return nil, took, fmt.Errorf("STAT: %d %s", s.Error.Code, s.Error.Description)
	}
	return &s, took, nil
}

// group returns the (pending, inflight) of (topic, group).
func (s *statReply) group(topic, group string) (pending, inflight int64) {
	for _, g := range s.Groups {
		if g.Topic == topic && g.Group == group {
			return g.Pending, g.Inflight
		}
	}
	return 0, 0
}

// mustStat connects and asks STAT, failing the test on error.
func mustStat(t *testing.T, url string) *statReply {
	t.Helper()
	nc, err := nats.Connect(url, nats.NoReconnect())
	require.NoError(t, err)
	defer nc.Close()
	s, _, err := stat(nc, 5*time.Second)
	require.NoError(t, err)
	return s
}

// lossReport compares acknowledged publishes with what consumers got. It
// returns the acknowledged ids no consumer got, sorted, and the figures.
func lossReport(attempted, acked map[string]bool, consumers ...*Consumer) (missing []string, unique, total, dups, phantom int) {
	all := map[string]int{}
	for _, c := range consumers {
		for id, n := range c.Seen() {
			all[id] += n
		}
	}
	for id, n := range all {
		unique++
		total += n
		if !attempted[id] {
			phantom++
		}
	}
	dups = total - unique
	for id := range acked {
		if all[id] == 0 {
			missing = append(missing, id)
		}
	}
	sort.Strings(missing)
	return missing, unique, total, dups, phantom
}

// sample returns up to n items of ids, for failure messages.
func sample(ids []string, n int) string {
	if len(ids) > n {
		return strings.Join(ids[:n], " ") + fmt.Sprintf(" … (%d more)", len(ids)-n)
	}
	return strings.Join(ids, " ")
}

// body returns an n-byte payload.
func body(n int) []byte { return []byte(strings.Repeat("k", n)) }
