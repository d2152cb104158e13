//go:build integration

package integration

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// startArgs are flags for a broker on free 127.0.0.1 ports with the memory
// store and no admin HTTP; flags given after them win.
func startArgs(t *testing.T, more ...string) []string {
	t.Helper()
	return append([]string{"-nats", freeAddr(t), "-bind", freeAddr(t), "-pport", "-1", "-db", "memory://"}, more...)
}

// runToExit runs the broker with args and waits for it to exit by itself
// (at most 60 s), returning its exit code and stderr.
func runToExit(t *testing.T, args ...string) (code int, stderr string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var errBuf bytes.Buffer
	cmd := exec.CommandContext(ctx, binPath, args...)
	cmd.Stderr = &errBuf
	err := cmd.Run()
	require.NoError(t, ctx.Err(), "the broker did not exit within 60 s:\n%s", errBuf.String())
	var exit *exec.ExitError
	if err != nil {
		require.True(t, errors.As(err, &exit), "running %s: %v", binPath, err)
	}
	return cmd.ProcessState.ExitCode(), errBuf.String()
}

// requireStartupError checks a start that failed: a non-zero exit code, no
// panic, and exactly one "kitenats: " line on stderr, which contains each
// of want.
func requireStartupError(t *testing.T, code int, stderr string, want ...string) {
	t.Helper()
	require.NotZero(t, code, "exit code; stderr:\n%s", stderr)
	require.NotContains(t, stderr, "panic", "stderr")
	require.NotContains(t, stderr, "goroutine ", "stderr")
	var lines []string
	for line := range strings.Lines(stderr) {
		if strings.HasPrefix(line, "kitenats: ") {
			lines = append(lines, strings.TrimSuffix(line, "\n"))
		}
	}
	require.Len(t, lines, 1, "one line naming the cause; stderr:\n%s", stderr)
	for _, w := range want {
		require.Contains(t, lines[0], w)
	}
}

// A second broker on the RocksDB directory of a running one (a second
// `make run` on ./data) says the directory is locked and that another
// kitenats may be running; the first broker carries on.
func TestIntegrationStartupStoreLocked(t *testing.T) {
	b := NewBroker(t, "rocksdb://"+t.TempDir())
	b.Start()
	code, stderr := runToExit(t, startArgs(t, "-db", b.DB)...)
	requireStartupError(t, code, stderr, "kitenats: open store "+b.DB+": ",
		"lock held by another process", "another kitenats may be running on")
	b.RequireRunning()
	require.NoError(t, ping(b.URL()))
}

func TestIntegrationStartupMySQLUnreachable(t *testing.T) {
	uri := "mysql://" + freeAddr(t) + "?db=kite&username=root&password=s3cret"
	code, stderr := runToExit(t, startArgs(t, "-db", uri)...)
	requireStartupError(t, code, stderr, "kitenats: open store mysql://", "password=xxxxx", "connection refused")
	require.NotContains(t, stderr, "s3cret", "the password is masked")
}

func TestIntegrationStartupRocksDBDirNotCreatable(t *testing.T) {
	file := filepath.Join(t.TempDir(), "file")
	require.NoError(t, os.WriteFile(file, nil, 0o600))
	uri := "rocksdb://" + filepath.Join(file, "data")
	code, stderr := runToExit(t, startArgs(t, "-db", uri)...)
	requireStartupError(t, code, stderr, "kitenats: open store "+uri+": ", "not a directory")
}

// Nothing answers at the ZooKeeper address: the broker gives up after its
// wait for the registry (15 s).
func TestIntegrationStartupZooKeeperUnreachable(t *testing.T) {
	conf := filepath.Join(t.TempDir(), "cluster.toml")
	require.NoError(t, os.WriteFile(conf, []byte("[clusters.it]\ntopics = [\"trade\"]\n"), 0o600))
	uri := "zk://" + freeAddr(t)
	code, stderr := runToExit(t, startArgs(t, "-registry", uri, "-configPath", conf, "-clusterName", "it")...)
	requireStartupError(t, code, stderr, "kitenats: open registry "+uri+": ", "is the registry reachable?")
}

// A listen address in use, for each listener, is one line naming the flag
// and the address.
func TestIntegrationStartupPortInUse(t *testing.T) {
	held, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer func() { _ = held.Close() }()
	addr := held.Addr().String()
	port := strconv.Itoa(held.Addr().(*net.TCPAddr).Port)
	for name, tc := range map[string]struct {
		args []string
		want string
	}{
		"nats":  {[]string{"-nats", addr}, "kitenats: NATS listener (-nats " + addr + "): "},
		"kiteq": {[]string{"-bind", addr}, "kitenats: KiteQ listener (-bind " + addr + "): "},
		"admin": {[]string{"-pport", port}, "kitenats: admin HTTP listener (-pport " + port + "): "},
	} {
		t.Run(name, func(t *testing.T) {
			code, stderr := runToExit(t, startArgs(t, tc.args...)...)
			requireStartupError(t, code, stderr, tc.want, "address already in use")
		})
	}
}

