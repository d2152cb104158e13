package bench

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"runtime/pprof"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/kitenats/kitenats/bridge"
	"github.com/kitenats/kitenats/config"
	"github.com/kitenats/kitenats/daemon"
)

// benchConfig is one benchmark workload.
type benchConfig struct {
	Msgs      int
	Duration  time.Duration // when > 0, publish for this long instead of Msgs
	Size      int
	Pubs      int
	Consumers int
	Groups    int
	Pending   int    // publishes awaiting their ack, per publisher
	DB        string // store URI of the broker under test
	Store     string // what the workload line says of the store
	tempDir   string // when DB is the default temporary RocksDB store: the directory to make each broker's in
	Compare   bool
	Backlog   int  // messages stored for an offline group before the run
	MsgIDs    bool // every publish carries a unique Nats-Msg-Id (deduplicated)
	Timeout   time.Duration
	Out       io.Writer // progress
	Table     io.Writer // the results (nil: os.Stdout)
	// CPUProfile, when set, is where each target's CPU profile goes: the
	// path itself for the first target, PATH.2, PATH.3… for the others.
	CPUProfile string
}

// tempStore is what the workload line says of the default store of
// --compare.
const tempStore = "a temporary directory, durability async: the daemon's default store"

// resolveStore settles which store the broker under test uses: -db when
// given; else with --compare the daemon's own default, RocksDB with
// durability async, in a temporary directory (so that the quick start
// compares it with JetStream's file store, like with like); else
// memory://. The returned func removes the temporary directory.
func (c *benchConfig) resolveStore(dbGiven bool) (func(), error) {
	switch {
	case dbGiven:
	case c.Compare:
		dir, err := os.MkdirTemp("", "kitenats-bench-db-")
		if err != nil {
			return nil, fmt.Errorf("bench: temporary store: %w", err)
		}
		c.tempDir, c.DB = dir, "rocksdb://"+dir
		c.Store = c.DB + " (" + tempStore + ", removed afterwards)"
		return func() { _ = os.RemoveAll(dir) }, nil
	default:
		c.DB = "memory://"
	}
	c.Store = c.DB
	return func() {}, nil
}

// storeURI is the store of one broker of the run: -db, or a fresh
// directory in the temporary one, so that each broker of a --compare run
// (the KiteQ and the NATS face) starts empty.
func (c benchConfig) storeURI() (string, error) {
	if c.tempDir == "" {
		return c.DB, nil
	}
	dir, err := os.MkdirTemp(c.tempDir, "db-")
	if err != nil {
		return "", fmt.Errorf("bench: temporary store: %w", err)
	}
	return "rocksdb://" + dir, nil
}

// storeName names the store in the table rows: the -db URI, or the
// default of --compare.
func (c benchConfig) storeName() string {
	if c.tempDir != "" {
		return "rocksdb (temporary, async)"
	}
	return c.DB
}

// benchResult is one row of the results table.
type benchResult struct {
	Name       string
	Msgs       int
	Elapsed    time.Duration
	Size       int
	AckLat     []time.Duration // publish → store ack
	DeliverLat []time.Duration // publish → delivery
	// CPU is the process's CPU time (user + system, every thread: broker,
	// server, RocksDB and the benchmark's own clients) during the run.
	CPU time.Duration
}

func (r benchResult) rate() float64 { return float64(r.Msgs) / r.Elapsed.Seconds() }

// cpuPerMsg is the CPU time the whole process spent per delivered message:
// steadier than msgs/s on a machine whose load changes between runs.
func (r benchResult) cpuPerMsg() time.Duration {
	if r.Msgs == 0 {
		return 0
	}
	return r.CPU / time.Duration(r.Msgs)
}

// cores is the CPU time the process used per second of the run: how many
// cores the target kept busy (every thread of the process counts: the
// broker or server under test and the benchmark's own clients). Below the
// machine's core count, a target is bound by its pipeline, not the CPU.
func (r benchResult) cores() float64 {
	if r.Elapsed <= 0 {
		return 0
	}
	return r.CPU.Seconds() / r.Elapsed.Seconds()
}

