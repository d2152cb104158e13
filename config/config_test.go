package config

import (
	"bytes"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kitenats/kitenats/txn"
)

func TestConfigKiteQClusterTOML(t *testing.T) {
	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	c, err := Parse([]string{"-configPath", "testdata/cluster.toml", "-clusterName", "memory_dev", "-pport", "-1"}, log)
	require.NoError(t, err)
	require.Equal(t, "file://./conf/registry_demo.yaml", c.Registry)
	require.Equal(t, []string{"relation", "message", "user-profile"}, c.Topics)
	require.Equal(t, "memory://.?initcap=10000000&maxcap=2000000", c.DB)
	require.Equal(t, 7*time.Second, c.AckWait)
	require.Equal(t, 100*time.Millisecond, c.Recover, "KiteQ's recoverSeconds would round redelivery up: not used")
	require.Equal(t, 20000, c.AcceptRate)
	require.Equal(t, 64, c.MaxInflight)
	require.Equal(t, 5*time.Minute, c.DedupWindow)
	require.Equal(t, 20000, c.MaxBindingsPerGroup)
	require.Equal(t, 2000, c.MaxConsumersPerGroup)
	require.Zero(t, c.MaxBindingsPerRequest, "absent: the component's default")
	require.Equal(t, map[string]string{"s-user-profile": "123456"}, c.Secrets)
	require.Equal(t, -1, c.AdminPort, "flags override the file")
	require.Equal(t, "127.0.0.1:4222", c.NATS, "defaults stay where nothing says otherwise")
	require.Contains(t, logs.String(), "unknown key ignored")
	require.Contains(t, logs.String(), "someFutureKey")
	require.Contains(t, logs.String(), "maxDeliverWorkers")
}

func TestConfigDefaultsAndFlags(t *testing.T) {
	log := slog.New(slog.DiscardHandler)
	c, err := Parse(nil, log)
	require.NoError(t, err)
	require.Equal(t, Default(), c)
	c, err = Parse([]string{"-nats", "127.0.0.1:5222", "-bind", "127.0.0.1:13900", "-db", "memory://"}, log)
	require.NoError(t, err)
	require.Equal(t, "127.0.0.1:5222", c.NATS)
	require.Equal(t, "127.0.0.1:13900", c.Bind)
	require.Equal(t, "memory://", c.DB)
}

func TestConfigErrors(t *testing.T) {
	log := slog.New(slog.DiscardHandler)
	bad := filepath.Join(t.TempDir(), "bad.toml")
	require.NoError(t, os.WriteFile(bad, []byte("[clusters.x\n"), 0o600))
	noEnv := filepath.Join(t.TempDir(), "noenv.toml")
	require.NoError(t, os.WriteFile(noEnv, []byte("[clusters.x]\nenv = \"nowhere\"\n"), 0o600))
	for name, args := range map[string][]string{
		"missing file":     {"-configPath", "testdata/nope.toml"},
		"syntax":           {"-configPath", bad, "-clusterName", "x"},
		"missing cluster":  {"-configPath", "testdata/cluster.toml", "-clusterName", "nope"},
		"missing registry": {"-configPath", noEnv, "-clusterName", "x"},
		"bad nats addr":    {"-nats", "localhost"},
		"bad port":         {"-pport", "0"},
		"unknown flag":     {"-frobnicate"},
		"stray argument":   {"extra"},
	} {
		_, err := Parse(args, log)
		require.Error(t, err, name)
	}
}

func TestConfigSecretsNeedAdmin(t *testing.T) {
	c := Default()
	c.Secrets = map[string]string{"g": "s"}
	require.ErrorContains(t, c.Validate(), "adminSecret")
}

// Bad values are one error that names each bad key.
func TestConfigValidateNamesEveryKey(t *testing.T) {
	c := Default()
	c.NATS = "localhost"
	c.MaxInflight = 0
	c.AckWait = 0
	c.Tx.Interval = -time.Second
	c.Registry = "zk://127.0.0.1:2181"
	err := c.Validate()
	require.Error(t, err)
	require.NotContains(t, err.Error(), "\n", "one line")
	for _, key := range []string{"-nats", "maxInflight", "deliverySeconds", "txCheckInterval", "topics"} {
		require.ErrorContains(t, err, key)
	}
	require.NoError(t, Default().Validate())
}

