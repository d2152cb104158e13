package client

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

// brokerBin is the kitenats binary the tests run: $KITENATS_BIN, or one
// TestMain builds from the repository root. The client package cannot
// import the daemon, so it tests against the real process.
var brokerBin string

func TestMain(m *testing.M) { os.Exit(testMain(m)) }

func testMain(m *testing.M) int {
	if p := os.Getenv("KITENATS_BIN"); p != "" {
		abs, err := filepath.Abs(p)
		if err != nil {
			fmt.Fprintln(os.Stderr, "client: KITENATS_BIN:", err)
			return 1
		}
		brokerBin = abs
	} else {
		dir, err := os.MkdirTemp("", "kitenats-client-")
		if err != nil {
			fmt.Fprintln(os.Stderr, "client:", err)
			return 1
		}
		defer func() { _ = os.RemoveAll(dir) }()
		brokerBin = filepath.Join(dir, "kitenats")
		cmd := exec.Command("go", "build", "-o", brokerBin, ".")
		cmd.Dir = ".."
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
		if err := cmd.Run(); err != nil {
			fmt.Fprintln(os.Stderr, "client: building the broker (or set KITENATS_BIN):", err)
			return 1
		}
	}
	code := m.Run()
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "client: leaked goroutines:", err)
			code = 1
		}
	}
	return code
}

// broker is one kitenats process on a fixed NATS address, restartable on
// the same store.
type broker struct {
	t    *testing.T
	addr string   // 127.0.0.1:port, the same on every run
	args []string // more flags for every run
	user string   // who pings (empty: nobody, open mode)
	pass string

	mu  sync.Mutex // guards cmd and the process's output
	cmd *exec.Cmd
	out bytes.Buffer
	// exited is closed when the current process has been waited for.
	exited chan struct{}
}

// startBroker runs kitenats with the memory store (unless args give -db),
// no KiteQ adapter and no admin HTTP, and waits until it answers STAT. The
// process is killed when the test ends; its output is logged if it failed.
func startBroker(t *testing.T, args ...string) *broker {
	t.Helper()
	return startBrokerAs(t, "", "", args...)
}

// startBrokerAs is startBroker for a broker in secrets mode: it pings as
// user (the admin) with pass.
func startBrokerAs(t *testing.T, user, pass string, args ...string) *broker {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := l.Addr().String()
	require.NoError(t, l.Close())
	if !containsFlag(args, "-db") {
		args = append(args, "-db", "memory://")
	}
	b := &broker{t: t, addr: addr, args: args, user: user, pass: pass}
	t.Cleanup(func() {
		b.kill()
		if t.Failed() {
			b.mu.Lock()
			t.Logf("broker output:\n%s", b.out.String())
			b.mu.Unlock()
		}
	})
	b.start()
	return b
}

func containsFlag(args []string, flag string) bool {
	for _, a := range args {
		if a == flag {
			return true
		}
	}
	return false
}

func (b *broker) url() string { return "nats://" + b.addr }

// Write collects the process's output.
func (b *broker) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.out.Write(p)
}

// start runs a new process on the same address and waits until it answers
// $KQ.ADMIN.STAT (polling a process we do not control).
func (b *broker) start() {
	b.t.Helper()
	cmd := exec.Command(brokerBin, append([]string{"-nats", b.addr, "-bind", "off", "-pport", "-1"}, b.args...)...)
	cmd.Stdout, cmd.Stderr = b, b
	require.NoError(b.t, cmd.Start())
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait() // the exit status is not interesting: we kill it
		close(exited)
	}()
	b.mu.Lock()
	b.cmd, b.exited = cmd, exited
	b.mu.Unlock()
	deadline := time.Now().Add(30 * time.Second)
	for {
		err := ping(b.url(), b.user, b.pass)
		if err == nil {
			return
		}
		select {
		case <-exited:
			b.t.Fatalf("broker exited during startup")
		default:
		}
		if time.Now().After(deadline) {
			b.t.Fatalf("broker not ready within 30s: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// kill sends SIGKILL and waits for the process to be gone.
func (b *broker) kill() {
	b.mu.Lock()
	cmd, exited := b.cmd, b.exited
	b.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Signal(syscall.SIGKILL) // may have exited already
	<-exited
}

func ping(url, user, pass string) error {
	opts := []nats.Option{nats.Timeout(500 * time.Millisecond), nats.NoReconnect()}
	if user != "" {
		opts = append(opts, nats.UserInfo(user, pass), nats.CustomInboxPrefix(InboxPrefix(user)))
	}
	nc, err := nats.Connect(url, opts...)
	if err != nil {
		return err
	}
	defer nc.Close()
	msg, err := nc.Request("$KQ.ADMIN.STAT", nil, time.Second)
	if err != nil {
		return err
	}
	if !json.Valid(msg.Data) || strings.Contains(string(msg.Data), `"error"`) {
		return fmt.Errorf("STAT: %s", msg.Data)
	}
	return nil
}

// writeConfig writes a KiteQ-style cluster.toml with the given lines under
// [clusters.default_dev] and returns the -configPath flag for it.
func writeConfig(t *testing.T, lines ...string) []string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "cluster.toml")
	body := "[clusters.default_dev]\n" + strings.Join(lines, "\n") + "\n"
	require.NoError(t, os.WriteFile(p, []byte(body), 0o600))
	return []string{"-configPath", p}
}

// connect opens a connection as group, closed when the test ends.
func connect(t *testing.T, url, group string, opts ...nats.Option) *nats.Conn {
	t.Helper()
	nc, err := nats.Connect(url, append([]nats.Option{nats.UserInfo(group, "")}, opts...)...)
	require.NoError(t, err)
	t.Cleanup(nc.Close)
	return nc
}

// api calls a $KQ.API or $KQ.ADMIN subject and decodes the reply.
func api(t *testing.T, nc *nats.Conn, subject string, in, out any) {
	t.Helper()
	require.NoError(t, call(t.Context(), nc, subject, in, out))
}

// stat is the part of $KQ.ADMIN.STAT the tests read.
type stat struct {
	Consumers []struct {
		ID           string `json:"id"`
		Group        string `json:"groupId"`
		MaxInflight  int    `json:"maxInflight"`
		WarmingupSec int    `json:"warmingupSec"`
	} `json:"consumers"`
}

// consumersOf counts the broker's live consumers of group.
func consumersOf(t *testing.T, nc *nats.Conn, group string) int {
	t.Helper()
	var s stat
	api(t, nc, "$KQ.ADMIN.STAT", nil, &s)
	n := 0
	for _, c := range s.Consumers {
		if c.Group == group {
			n++
		}
	}
	return n
}

// recv waits for one value.
func recv[T any](t *testing.T, ch <-chan T) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(10 * time.Second):
		t.Fatal("nothing received within 10s")
		panic("unreachable")
	}
}

// requireNone fails if ch yields a value within d.
func requireNone[T any](t *testing.T, ch <-chan T, d time.Duration) {
	t.Helper()
	select {
	case v := <-ch:
		t.Fatalf("unexpected %v", v)
	case <-time.After(d):
	}
}