// processCPU returns the user plus system CPU time of this process so far.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

const usage = `usage: kitenats bench [-msgs N | -duration D] [-size B] [-pubs N] [-consumers N] [-groups N] [-db URI] [--compare] [-protocol nats|kiteq]

Starts a broker in this process on random ports, drives it with real clients (nats.go, or the
KiteQ TCP protocol with -protocol kiteq) and prints a table of msgs/s, MB/s, publish-ack and
delivery latencies and CPU per message. The store is -db; without -db it is memory://, and with
--compare the daemon's default store, RocksDB (durability async) in a temporary directory removed
afterwards. --compare runs the same workload against an embedded JetStream (file store; memory
store too when -db is memory://) and core NATS, and prints the ratios. Progress goes to stderr
(a bar on a terminal, a line per run elsewhere), the table to stdout.`

var examples = []string{
	"kitenats bench -msgs 100000 --compare          # RocksDB (temporary) vs JetStream file store and core NATS",
	"kitenats bench -db memory:// --compare          # memory vs JetStream memory and file stores, core NATS",
	"kitenats bench -duration 30s -pubs 4 -db 'rocksdb:///tmp/kb?durability=sync'",
	"kitenats bench --protocol kiteq -msgs 20000     # the same through the KiteQ TCP adapter",
}

// Run is `kitenats bench`: it measures the broker, and with --compare
// JetStream and core NATS in the same run.
func Run(args []string) error { return run(args, os.Stdout) }

