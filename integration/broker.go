//go:build integration

// Package integration holds kitenats' black-box tests: they run the built
// binary (bin/kitenats, or the one TestMain builds) as a real process,
// kill it with SIGKILL or stop it with SIGTERM, and talk to it only with
// real nats.go clients. Nothing of ours is imported (compat/wire at most,
// and internal/powerfs, the test disk the power-cut tests put the store on).
//
// Run with: go test -race -count=1 -tags integration ./integration/
// Environment: KITENATS_BIN (use this binary instead of building one),
// KITENATS_MYSQL_ADDR (host:port of a MariaDB for the mysql store; the
// mysql cases skip without it, and fail without it when CI is set),
// KITENATS_OVERLOAD_SECONDS (length of the overload test, default 60),
// KITENATS_POWERCUT_SEED (replays the random moments of a power-cut run;
// those tests need FUSE: they skip without it, and fail without it when CI
// is set), KITENATS_ARTIFACTS (where the dashboard test writes its
// screenshots; default artifacts/ here, gitignored). The dashboard test
// needs Debian's chromium: it skips without it, and fails without it when
// CI is set.
package integration

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/require"
)

// binPath is the broker binary every test runs; TestMain sets it.
var binPath string

// Broker is one kitenats daemon under test: a real process on free ports,
// restartable on the same store. Each run's stderr is kept and logged when
// the test fails.
type Broker struct {
	t        *testing.T
	DB       string   // the -db store URI, the same on every run
	NATSAddr string   // 127.0.0.1:port, the same on every run
	bindAddr string   // KiteQ TCP, unused by these tests but must be free
	Args     []string // more flags for every run (e.g. -configPath)

	mu   sync.Mutex
	runs []*run // every process started, the last one current
}

// run is one process of a Broker.
type run struct {
	cmd    *exec.Cmd
	stderr *syncBuffer
	exited chan struct{} // closed once Wait returned
	state  *os.ProcessState
	err    error
}

// NewBroker returns a stopped broker on store uri with free ports. Cleanup
// kills any process still running and, if the test failed, logs the tail of
// every run's stderr.
func NewBroker(t *testing.T, uri string) *Broker {
	t.Helper()
	b := &Broker{t: t, DB: uri, NATSAddr: freeAddr(t), bindAddr: freeAddr(t)}
	t.Cleanup(func() {
		b.mu.Lock()
		runs := b.runs
		b.mu.Unlock()
		for i, r := range runs {
			select {
			case <-r.exited:
			default:
				_ = r.cmd.Process.Kill()
				<-r.exited
			}
			if t.Failed() {
				t.Logf("broker run %d (%s) stderr, last 16 KiB:\n%s", i+1, r.describe(), r.stderr.Tail(16<<10))
			}
		}
	})
	return b
}

// URL is the broker's NATS client URL.
func (b *Broker) URL() string { return "nats://" + b.NATSAddr }

// Start runs a new process on the same ports and store and waits until it
// answers $KQ.ADMIN.STAT (at most 60 s: a MySQL store creates its schema).
func (b *Broker) Start() {
	b.t.Helper()
	r := b.launch()
	deadline := time.Now().Add(60 * time.Second)
	var last error
	for time.Now().Before(deadline) {
		select {
		case <-r.exited:
			b.t.Fatalf("broker exited during startup (%s):\n%s", r.describe(), r.stderr.Tail(16<<10))
		default:
		}
		if last = ping(b.URL()); last == nil {
			return
		}
		time.Sleep(50 * time.Millisecond) // polling a process we do not control
	}
	b.t.Fatalf("broker not ready within 60 s: %v\n%s", last, r.stderr.Tail(16<<10))
}

// launch runs a new process on the same ports and store and returns at
// once, while it starts (Start also waits until it answers).
func (b *Broker) launch() *run {
	b.t.Helper()
	b.mu.Lock()
	if n := len(b.runs); n > 0 {
		select {
		case <-b.runs[n-1].exited:
		default:
			b.mu.Unlock()
			b.t.Fatal("Start: the previous process is still running")
		}
	}
	b.mu.Unlock()
	r := &run{stderr: &syncBuffer{}, exited: make(chan struct{})}
	r.cmd = exec.Command(binPath, append([]string{"-nats", b.NATSAddr, "-bind", b.bindAddr, "-pport", "-1", "-db", b.DB}, b.Args...)...)
	r.cmd.Stdout = r.stderr
	r.cmd.Stderr = r.stderr
	require.NoError(b.t, r.cmd.Start(), "starting %s", binPath)
	go func() {
		r.err = r.cmd.Wait()
		r.state = r.cmd.ProcessState
		close(r.exited)
	}()
	b.mu.Lock()
	b.runs = append(b.runs, r)
	b.mu.Unlock()
	return r
}