// txFinalAction is parsed with the file, and a bad value names the key.
func TestConfigTxFinalAction(t *testing.T) {
	log := slog.New(slog.DiscardHandler)
	dir := t.TempDir()
	write := func(v string) string {
		p := filepath.Join(dir, v+".toml")
		require.NoError(t, os.WriteFile(p, []byte("[clusters.x]\ntxFinalAction = \""+v+"\"\n"), 0o600))
		return p
	}
	c, err := Parse([]string{"-configPath", write("deadletter"), "-clusterName", "x"}, log)
	require.NoError(t, err)
	require.Equal(t, txn.FinalDeadLetter, c.Tx.Final)
	_, err = Parse([]string{"-configPath", write("commit"), "-clusterName", "x"}, log)
	require.ErrorContains(t, err, "txFinalAction")
}

// The connection limits are read from cluster.toml, and bad ones named.
func TestConfigConnectionLimits(t *testing.T) {
	log := slog.New(slog.DiscardHandler)
	p := filepath.Join(t.TempDir(), "limits.toml")
	require.NoError(t, os.WriteFile(p, []byte("[clusters.x]\nmaxConnections = 500\nmaxPending = 1048576\nkiteqMaxConnections = 300\nkiteqMaxConnectionsPerHost = -1\nmaxConnectionsPerHost = 20\npingInterval = \"30s\"\n"), 0o600))
	c, err := Parse([]string{"-configPath", p, "-clusterName", "x"}, log)
	require.NoError(t, err)
	require.Equal(t, 500, c.MaxConnections)
	require.Equal(t, int64(1<<20), c.MaxPending)
	require.Equal(t, 300, c.KiteQMaxConnections)
	require.Equal(t, -1, c.KiteQMaxConnectionsPerHost)
	require.Equal(t, 20, c.MaxConnectionsPerHost)
	require.Equal(t, 30*time.Second, c.PingInterval)
	c.KiteQMaxConnections, c.MaxPending = -2, -1
	require.ErrorContains(t, c.Validate(), "kiteqMaxConnections")
	require.ErrorContains(t, c.Validate(), "maxPending")
}

// metricTopics caps the topics of /metrics' histograms: 100 by default,
// the file's value, and a bad one names the key.
func TestConfigMetricTopics(t *testing.T) {
	log := slog.New(slog.DiscardHandler)
	require.Equal(t, 100, Default().MetricTopics)
	dir := t.TempDir()
	write := func(v string) string {
		p := filepath.Join(dir, "m"+v+".toml")
		require.NoError(t, os.WriteFile(p, []byte("[clusters.x]\nmetricTopics = "+v+"\n"), 0o600))
		return p
	}
	c, err := Parse([]string{"-configPath", write("7"), "-clusterName", "x"}, log)
	require.NoError(t, err)
	require.Equal(t, 7, c.MetricTopics)
	_, err = Parse([]string{"-configPath", write("0"), "-clusterName", "x"}, log)
	require.ErrorContains(t, err, "metricTopics")
}

func TestConfigTLSKeysAndFlags(t *testing.T) {
	log := slog.New(slog.DiscardHandler)
	path := filepath.Join(t.TempDir(), "cluster.toml")
	require.NoError(t, os.WriteFile(path, []byte(`[clusters.x]
tlsCert = "server.pem"
tlsKey = "server-key.pem"
tlsCA = "ca.pem"
natsTLS = true
kiteqTLS = true
kiteqTLSCert = "kiteq.pem"
kiteqTLSKey = "kiteq-key.pem"
`), 0o600))
	c, err := Parse([]string{"-configPath", path, "-clusterName", "x", "-adminTLS", "-tlsVerifyClients"}, log)
	require.NoError(t, err)
	require.Equal(t, TLSConfig{
		Cert: "server.pem", Key: "server-key.pem", CA: "ca.pem", VerifyClients: true,
		NATS:  ListenerTLS{On: true},
		KiteQ: ListenerTLS{On: true, Cert: "kiteq.pem", Key: "kiteq-key.pem"},
		Admin: ListenerTLS{On: true},
	}, c.TLS)
	f, on := c.TLS.Files("kiteq")
	require.True(t, on)
	require.Equal(t, TLSFiles{Listener: "kiteq", Cert: "kiteq.pem", Key: "kiteq-key.pem", CA: "ca.pem",
		CertKey: "kiteqTLSCert", KeyKey: "kiteqTLSKey", CAKey: "tlsCA", VerifyClients: true}, f)
	f, _ = c.TLS.Files("nats")
	require.Equal(t, "tlsCert", f.CertKey)

	// Flags override the file: -natsTLS=false switches the file's off.
	c, err = Parse([]string{"-configPath", path, "-clusterName", "x", "-natsTLS=false", "-tlsCert", "other.pem"}, log)
	require.NoError(t, err)
	require.False(t, c.TLS.NATS.On)
	require.Equal(t, "other.pem", c.TLS.Cert)
}