func run(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("kitenats bench", flag.ContinueOnError)
	fs.Usage = func() {
		w := fs.Output()
		fmt.Fprintln(w, usage)
		fmt.Fprintln(w, "\nflags:")
		fs.PrintDefaults()
		fmt.Fprintln(w, "\nexamples:")
		for _, e := range examples {
			fmt.Fprintf(w, "  %s\n", e)
		}
	}
	c := benchConfig{Out: os.Stderr}
	fs.IntVar(&c.Msgs, "msgs", 100000, "messages to publish (ignored with -duration)")
	fs.DurationVar(&c.Duration, "duration", 0, "publish for this long instead of -msgs")
	fs.IntVar(&c.Size, "size", 512, "message body size in bytes (at least 16)")
	fs.IntVar(&c.Pubs, "pubs", 1, "publishers, each on its own connection")
	fs.IntVar(&c.Consumers, "consumers", 2, "consumers per group")
	fs.IntVar(&c.Groups, "groups", 1, "consumer groups, each bound to the topic")
	fs.IntVar(&c.Pending, "pending", 1024, "async publishes in flight per publisher (1 = synchronous)")
	fs.StringVar(&c.DB, "db", "", "store of the broker under test (memory://, rocksdb://DIR?durability=async|sync); default memory://, with --compare RocksDB in a temporary directory")
	fs.BoolVar(&c.Compare, "compare", false, "also run the workload, in this run, against an embedded JetStream file-store stream (durable consumer, explicit acks), a memory-store one too when -db is memory://, and raw core NATS pub/sub, and print ratios")
	fs.DurationVar(&c.Timeout, "timeout", 5*time.Minute, "give up on a run after this long")
	fs.BoolVar(&c.MsgIDs, "msgid", false, "give every publish a unique Nats-Msg-Id, so that each target deduplicates it (kitenats then delivers once the save is durable)")
	fs.IntVar(&c.Backlog, "backlog", 0, "first store this many messages for a group with no consumer, then run the workload beside that backlog")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile of the run to this file, and with --compare one per target: FILE.2, FILE.3… (`go tool pprof -tagignore=side=client` leaves out the clients' work)")
	memProfile := fs.String("memprofile", "", "write a heap profile (allocations included) at the end of the run to this file")
	protocol := fs.String("protocol", "nats", "clients' protocol: nats, or kiteq (the KiteQ TCP adapter with kiteq-client-go's benchmark workload: 2 KiB, synchronous publishes)")
	fs.SetOutput(io.Discard)
	err := fs.Parse(args)
	fs.SetOutput(stdout)
	switch {
	case errors.Is(err, flag.ErrHelp):
		fs.Usage()
		return err
	case err != nil:
		return fmt.Errorf("%w (kitenats bench -h for help)", err)
	case fs.NArg() > 0:
		return fmt.Errorf("bench: unexpected arguments %v", fs.Args())
	}
	dbGiven := false
	fs.Visit(func(f *flag.Flag) { dbGiven = dbGiven || f.Name == "db" })
	cleanup, err := c.resolveStore(dbGiven)
	if err != nil {
		return err
	}
	defer cleanup()
	c.Table = stdout
	// The clients' goroutines, and whatever they start, carry side=client;
	// the servers' carry side=server (asServer).
	pprof.SetGoroutineLabels(clientLabels)
	c.CPUProfile = *cpuProfile
	if *memProfile != "" {
		defer func() {
			if err := writeHeapProfile(*memProfile); err != nil {
				fmt.Fprintln(os.Stderr, "bench:", err)
			}
		}()
	}
	if c.Size < 16 || c.Pubs < 1 || c.Consumers < 1 || c.Groups < 1 || c.Pending < 1 || (c.Msgs < 1 && c.Duration <= 0) {
		return errors.New("bench: -size >= 16, and -pubs, -consumers, -groups, -pending and -msgs (or -duration) >= 1")
	}
	switch *protocol {
	case "nats":
	case "kiteq":
		return benchKiteQ(c, fs)
	default:
		return fmt.Errorf("bench: -protocol %q: want nats or kiteq", *protocol)
	}
	ids := ""
	if c.MsgIDs {
		ids = ", a Nats-Msg-Id each"
	}
	fmt.Fprintf(c.Out, "workload: %s, %d B%s, %d publisher(s) with %d in flight, %d group(s) x %d consumer(s), explicit acks, store %s\n",
		c.amount(), c.Size, ids, c.Pubs, c.Pending, c.Groups, c.Consumers, c.Store)
	return runTargets(c, benchBroker)
}

// benchTarget runs the workload against one target and measures it.
type benchTarget func(benchConfig) (benchResult, error)

// runTargets runs the workload against first and, with --compare, against
// the references in the same run, then prints the table and the ratios to
// first.
func runTargets(c benchConfig, first benchTarget, others ...benchTarget) error {
	targets := []benchTarget{first}
	if c.Compare {
		targets = append(targets, others...)
		targets = append(targets, references(c.DB)...)
	}
	results := make([]benchResult, 0, len(targets))
	for i, run := range targets {
		stop, err := c.startProfile(i)
		if err != nil {
			return err
		}
		r, err := run(c)
		if perr := stop(); err == nil {
			err = perr
		}
		if err != nil {
			return err
		}
		results = append(results, r)
	}
	out := c.Table
	if out == nil {
		out = os.Stdout
	}
	printResults(out, results)
	return nil
}

// startProfile starts the CPU profile of target i (CPUProfile), one file
// per target, so that each profile holds one server's work; stop ends it.
func (c benchConfig) startProfile(i int) (stop func() error, err error) {
	if c.CPUProfile == "" {
		return func() error { return nil }, nil
	}
	path := c.CPUProfile
	if i > 0 {
		path += "." + strconv.Itoa(i+1)
	}
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		_ = f.Close()
		return nil, err
	}
	return func() error {
		pprof.StopCPUProfile()
		if err := f.Close(); err != nil {
			// A failed close is a truncated profile: say so.
			return fmt.Errorf("bench: cpu profile %s: %w", path, err)
		}
		return nil
	}, nil
}

func (c benchConfig) amount() string {
	if c.Duration > 0 {
		return c.Duration.String()
	}
	return fmt.Sprintf("%d msgs", c.Msgs)
}

