package daemon

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kitenats/kitenats/config"
)

// startupConfig is a daemon config on 127.0.0.1 ports the kernel picks, the
// memory store, no admin HTTP.
func startupConfig() config.Config {
	cfg := config.Default()
	cfg.NATS, cfg.Bind, cfg.AdminPort, cfg.DB = "127.0.0.1:0", "127.0.0.1:0", -1, "memory://"
	return cfg
}

// freeLocalAddr returns 127.0.0.1:<a port that was free a moment ago>.
func freeLocalAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := l.Addr().String()
	require.NoError(t, l.Close())
	return addr
}

// A store that cannot open is an error naming it, never a panic closing the
// store that was not opened.
func TestStartupStoreErrors(t *testing.T) {
	log := slog.New(slog.DiscardHandler)
	dir := t.TempDir()
	held, err := openStore(context.Background(), "rocksdb://"+filepath.Join(dir, "held"), log, nil)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, held.Close()) })
	file := filepath.Join(dir, "file")
	require.NoError(t, os.WriteFile(file, nil, 0o600))
	for name, tc := range map[string]struct{ uri, want string }{
		"rocksdb locked": {"rocksdb://" + filepath.Join(dir, "held"),
			"open store rocksdb://" + filepath.Join(dir, "held") + ": rocksdb: open " + filepath.Join(dir, "held") + ": directory lock held by another process"},
		"rocksdb directory not creatable": {"rocksdb://" + filepath.Join(file, "data"), "not a directory"},
		"mysql unreachable": {"mysql://" + freeLocalAddr(t) + "?db=kite&username=root&password=s3cret",
			"connection refused"},
	} {
		t.Run(name, func(t *testing.T) {
			cfg := startupConfig()
			cfg.DB = tc.uri
			d, err := New(context.Background(), cfg, log)
			require.Nil(t, d)
			require.ErrorContains(t, err, tc.want)
			require.ErrorContains(t, err, "open store ")
			require.NotContains(t, err.Error(), "s3cret", "the password is masked")
		})
	}
}

// A start-up failure releases what was opened before it: here the admin
// port is taken, after the store, the NATS and the KiteQ listeners opened.
func TestStartupFailureReleasesWhatWasOpened(t *testing.T) {
	log := slog.New(slog.DiscardHandler)
	held, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer func() { _ = held.Close() }()
	cfg := startupConfig()
	cfg.DB = "rocksdb://" + t.TempDir()
	cfg.NATS, cfg.Bind = freeLocalAddr(t), freeLocalAddr(t)
	cfg.AdminPort = held.Addr().(*net.TCPAddr).Port
	d, err := New(context.Background(), cfg, log)
	require.Nil(t, d)
	require.ErrorContains(t, err, fmt.Sprintf("admin HTTP listener (-pport %d)", cfg.AdminPort))
	require.ErrorContains(t, err, "address already in use")

	st, err := openStore(context.Background(), cfg.DB, log, nil)
	require.NoError(t, err, "the store is closed again")
	require.NoError(t, st.Close())
	for _, addr := range []string{cfg.NATS, cfg.Bind} {
		l, err := net.Listen("tcp", addr)
		require.NoError(t, err, "%s is released", addr)
		require.NoError(t, l.Close())
	}
}

// A broker that fails before it is ready (here: its connection is gone)
// makes run return, with a registry too: the binding watches end with the
// registry, which must be closed before run waits for them.
func TestStartupBrokerFailsBeforeReadyWithRegistry(t *testing.T) {
	reg := filepath.Join(t.TempDir(), "registry.yaml")
	require.NoError(t, os.WriteFile(reg, []byte("brokers:\n  - address: 127.0.0.1:13800\n    topics: [trade]\n"), 0o600))
	cfg := startupConfig()
	cfg.Registry, cfg.Topics = "file://"+reg, []string{"trade"}
	d, err := New(context.Background(), cfg, slog.New(slog.DiscardHandler))
	require.NoError(t, err)
	d.nc.Close() // the broker cannot subscribe
	done := make(chan error, 1)
	go func() { done <- d.Run(context.Background()) }()
	select {
	case err := <-done:
		require.ErrorContains(t, err, "broker stopped at start")
	case <-time.After(10 * time.Second):
		t.Fatal("run did not return within 10 s of the broker failing at start")
	}
}

// -nats on a specific loopback address other than 127.0.0.1: the broker's
// own connection dials that address.
func TestE2EListenOnLoopbackAlias(t *testing.T) {
	d := startTestDaemon(t, func(c *config.Config) { c.NATS, c.Bind = "127.0.0.2:0", "127.0.0.2:0" })
	url := d.br.ClientURL()
	require.Contains(t, url, "nats://127.0.0.2:")
	_, ch := consume(t, url, "s-alias", `{"topic":"trade","messageType":"pay","bindType":"direct","persistent":true}`, "")
	nc := connect(t, url)
	msg, err := nc.Request("kq.trade.pay", []byte("hello"), 5*time.Second)
	require.NoError(t, err)
	require.NotContains(t, string(msg.Data), `"error"`, string(msg.Data))
	require.Equal(t, "hello", string(recv(t, ch).Data))
	require.Equal(t, "127.0.0.2", d.kiteq.Addr().(*net.TCPAddr).IP.String())
}

func TestStartupRedactURI(t *testing.T) {
	for uri, want := range map[string]string{
		"rocksdb://./data": "rocksdb://./data",
		"mysql://db:3306?db=kite&username=root&password=s3cret&shardnum=4": "mysql://db:3306?db=kite&username=root&password=xxxxx&shardnum=4",
		"mysql://a:1,b:2?Password=s3cret":                                  "mysql://a:1,b:2?Password=xxxxx",
		"memory://?maxcap=10":                                              "memory://?maxcap=10",
	} {
		require.Equal(t, want, redactURI(uri), uri)
	}
}

func TestConfigStoreURIs(t *testing.T) {
	log := slog.New(slog.DiscardHandler)
	for _, uri := range []string{"memory://", "memory://.?maxcap=10", "memory://?maxbytes=1000"} {
		s, err := openStore(context.Background(), uri, log, nil)
		require.NoError(t, err, uri)
		require.NoError(t, s.Close())
	}
	for _, uri := range []string{"memory://?maxcap=x", "memory://?maxcap=-1", "file://.", "::"} {
		_, err := openStore(context.Background(), uri, log, nil)
		require.Error(t, err, uri)
	}
}