func TestConfigTLSErrors(t *testing.T) {
	log := slog.New(slog.DiscardHandler)
	for args, want := range map[string]string{
		"-natsTLS":                 "natsTLS: on without a certificate and key (set tlsCert and tlsKey, or natsTLSCert and natsTLSKey)",
		"-kiteqTLS -tlsCert c.pem": "kiteqTLS: on without a certificate and key",
		"-natsTLS -tlsCert c -tlsKey k -tlsVerifyClients": "tlsVerifyClients: natsTLS has no client CA (set tlsCA or natsTLSCA)",
		"-tlsCert c -tlsKey k":                            "tlsCert, tlsKey, tlsCA, tlsVerifyClients: no listener has TLS on",
	} {
		_, err := Parse(strings.Fields(args), log)
		require.ErrorContains(t, err, want, args)
	}
	c := Default()
	c.TLS.Admin.Cert = "admin.pem"
	require.ErrorContains(t, c.Validate(), `adminTLSCert "admin.pem": adminTLS is off`)
}

// The API and binding limits are read from cluster.toml; a bad one is
// named in the error, with what is wanted.
func TestConfigAPILimits(t *testing.T) {
	log := slog.New(slog.DiscardHandler)
	p := filepath.Join(t.TempDir(), "limits.toml")
	require.NoError(t, os.WriteFile(p, []byte(`[clusters.x]
apiWorkers = 8
apiQueuePerGroup = 16
maxRequestBytes = 2097152
maxBindingsPerRequest = 20000
maxBindingsPerGroup = -1
maxBindingsPerTopic = 200000
maxConsumersPerGroup = 500
maxConsumersPerConnection = 10
`), 0o600))
	c, err := Parse([]string{"-configPath", p, "-clusterName", "x"}, log)
	require.NoError(t, err)
	require.Equal(t, []int{8, 16, 2 << 20, 20000, -1, 200000, 500, 10}, []int{c.APIWorkers, c.APIQueuePerGroup, c.MaxRequestBytes,
		c.MaxBindingsPerRequest, c.MaxBindingsPerGroup, c.MaxBindingsPerTopic, c.MaxConsumersPerGroup, c.MaxConsumersPerConnection})
	d := Default()
	require.NoError(t, d.Validate(), "0: the defaults")
	d.APIWorkers, d.MaxBindingsPerTopic = -1, -2
	err = d.Validate()
	require.ErrorContains(t, err, "apiWorkers -1: want 1..1024")
	require.ErrorContains(t, err, "maxBindingsPerTopic -2: want a positive bound, or -1 for none")
}