// benchDaemon starts a whole broker in this process on random ports, with
// its KiteQ adapter on bind ("off": none). Its admin HTTP is on, as by
// default, so that the broker observes its metrics as deployed.
func benchDaemon(db, bind string) (*daemon.Daemon, func(), error) {
	cfg := config.Default()
	port, err := freePort()
	if err != nil {
		return nil, nil, fmt.Errorf("bench: %w", err)
	}
	cfg.NATS, cfg.DB, cfg.MaxInflight, cfg.AdminPort, cfg.Bind = "127.0.0.1:0", db, 4096, port, bind
	var d *daemon.Daemon
	var stop func() error
	asServer(func() {
		d, stop, err = daemon.Start(context.Background(), cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	})
	if err != nil {
		return nil, nil, fmt.Errorf("bench: %w", err)
	}
	return d, func() { _ = stop() }, nil
}

// asServer runs fn, which starts a server, with the profiler label
// side=server, which every goroutine the server starts inherits; the
// benchmark's own goroutines carry side=client (Run). So
// `go tool pprof -tagignore=side=client` on a -cpuprofile shows the
// server's share alone, kitenats or JetStream (whose own goroutines set
// labels of their own, replacing side), and the runtime's (GC).
func asServer(fn func()) {
	// Do restores the labels of the context it is given when fn returns:
	// the caller's own, side=client.
	pprof.Do(clientLabels, pprof.Labels("side", "server"), func(context.Context) { fn() })
}

// clientLabels is the profiler label set of the benchmark's own
// goroutines.
var clientLabels = pprof.WithLabels(context.Background(), pprof.Labels("side", "client"))

// freePort returns a loopback port that was free a moment ago (the admin
// port cannot be 0).
func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer func() { _ = ln.Close() }()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// benchBroker runs the workload against kitenats itself.
func benchBroker(c benchConfig) (benchResult, error) {
	db, err := c.storeURI()
	if err != nil {
		return benchResult{}, err
	}
	d, stop, err := benchDaemon(db, "off")
	if err != nil {
		return benchResult{}, err
	}
	defer stop()
	url := d.ClientURL()
	name := "kitenats " + c.storeName()
	if c.Backlog > 0 {
		if err := fillBacklog(c, url); err != nil {
			return benchResult{}, err
		}
		name += fmt.Sprintf(" +%d backlog", c.Backlog)
	}
	w := &benchWatch{c: c, name: name}
	defer func() { fmt.Fprintf(c.Out, "%s: process RSS after the run %s\n", name, rss()) }()
	var conns []*nats.Conn
	defer func() {
		for _, nc := range conns {
			nc.Close()
		}
	}()
	for g := 0; g < c.Groups; g++ {
		group := fmt.Sprintf("s-bench-%d", g)
		for i := 0; i < c.Consumers; i++ {
			nc, err := nats.Connect(url, nats.UserInfo(group, ""))
			if err != nil {
				return benchResult{}, err
			}
			conns = append(conns, nc)
			deliver := fmt.Sprintf("$KQ.DLV.%s.c%d", group, i)
			if _, err := nc.Subscribe(deliver, func(m *nats.Msg) {
				w.delivered(m.Data)
				_ = m.Respond([]byte("+ACK"))
			}); err != nil {
				return benchResult{}, err
			}
			req := fmt.Sprintf(`{"deliver":%q,"bindings":[{"topic":"bench","messageType":"m","bindType":"direct","persistent":true}],"maxInflight":4096}`, deliver)
			rep, err := nc.Request("$KQ.API.BIND."+group, []byte(req), 5*time.Second)
			if err != nil {
				return benchResult{}, err
			}
			if err := replyError(rep.Data); err != nil {
				return benchResult{}, fmt.Errorf("bench: bind: %w", err)
			}
		}
	}
	return w.run(url, "kq.bench.m", true)
}

// replyError is the error member of a $KQ.API reply, decoded (so that it
// reads `<topic>`, not the JSON escape `\u003ctopic\u003e`), or nil.
func replyError(data []byte) error {
	var r struct {
		Error *struct {
			Code        int    `json:"code"`
			Description string `json:"description"`
		} `json:"error"`
	}
	if err := json.Unmarshal(data, &r); err != nil {
		return fmt.Errorf("bad reply %q: %w", data, err)
	}
	if r.Error != nil {
		return fmt.Errorf("%d %s", r.Error.Code, r.Error.Description)
	}
	return nil
}

// benchCoreNATS runs the same publishers and consumers as plain core NATS
// pub/sub (a queue group per group, no acks, no store) on a fresh embedded
// server: the ceiling the broker is compared with.
func benchCoreNATS(c benchConfig) (benchResult, error) {
	d, stop, err := benchDaemon("memory://", "off")
	if err != nil {
		return benchResult{}, err
	}
	defer stop()
	url := d.ClientURL()
	w := &benchWatch{c: c, name: "core NATS pub/sub (no store)"}
	var conns []*nats.Conn
	defer func() {
		for _, nc := range conns {
			nc.Close()
		}
	}()
	for g := 0; g < c.Groups; g++ {
		for i := 0; i < c.Consumers; i++ {
			nc, err := nats.Connect(url)
			if err != nil {
				return benchResult{}, err
			}
			conns = append(conns, nc)
			sub, err := nc.QueueSubscribe("raw.bench", fmt.Sprintf("g%d", g), func(m *nats.Msg) { w.delivered(m.Data) })
			if err != nil {
				return benchResult{}, err
			}
			_ = sub.SetPendingLimits(-1, -1)
			if err := nc.Flush(); err != nil {
				return benchResult{}, err
			}
		}
	}
	return w.run(url, "raw.bench", false)
}

// benchWatch drives publishers and records what consumers receive.
type benchWatch struct {
	c        benchConfig
	name     string
	start    time.Time
	sent     atomic.Int64
	acked    atomic.Int64
	failed   atomic.Int64
	received atomic.Int64
	mu       sync.Mutex
	ackLat   []time.Duration
	dlvLat   []time.Duration
}

// delivered records one delivery; the body starts with the publish time.
func (w *benchWatch) delivered(body []byte) {
	if len(body) >= 8 {
		lat := time.Duration(time.Now().UnixNano() - int64(binary.BigEndian.Uint64(body)))
		w.mu.Lock()
		w.dlvLat = append(w.dlvLat, lat)
		w.mu.Unlock()
	}
	w.received.Add(1)
}

// run publishes the workload with the NATS publisher and waits until every
// group got every message. Without acks (core NATS) what does not arrive is
// reported, not an error: core NATS is at most once.
func (w *benchWatch) run(url, subject string, withAcks bool) (benchResult, error) {
	return w.drive(func(n int, stopAt time.Time) error {
		return w.publisher(url, subject, n, stopAt, withAcks)
	}, !withAcks)
}

// drive runs c.Pubs publishers, each publish(n, stopAt)-ing its share, with
// the progress bar, then waits for the deliveries and builds the result.
func (w *benchWatch) drive(publish func(n int, stopAt time.Time) error, atMostOnce bool) (benchResult, error) {
	var wg sync.WaitGroup
	errs := make(chan error, w.c.Pubs)
	var stopAt time.Time
	w.start = time.Now()
	cpu0 := processCPU()
	if w.c.Duration > 0 {
		stopAt = w.start.Add(w.c.Duration)
	}
	for p := 0; p < w.c.Pubs; p++ {
		n := w.c.Msgs / w.c.Pubs
		if p == 0 {
			n += w.c.Msgs % w.c.Pubs
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := publish(n, stopAt); err != nil {
				errs <- err
			}
		}()
	}
	progressDone := make(chan struct{})
	var pwg sync.WaitGroup
	pwg.Add(1)
	go func() { defer pwg.Done(); w.progress(progressDone) }()
	stopProgress := func() { close(progressDone); pwg.Wait() }
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		stopProgress()
		return benchResult{}, err
	}
	want := w.sent.Load() * int64(w.c.Groups)
	deadline := time.Now().Add(w.c.Timeout)
	for w.received.Load() < want && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	elapsed := time.Since(w.start)
	stopProgress()
	if got := w.received.Load(); got < want {
		if !atMostOnce {
			return benchResult{}, fmt.Errorf("bench %s: %d of %d deliveries within %s", w.name, got, want, w.c.Timeout)
		}
		fmt.Fprintf(w.c.Out, "%s: %d of %d messages arrived (core NATS drops under overload)\n", w.name, got, want)
	}
	if f := w.failed.Load(); f > 0 {
		return benchResult{}, fmt.Errorf("bench %s: %d publishes refused", w.name, f)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	return benchResult{Name: w.name, Msgs: int(w.received.Load()), Elapsed: elapsed, Size: w.c.Size, CPU: processCPU() - cpu0,
		AckLat: w.ackLat, DeliverLat: w.dlvLat}, nil
}

// publisher sends n messages (or until stopAt), keeping at most Pending
// unacknowledged, and records each publish-ack latency.
func (w *benchWatch) publisher(url, subject string, n int, stopAt time.Time, withAcks bool) error {
	nc, err := nats.Connect(url)
	if err != nil {
		return err
	}
	defer nc.Close()
	window := make(chan struct{}, w.c.Pending)
	var inflight sync.WaitGroup
	var starts sync.Map // reply subject → publish time
	inbox := nats.NewInbox()
	if withAcks {
		_, err = nc.Subscribe(inbox+".*", func(m *nats.Msg) {
			t, ok := starts.LoadAndDelete(m.Subject)
			if !ok {
				return
			}
			lat := time.Since(t.(time.Time))
			// A success is {"stream":…,"seq":…}, a refusal {"error":…}
			// (kitenats and JetStream alike): no need to decode it all.
			if !bytes.HasPrefix(m.Data, []byte(`{"stream"`)) {
				w.failed.Add(1)
			} else {
				w.acked.Add(1)
			}
			w.mu.Lock()
			w.ackLat = append(w.ackLat, lat)
			w.mu.Unlock()
			<-window
			inflight.Done()
		})
		if err != nil {
			return err
		}
	}
	body := make([]byte, w.c.Size)
	idPrefix := nats.NewInbox() + "-" // unique per publisher and run
	for i := 0; stopAt.IsZero() && i < n || !stopAt.IsZero() && time.Now().Before(stopAt); i++ {
		now := time.Now()
		binary.BigEndian.PutUint64(body, uint64(now.UnixNano()))
		if withAcks {
			window <- struct{}{}
			reply := inbox + "." + strconv.Itoa(i)
			starts.Store(reply, now)
			inflight.Add(1)
			msg := &nats.Msg{Subject: subject, Reply: reply, Data: body}
			if w.c.MsgIDs {
				msg.Header = nats.Header{"Nats-Msg-Id": []string{idPrefix + strconv.Itoa(i)}}
			}
			if err := nc.PublishMsg(msg); err != nil {
				return err
			}
		} else if err := nc.Publish(subject, body); err != nil {
			return err
		}
		w.sent.Add(1)
	}
	if withAcks {
		done := make(chan struct{})
		go func() { inflight.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(w.c.Timeout):
			return fmt.Errorf("bench %s: publish acks missing after %s", w.name, w.c.Timeout)
		}
	}
	return nc.Flush()
}

// progress shows the run's progress until done is closed: deliveries of
// the whole workload, or with -duration the time.
func (w *benchWatch) progress(done chan struct{}) {
	max := int64(w.c.Msgs * w.c.Groups)
	if w.c.Duration > 0 {
		max = w.c.Duration.Milliseconds()
	}
	p := newProgress(w.c.Out, w.name, max, isTerminal(w.c.Out))
	counts := func() string { return fmt.Sprintf("sent %d, delivered %d", w.sent.Load(), w.received.Load()) }
	update := func() {
		n := w.received.Load()
		if w.c.Duration > 0 {
			n = time.Since(w.start).Milliseconds()
		}
		p.set(n, counts())
	}
	t := time.NewTicker(250 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-done:
			update()
			p.finish(counts())
			return
		case <-t.C:
			update()
		}
	}
}