// A broker whose listeners are on 127.0.0.2 (a loopback alias: its own
// connection must dial that, not 127.0.0.1) serves, and its start-up log
// has one line per listener with the address bound.
func TestIntegrationListenersOnLoopbackAlias(t *testing.T) {
	b := NewBroker(t, "memory://")
	b.NATSAddr, b.bindAddr = freeAddrOn(t, "127.0.0.2"), freeAddrOn(t, "127.0.0.2")
	_, adminPort, err := net.SplitHostPort(freeAddrOn(t, "127.0.0.2"))
	require.NoError(t, err)
	b.Args = []string{"-pport", adminPort}
	b.Start()
	waitFor(t, 5*time.Second, func() bool { return strings.Contains(b.Stderr(), "kitenats serving") }, "the serving line")
	stderr := b.Stderr()
	adminAddr := "127.0.0.2:" + adminPort
	for _, line := range []string{
		`msg="listening: NATS clients" addr=` + b.NATSAddr + " url=nats://" + b.NATSAddr + "\n",
		`msg="listening: KiteQ TCP" addr=` + b.bindAddr + "\n",
		`msg="listening: admin HTTP" addr=` + adminAddr + " url=http://" + adminAddr + "\n",
	} {
		require.Contains(t, stderr, line)
	}
	resp, err := http.Get("http://" + adminAddr + "/healthz")
	require.NoError(t, err)
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	require.NoError(t, resp.Body.Close())
	require.Equal(t, http.StatusOK, resp.StatusCode, string(body))
	code, _ := b.Stop(10 * time.Second)
	require.Zero(t, code, "exit code after SIGTERM")
}

// -logPath DIR: the logs go to DIR/kitenats.log (DIR created), from the
// first start-up line to the last, and not to stderr.
func TestIntegrationLogPath(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "logs")
	path := filepath.Join(dir, "kitenats.log")
	read := func() string {
		data, err := os.ReadFile(path)
		require.NoError(t, err)
		return string(data)
	}
	b := NewBroker(t, "memory://")
	b.Args = []string{"-logPath", dir}
	b.Start()
	waitFor(t, 5*time.Second, func() bool { return strings.Contains(read(), "kitenats serving") }, "the serving line in %s", path)
	logs := read()
	require.Contains(t, logs, `msg="Starting nats-server"`)
	require.Contains(t, logs, `msg="listening: NATS clients" addr=`+b.NATSAddr)
	require.Contains(t, logs, `msg="listening: KiteQ TCP" addr=`+b.bindAddr)
	require.Contains(t, logs, `msg="admin HTTP off (-pport -1)"`)
	code, _ := b.Stop(10 * time.Second)
	require.Zero(t, code, "exit code after SIGTERM")
	require.Contains(t, read(), `msg="kitenats stopped"`)
	require.Empty(t, b.Stderr(), "nothing on stderr")
}

// A -logPath that cannot be written is one line on stderr, before anything
// starts.
func TestIntegrationLogPathNotWritable(t *testing.T) {
	file := filepath.Join(t.TempDir(), "file")
	require.NoError(t, os.WriteFile(file, nil, 0o600))
	dir := filepath.Join(file, "logs")
	code, stderr := runToExit(t, startArgs(t, "-logPath", dir)...)
	requireStartupError(t, code, stderr, "kitenats: -logPath "+dir+": cannot write kitenats.log: ", "not a directory")
	require.Equal(t, "kitenats: -logPath "+dir+": cannot write kitenats.log: mkdir "+file+": not a directory\n", stderr)
}

// hungListener accepts connections on 127.0.0.1 and never answers: a
// ZooKeeper or MySQL that hangs.
func hungListener(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	held := make(chan net.Conn, 64)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			held <- c
		}
	}()
	t.Cleanup(func() {
		_ = ln.Close()
		<-done
		close(held)
		for c := range held {
			_ = c.Close()
		}
	})
	return ln.Addr().String()
}

// Ctrl-C while the broker waits for a ZooKeeper or a MySQL that accepts
// and never answers ends start-up at once, with one line saying so, rather
// than after the registry's 15 s or the store's minute.
func TestIntegrationStartupInterrupted(t *testing.T) {
	conf := filepath.Join(t.TempDir(), "cluster.toml")
	require.NoError(t, os.WriteFile(conf, []byte("[clusters.it]\ntopics = [\"trade\"]\n"), 0o600))
	for name, args := range map[string][]string{
		"zookeeper": {"-registry", "zk://" + hungListener(t), "-configPath", conf, "-clusterName", "it"},
		"mysql":     {"-db", "mysql://" + hungListener(t) + "?db=kite&username=root&password=s3cret"},
	} {
		t.Run(name, func(t *testing.T) {
			var errBuf bytes.Buffer
			cmd := exec.Command(binPath, startArgs(t, args...)...)
			cmd.Stderr = &errBuf
			require.NoError(t, cmd.Start())
			time.Sleep(time.Second) // well into the wait
			require.NoError(t, cmd.Process.Signal(os.Interrupt))
			exited := make(chan struct{})
			go func() { defer close(exited); _ = cmd.Wait() }() // the exit code is read below
			select {
			case <-exited:
			case <-time.After(5 * time.Second):
				_ = cmd.Process.Kill()
				<-exited
				t.Fatalf("still starting 5 s after SIGINT; stderr:\n%s", errBuf.String())
			}
			requireStartupError(t, cmd.ProcessState.ExitCode(), errBuf.String(), "start-up interrupted")
			require.NotContains(t, errBuf.String(), "s3cret", "the password is masked")
		})
	}
}