// The cluster keys come from cluster.toml and the flags, the flags last.
func TestConfigClusterKeysAndFlags(t *testing.T) {
	log := slog.New(slog.DiscardHandler)
	path := filepath.Join(t.TempDir(), "cluster.toml")
	require.NoError(t, os.WriteFile(path, []byte(`[clusters.x]
name = "broker-1"
clusterListen = "10.0.0.5:6222"
routes = ["nats-route://10.0.0.6:6222", "nats-route://10.0.0.7:6222"]
clusterName = "prod"
routeUser = "route"
routePassword = "s3cret"
`), 0o600))
	c, err := Parse([]string{"-configPath", path, "-clusterName", "x"}, log)
	require.NoError(t, err)
	require.Equal(t, ClusterConfig{
		Name: "broker-1", Listen: "10.0.0.5:6222", ClusterName: "prod", RouteUser: "route", RoutePassword: "s3cret",
		Routes: []string{"nats-route://10.0.0.6:6222", "nats-route://10.0.0.7:6222"},
	}, c.Cluster)
	require.Equal(t, "broker-1", c.BrokerName())
	require.Equal(t, "prod", c.NATSClusterName())

	c, err = Parse([]string{"-configPath", path, "-clusterName", "x", "-name", "b2", "-cluster", "127.0.0.1:7222",
		"-routes", "nats-route://127.0.0.1:7223, nats-route://127.0.0.1:7224", "-cluster-name", "dev"}, log)
	require.NoError(t, err)
	require.Equal(t, "b2", c.Cluster.Name)
	require.Equal(t, "127.0.0.1:7222", c.Cluster.Listen)
	require.Equal(t, []string{"nats-route://127.0.0.1:7223", "nats-route://127.0.0.1:7224"}, c.Cluster.Routes)
	require.Equal(t, "dev", c.Cluster.ClusterName)

	// Defaults: no cluster, the name from the host and the KiteQ port.
	d := Default()
	require.Equal(t, DefaultClusterName, d.NATSClusterName())
	host, _ := os.Hostname()
	host, _, _ = strings.Cut(host, ".")
	require.Equal(t, host+"-13800", d.BrokerName())
	d.Bind = "off"
	require.Equal(t, host+"-4222", d.BrokerName())
}

// A route listener that other machines reach is refused without route
// authentication, with an error naming the keys; loopback needs none.
func TestConfigRouteAuthRule(t *testing.T) {
	log := slog.New(slog.DiscardHandler)
	for _, listen := range []string{"0.0.0.0:6222", ":6222", "10.0.0.5:6222", "broker1.example:6222", "[::]:6222"} {
		_, err := Parse([]string{"-cluster", listen}, log)
		require.Error(t, err, listen)
		for _, key := range []string{"-cluster " + listen, "routeUser", "routePassword", "routeTLS"} {
			require.ErrorContains(t, err, key, listen)
		}
		_, err = Parse([]string{"-cluster", listen, "-routeUser", "r", "-routePassword", "p"}, log)
		require.NoError(t, err, listen)
	}
	for _, listen := range []string{"127.0.0.1:6222", "localhost:6222", "[::1]:6222", "127.0.0.2:0"} {
		_, err := Parse([]string{"-cluster", listen, "-routes", "nats-route://127.0.0.1:6223"}, log)
		require.NoError(t, err, listen)
	}
	// TLS stands for the password, and needs a CA.
	c := Default()
	c.Cluster.Listen = "0.0.0.0:6222"
	c.TLS = TLSConfig{Cert: "c.pem", Key: "k.pem", CA: "ca.pem", Route: ListenerTLS{On: true}}
	require.NoError(t, c.Validate())
	c.TLS.CA = ""
	require.ErrorContains(t, c.Validate(), "routeTLS")
	f, on := c.TLS.Files("route")
	require.True(t, on)
	require.Equal(t, "tlsCert", f.CertKey)
}

func TestConfigClusterErrors(t *testing.T) {
	log := slog.New(slog.DiscardHandler)
	for name, args := range map[string][]string{
		"routes without listener": {"-routes", "nats-route://127.0.0.1:6222"},
		"route not a url":         {"-cluster", "127.0.0.1:6222", "-routes", "127.0.0.1:6223"},
		"route without port":      {"-cluster", "127.0.0.1:6222", "-routes", "nats-route://h"},
		"bad listener":            {"-cluster", "6222"},
		"user without password":   {"-cluster", "127.0.0.1:6222", "-routeUser", "r"},
		"bad name":                {"-name", "a b"},
		"name with slash":         {"-name", "a/b"},
		"bad cluster name":        {"-cluster-name", "x y"},
		"routeTLS without listen": {"-routeTLS", "-tlsCert", "c", "-tlsKey", "k", "-tlsCA", "a"},
	} {
		_, err := Parse(args, log)
		require.Error(t, err, name)
	}
}