func percentile(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[min(len(s)-1, int(p*float64(len(s))))]
}

func fmtLat(ds []time.Duration, p float64) string {
	if len(ds) == 0 {
		return "-"
	}
	return percentile(ds, p).Round(time.Microsecond).String()
}

// printResults writes the results table, then each row's ratios to the
// first (the broker under test): of msgs/s, and of CPU per message.
func printResults(out io.Writer, rs []benchResult) {
	fmt.Fprintln(out)
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "target\tmsgs\tmsgs/s\tMB/s\tack p50\tack p99\tdeliver p50\tdeliver p99\tCPU/msg\tcores")
	for _, r := range rs {
		cores := "-"
		if r.CPU > 0 {
			cores = fmt.Sprintf("%.2f", r.cores())
		}
		fmt.Fprintf(tw, "%s\t%d\t%.0f\t%.1f\t%s\t%s\t%s\t%s\t%s\t%s\n", r.Name, r.Msgs, r.rate(),
			r.rate()*float64(r.Size)/1e6, fmtLat(r.AckLat, .5), fmtLat(r.AckLat, .99), fmtLat(r.DeliverLat, .5), fmtLat(r.DeliverLat, .99),
			fmtCPU(r.cpuPerMsg()), cores)
	}
	_ = tw.Flush() // out is the terminal or a pipe: nowhere better to report
	for _, r := range rs[1:] {
		fmt.Fprintf(out, "ratio %s / %s: %.3f", rs[0].Name, r.Name, rs[0].rate()/r.rate())
		if c0, c := rs[0].cpuPerMsg(), r.cpuPerMsg(); c0 > 0 && c > 0 {
			fmt.Fprintf(out, " (CPU per message: %.2f×)", float64(c0)/float64(c))
		}
		fmt.Fprintln(out)
	}
}