// ping connects and asks $KQ.ADMIN.STAT once.
func ping(url string) error {
	nc, err := nats.Connect(url, nats.Timeout(500*time.Millisecond), nats.NoReconnect())
	if err != nil {
		return err
	}
	defer nc.Close()
	msg, err := nc.Request("$KQ.ADMIN.STAT", nil, time.Second)
	if err != nil {
		return err
	}
	var st struct {
		Error json.RawMessage `json:"error"`
	}
	if err := json.Unmarshal(msg.Data, &st); err != nil {
		return fmt.Errorf("STAT reply %q: %w", msg.Data, err)
	}
	if len(st.Error) > 0 {
		return fmt.Errorf("STAT: %s", st.Error)
	}
	return nil
}

func (b *Broker) current() *run {
	b.mu.Lock()
	defer b.mu.Unlock()
	require.NotEmpty(b.t, b.runs, "the broker was never started")
	return b.runs[len(b.runs)-1]
}

// PID is the process id of the current run.
func (b *Broker) PID() int { return b.current().cmd.Process.Pid }

// Running reports whether the current process is alive.
func (b *Broker) Running() bool {
	select {
	case <-b.current().exited:
		return false
	default:
		return true
	}
}

// RequireRunning fails the test if the broker died on its own.
func (b *Broker) RequireRunning() {
	b.t.Helper()
	r := b.current()
	select {
	case <-r.exited:
		b.t.Fatalf("the broker died on its own (%s):\n%s", r.describe(), r.stderr.Tail(16<<10))
	default:
	}
}

// Kill sends SIGKILL (kill -9) and waits for the process to be gone.
func (b *Broker) Kill() {
	b.t.Helper()
	r := b.current()
	b.RequireRunning()
	require.NoError(b.t, r.cmd.Process.Signal(syscall.SIGKILL))
	select {
	case <-r.exited:
	case <-time.After(10 * time.Second):
		b.t.Fatal("the process survived SIGKILL for 10 s")
	}
}

// Stop sends SIGTERM and waits up to within for the process to exit. It
// fails the test if the process hangs (then kills it) and returns the exit
// code and how long the shutdown took.
func (b *Broker) Stop(within time.Duration) (code int, took time.Duration) {
	b.t.Helper()
	r := b.current()
	b.RequireRunning()
	start := time.Now()
	require.NoError(b.t, r.cmd.Process.Signal(syscall.SIGTERM))
	select {
	case <-r.exited:
	case <-time.After(within):
		_ = r.cmd.Process.Kill()
		<-r.exited
		b.t.Fatalf("the broker did not exit within %v of SIGTERM (hang); killed. stderr:\n%s", within, r.stderr.Tail(16<<10))
	}
	return r.state.ExitCode(), time.Since(start)
}

// RSS returns the current process's resident set size in bytes
// (/proc/<pid>/status VmRSS).
func (b *Broker) RSS() (int64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", b.PID()))
	if err != nil {
		return 0, err
	}
	defer func() { _ = f.Close() }()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return kb << 10, err
		}
	}
	return 0, errors.New("no VmRSS line")
}

// Stderr returns what the current run wrote so far.
func (b *Broker) Stderr() string { return b.current().stderr.String() }

func (r *run) describe() string {
	select {
	case <-r.exited:
		if r.state != nil {
			return r.state.String()
		}
		return fmt.Sprint(r.err)
	default:
		return "running"
	}
}

// freeAddr returns 127.0.0.1:<a port that was free a moment ago>.
func freeAddr(t *testing.T) string {
	t.Helper()
	return freeAddrOn(t, "127.0.0.1")
}

// freeAddrOn returns host:<a port that was free a moment ago>.
func freeAddrOn(t *testing.T, host string) string {
	t.Helper()
	l, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	require.NoError(t, err)
	addr := l.Addr().String()
	require.NoError(t, l.Close())
	return addr
}

// syncBuffer is a bytes.Buffer safe for the process's writes and our reads.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	// Keep memory bounded under chatty logs: drop the oldest half past 8 MiB.
	if s.buf.Len() > 8<<20 {
		rest := append([]byte("…(truncated)…\n"), s.buf.Bytes()[s.buf.Len()/2:]...)
		s.buf.Reset()
		s.buf.Write(rest)
	}
	return s.buf.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buf.String()
}

// Tail returns at most the last n bytes.
func (s *syncBuffer) Tail(n int) string {
	str := s.String()
	if len(str) > n {
		return "…" + str[len(str)-n:]
	}
	return str
}