func fmtCPU(d time.Duration) string {
	if d <= 0 {
		return "-"
	}
	return fmt.Sprintf("%.1fµs", float64(d)/float64(time.Microsecond))
}

// references are the targets --compare measures beside the broker on
// store db: JetStream's file store (the reference for the rocksdb async
// mode), JetStream's memory store when the broker's store is memory too
// (like for like: a broker that keeps messages in memory and acks every
// publish and every delivery, inside the server), and raw core NATS.
func references(db string) []benchTarget {
	refs := []benchTarget{benchJetStreamFile}
	if strings.HasPrefix(db, "memory:") {
		refs = append(refs, benchJetStreamMemory)
	}
	return append(refs, benchCoreNATS)
}

func benchJetStreamFile(c benchConfig) (benchResult, error) {
	return benchJetStream(c, jetstream.FileStorage)
}

func benchJetStreamMemory(c benchConfig) (benchResult, error) {
	return benchJetStream(c, jetstream.MemoryStorage)
}

// benchJetStream runs the workload against an embedded JetStream server: a
// stream on storage, one durable consumer with explicit acks per group,
// consumed by the group's consumers.
func benchJetStream(c benchConfig, storage jetstream.StorageType) (benchResult, error) {
	dir, err := os.MkdirTemp("", "kitenats-bench-js-")
	if err != nil {
		return benchResult{}, err
	}
	defer func() { _ = os.RemoveAll(dir) }()
	br, err := bridge.New(bridge.Config{Port: -1, JetStreamDir: dir})
	if err != nil {
		return benchResult{}, err
	}
	asServer(func() { err = br.Start() })
	if err != nil {
		return benchResult{}, err
	}
	defer func() { _ = br.Close() }()
	url := br.ClientURL()
	nc, err := nats.Connect(url)
	if err != nil {
		return benchResult{}, err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return benchResult{}, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	stream, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "BENCH", Subjects: []string{"js.bench"}, Storage: storage})
	if err != nil {
		return benchResult{}, fmt.Errorf("bench: jetstream stream: %w", err)
	}
	w := &benchWatch{c: c, name: "JetStream file store"}
	if storage == jetstream.MemoryStorage {
		w.name = "JetStream memory store"
	}
	var conns []*nats.Conn
	var consumes []jetstream.ConsumeContext
	defer func() {
		for _, cc := range consumes {
			cc.Stop()
		}
		for _, c := range conns {
			c.Close()
		}
	}()
	for g := 0; g < c.Groups; g++ {
		name := fmt.Sprintf("g%d", g)
		if _, err := stream.CreateOrUpdateConsumer(ctx, jetstream.ConsumerConfig{Durable: name, AckPolicy: jetstream.AckExplicitPolicy, MaxAckPending: 4096 * c.Consumers}); err != nil {
			return benchResult{}, fmt.Errorf("bench: jetstream consumer: %w", err)
		}
		for i := 0; i < c.Consumers; i++ {
			cnc, err := nats.Connect(url)
			if err != nil {
				return benchResult{}, err
			}
			conns = append(conns, cnc)
			cjs, err := jetstream.New(cnc)
			if err != nil {
				return benchResult{}, err
			}
			cons, err := cjs.Consumer(ctx, "BENCH", name)
			if err != nil {
				return benchResult{}, err
			}
			cc, err := cons.Consume(func(m jetstream.Msg) {
				w.delivered(m.Data())
				_ = m.Ack()
			})
			if err != nil {
				return benchResult{}, err
			}
			consumes = append(consumes, cc)
		}
	}
	return w.run(url, "js.bench", true)
}

// fillBacklog stores c.Backlog messages for a persistent group that has no
// live consumer, so that the measured run works beside a large store.
func fillBacklog(c benchConfig, url string) error {
	nc, err := nats.Connect(url, nats.UserInfo("s-backlog", ""))
	if err != nil {
		return err
	}
	deliver := "$KQ.DLV.s-backlog.gone"
	if _, err := nc.SubscribeSync(deliver); err != nil {
		return err
	}
	req := fmt.Sprintf(`{"deliver":%q,"bindings":[{"topic":"backlog","messageType":"m","persistent":true}]}`, deliver)
	if _, err := nc.Request("$KQ.API.BIND.s-backlog", []byte(req), 5*time.Second); err != nil {
		return err
	}
	nc.Close() // the group stays bound, with nobody to deliver to
	fc := c
	fc.Msgs, fc.Duration, fc.Groups = c.Backlog, 0, 0
	w := &benchWatch{c: fc, name: "filling backlog"}
	w.start = time.Now()
	done := make(chan struct{})
	var pwg sync.WaitGroup
	pwg.Add(1)
	go func() { defer pwg.Done(); w.progressSent(done) }()
	err = w.publisher(url, "kq.backlog.m", c.Backlog, time.Time{}, true)
	close(done)
	pwg.Wait()
	if err == nil && w.failed.Load() > 0 {
		err = fmt.Errorf("bench: %d backlog publishes refused", w.failed.Load())
	}
	return err
}

// progressSent shows the progress of publishing alone.
func (w *benchWatch) progressSent(done chan struct{}) {
	p := newProgress(w.c.Out, w.name, int64(w.c.Msgs), isTerminal(w.c.Out))
	counts := func() string { return fmt.Sprintf("acked %d", w.acked.Load()) }
	t := time.NewTicker(250 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-done:
			p.set(w.acked.Load(), counts())
			p.finish(counts())
			return
		case <-t.C:
			p.set(w.acked.Load(), counts())
		}
	}
}

// rss reads this process's resident set size from /proc.
func rss() string {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return "unknown"
	}
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "VmRSS:") {
			return strings.TrimSpace(strings.TrimPrefix(line, "VmRSS:"))
		}
	}
	return "unknown"
}

// writeHeapProfile writes the heap profile, with every allocation sampled
// since the process started, to path.
func writeHeapProfile(path string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := pprof.Lookup("allocs").WriteTo(f, 0); err != nil {
		_ = f.Close()
		return err
	}
	return f.Close()
}
