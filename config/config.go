package config

import (
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"os"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/BurntSushi/toml"

	"github.com/kitenats/kitenats/txn"
)

// Config is the whole daemon configuration: defaults, then the TOML file
// (KiteQ's cluster.toml keys plus ours), then flags.
type Config struct {
	NATS        string        // NATS client listen address; default 127.0.0.1:4222
	Bind        string        // KiteQ TCP listen address; default 127.0.0.1:13800; "off" disables it
	Advertise   string        // host:port registered for KiteQ clients; default: Bind when its host is specific
	AdminPort   int           // admin HTTP port (KiteQ's -pport); default 13801, -1 off
	DB          string        // store URI; default rocksdb://./data
	Registry    string        // registry URI; empty: none (bindings kept in the store)
	Topics      []string      // topics served; empty: all
	AckWait     time.Duration // KiteQ's deliverySeconds; default 5 s
	Recover     time.Duration // recover loop period (recoverPeriod); default 100 ms
	AcceptRate  int           // KiteQ's recievePermitsPerSecond; 0 = off
	MaxPayload  int           // bytes, default 4 MiB
	MaxInflight int           // per consumer, default 1000
	// Connection limits (0: the component's default, documented in README).
	MaxConnections             int           // NATS clients at once (max_connections); default 65536
	MaxPending                 int64         // NATS bytes buffered for one client that does not read; default 64 MiB
	MaxConnectionsPerHost      int           // NATS clients from one IP; default 1000, -1 none
	PingInterval               time.Duration // NATS server pings an idle client this often; default 2 s
	KiteQMaxConnections        int           // KiteQ connections at once; default 10000, -1 none
	KiteQMaxConnectionsPerHost int           // KiteQ connections from one IP; default 1000, -1 none
	// API and binding limits (0: the component's default, documented in
	// README; for the limits -1 is no bound).
	APIWorkers                int           // $KQ.API calls served at once; default 4
	APIQueuePerGroup          int           // a group's calls waiting; default 64
	MaxRequestBytes           int           // the body of one $KQ.API call; default 1 MiB
	MaxBindingsPerRequest     int           // default 10,000
	MaxBindingsPerGroup       int           // default 50,000
	MaxBindingsPerTopic       int           // default 100,000
	MaxConsumersPerGroup      int           // both protocols; default 10,000
	MaxConsumersPerConnection int           // NATS deliver subjects per connection; default 1,000
	DedupWindow               time.Duration // default 2 min
	BrokerID                  string        // ack-subject token; default random per start
	Secrets                   map[string]string
	AdminSecret               string
	Tx                        TxConfig
	LogLevel                  slog.Level
	LogPath                   string // KiteQ's -logPath: logs go to LogPath/kitenats.log; empty: stderr
	// MetricTopics caps the topics with their own series in /metrics'
	// per-topic histograms (cluster.toml metricTopics); the rest are
	// under topic="other". Default 100.
	MetricTopics int
	// TLS is the listeners' TLS (README, "TLS"). Default: off everywhere.
	TLS TLSConfig
	// Cluster is this broker's place in a cluster (docs/CLUSTERING.md §1).
	Cluster ClusterConfig
}

// ClusterConfig is the broker's name and its NATS routes.
type ClusterConfig struct {
	// Name (-name, name) names the broker in its cluster: nats-server's
	// server name, its route node in the registry, its peers' STAT. Unique
	// in the cluster. Default (BrokerName): <hostname>-<KiteQ port>, or
	// <hostname>-<NATS port> with -bind off.
	Name string
	// Listen (-cluster, clusterListen) is the route listener's host:port;
	// empty: no routes, a broker alone.
	Listen string
	// Routes (-routes, routes) are seed route URLs
	// (nats-route://host:6222); the server's gossip finds the rest.
	Routes []string
	// ClusterName (-cluster-name, clusterName) is the NATS cluster name:
	// the same on every broker of one cluster. Default "kitenats".
	ClusterName string
	// RouteUser and RoutePassword (routeUser, routePassword) authenticate
	// routes, both ways.
	RouteUser, RoutePassword string
}

// DefaultClusterName is the NATS cluster name when none is configured.
const DefaultClusterName = "kitenats"

// BrokerName is the configured name, else <hostname>-<KiteQ port> (the
// NATS port with -bind off).
func (c Config) BrokerName() string {
	if c.Cluster.Name != "" {
		return c.Cluster.Name
	}
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "kitenats"
	}
	if i := strings.IndexByte(host, '.'); i > 0 {
		host = host[:i]
	}
	addr := c.Bind
	if addr == "off" {
		addr = c.NATS
	}
	_, port, _ := SplitHostPort(addr)
	return fmt.Sprintf("%s-%d", host, port)
}

// NATSClusterName is the configured NATS cluster name, else
// DefaultClusterName.
func (c Config) NATSClusterName() string {
	if c.Cluster.ClusterName != "" {
		return c.Cluster.ClusterName
	}
	return DefaultClusterName
}

// TLSConfig is the TLS of the three listeners: a shared certificate, key
// and client CA that every listener with TLS on uses unless it names its
// own (the NATS routes of the clustering work will take the same keys).
type TLSConfig struct {
	Cert string // tlsCert: PEM certificate chain, leaf first
	Key  string // tlsKey: PEM private key of the leaf
	CA   string // tlsCA: PEM CA certificates that client certificates must chain to; optional
	// VerifyClients (tlsVerifyClients) requires a client certificate that
	// chains to the CA on every listener with TLS on. Without it a client
	// certificate is optional, and verified (and on NATS mapped to its
	// group) when given and a CA is set.
	VerifyClients bool
	// The listeners: natsTLS, kiteqTLS, adminTLS switch TLS on; their
	// <name>TLSCert, <name>TLSKey and <name>TLSCA override the shared files.
	// routeTLS is the routes' TLS, both ways: it needs a CA (peers verify
	// each other's certificates).
	NATS, KiteQ, Admin, Route ListenerTLS
}

// ListenerTLS is one listener's TLS switch and its own files, if any.
type ListenerTLS struct {
	On            bool
	Cert, Key, CA string
}

// TLSFiles are the files one listener uses, each with the config key that
// names it (for errors: "natsTLSCert" or "tlsCert").
type TLSFiles struct {
	Listener               string // "nats", "kiteq", "admin"
	Cert, Key, CA          string
	CertKey, KeyKey, CAKey string
	VerifyClients          bool
}

// tlsListeners are the names of the listeners that take TLS, in the order of
// their keys' prefixes (natsTLS, kiteqTLS, adminTLS).
var tlsListeners = []string{"nats", "kiteq", "admin", "route"}

func (t *TLSConfig) listener(name string) *ListenerTLS {
	switch name {
	case "nats":
		return &t.NATS
	case "kiteq":
		return &t.KiteQ
	case "admin":
		return &t.Admin
	case "route":
		return &t.Route
	}
	panic("config: no listener " + name)
}

// Files returns the files the listener uses and whether its TLS is on.
func (t TLSConfig) Files(listener string) (TLSFiles, bool) {
	l := t.listener(listener)
	f := TLSFiles{Listener: listener, VerifyClients: t.VerifyClients}
	pick := func(own, shared, suffix string) (string, string) {
		if own != "" {
			return own, listener + "TLS" + suffix
		}
		return shared, "tls" + suffix
	}
	f.Cert, f.CertKey = pick(l.Cert, t.Cert, "Cert")
	f.Key, f.KeyKey = pick(l.Key, t.Key, "Key")
	f.CA, f.CAKey = pick(l.CA, t.CA, "CA")
	return f, l.On
}

// TxConfig is the two-phase-commit check-back schedule.
type TxConfig struct {
	FirstCheck time.Duration   // after a prepare; default 5 s
	Interval   time.Duration   // between checks; default 10 s
	MaxChecks  int             // then the final action; default 10
	Final      txn.FinalAction // txFinalAction: rollback (default) or deadletter
}

// The daemon's log file, with -logPath DIR (KiteQ's flag): DIR/kitenats.log,
// rotated when it reaches LogMaxSizeMB, the rotated files renamed
// kitenats-<UTC time>.log beside it and the LogMaxBackups newest kept.
// Without -logPath the logs go to stderr.
const (
	LogFileName   = "kitenats.log"
	LogMaxSizeMB  = 100
	LogMaxBackups = 10
)

// Default is ARCHITECTURE.md's standalone default.
func Default() Config {
	return Config{
		NATS:        "127.0.0.1:4222",
		Bind:        "127.0.0.1:13800",
		AdminPort:   13801,
		DB:          "rocksdb://./data",
		AckWait:     5 * time.Second,
		Recover:     100 * time.Millisecond,
		MaxPayload:  4 << 20,
		MaxInflight: 1000,
		DedupWindow: 2 * time.Minute,
		// admin.DefaultMaxTopics (config imports nothing but txn).
		MetricTopics: 100,
	}
}

// tomlFile is KiteQ's cluster.toml: [registry.<env>] hosts and
// [clusters.<name>] sections.
type tomlFile struct {
	Registry map[string]struct {
		Hosts string `toml:"hosts"`
	} `toml:"registry"`
	Clusters map[string]tomlCluster `toml:"clusters"`
}

type tomlCluster struct {
	// KiteQ's keys.
	Env                     string   `toml:"env"`
	Topics                  []string `toml:"topics"`
	DLQExecHour             int      `toml:"dlqExecHour"`
	DeliveryFirst           bool     `toml:"deliveryFirst"`
	LogXML                  string   `toml:"logxml"`
	DB                      string   `toml:"db"`
	DeliverySeconds         int      `toml:"deliverySeconds"`
	MaxDeliverWorkers       int      `toml:"maxDeliverWorkers"`
	RecoverSeconds          int      `toml:"recoverSeconds"`
	RecievePermitsPerSecond int      `toml:"recievePermitsPerSecond"`
	// Ours.
	NATS         string `toml:"nats"`
	Advertise    string `toml:"advertise"`
	MaxPayload   int    `toml:"maxPayload"`
	MaxInflight  int    `toml:"maxInflight"`
	MetricTopics int    `toml:"metricTopics"`
	// Connection limits.
	MaxConnections             int    `toml:"maxConnections"`
	MaxPending                 int64  `toml:"maxPending"`
	MaxConnectionsPerHost      int    `toml:"maxConnectionsPerHost"`
	PingInterval               string `toml:"pingInterval"`
	KiteQMaxConnections        int    `toml:"kiteqMaxConnections"`
	KiteQMaxConnectionsPerHost int    `toml:"kiteqMaxConnectionsPerHost"`
	// API and binding limits.
	APIWorkers                int               `toml:"apiWorkers"`
	APIQueuePerGroup          int               `toml:"apiQueuePerGroup"`
	MaxRequestBytes           int               `toml:"maxRequestBytes"`
	MaxBindingsPerRequest     int               `toml:"maxBindingsPerRequest"`
	MaxBindingsPerGroup       int               `toml:"maxBindingsPerGroup"`
	MaxBindingsPerTopic       int               `toml:"maxBindingsPerTopic"`
	MaxConsumersPerGroup      int               `toml:"maxConsumersPerGroup"`
	MaxConsumersPerConnection int               `toml:"maxConsumersPerConnection"`
	DedupWindow               string            `toml:"dedupWindow"`
	BrokerID                  string            `toml:"brokerId"`
	Secrets                   map[string]string `toml:"secrets"`
	AdminSecret               string            `toml:"adminSecret"`
	RecoverPeriod             string            `toml:"recoverPeriod"`
	TxFirstCheck              string            `toml:"txFirstCheck"`
	TxInterval                string            `toml:"txCheckInterval"`
	TxMaxChecks               int               `toml:"txMaxChecks"`
	TxFinal                   string            `toml:"txFinalAction"`
	// TLS.
	TLSCert          string `toml:"tlsCert"`
	TLSKey           string `toml:"tlsKey"`
	TLSCA            string `toml:"tlsCA"`
	TLSVerifyClients bool   `toml:"tlsVerifyClients"`
	NATSTLS          bool   `toml:"natsTLS"`
	NATSTLSCert      string `toml:"natsTLSCert"`
	NATSTLSKey       string `toml:"natsTLSKey"`
	NATSTLSCA        string `toml:"natsTLSCA"`
	KiteQTLS         bool   `toml:"kiteqTLS"`
	KiteQTLSCert     string `toml:"kiteqTLSCert"`
	KiteQTLSKey      string `toml:"kiteqTLSKey"`
	KiteQTLSCA       string `toml:"kiteqTLSCA"`
	AdminTLS         bool   `toml:"adminTLS"`
	AdminTLSCert     string `toml:"adminTLSCert"`
	AdminTLSKey      string `toml:"adminTLSKey"`
	AdminTLSCA       string `toml:"adminTLSCA"`
	RouteTLS         bool   `toml:"routeTLS"`
	RouteTLSCert     string `toml:"routeTLSCert"`
	RouteTLSKey      string `toml:"routeTLSKey"`
	RouteTLSCA       string `toml:"routeTLSCA"`
	// Cluster.
	Name          string   `toml:"name"`
	ClusterListen string   `toml:"clusterListen"`
	Routes        []string `toml:"routes"`
	ClusterName   string   `toml:"clusterName"`
	RouteUser     string   `toml:"routeUser"`
	RoutePassword string   `toml:"routePassword"`
}

// ignoredKiteQKeys are KiteQ keys we read and do not need.
var ignoredKiteQKeys = map[string]string{
	"dlqExecHour":       "dead letters move at once, not in a daily job",
	"deliveryFirst":     "kitenats always stores before it delivers",
	"logxml":            "logs go to stderr, or with -logPath DIR to DIR/kitenats.log",
	"maxDeliverWorkers": "deliveries are bounded per consumer by maxInflight",
	"recoverSeconds":    "redelivery times are exact; the recover loop runs every recoverPeriod (default 100ms)",
}

// loadTOML applies the [clusters.<cluster>] section of path to c. Unknown
// keys are warned about, not fatal; KiteQ keys we do not need are noted.
func loadTOML(c *Config, path, cluster string, log *slog.Logger) error {
	var f tomlFile
	md, err := toml.DecodeFile(path, &f)
	if err != nil {
		return fmt.Errorf("config %s: %w", path, err)
	}
	for _, k := range md.Undecoded() {
		log.Warn("config: unknown key ignored", "key", k.String(), "file", path)
	}
	cl, ok := f.Clusters[cluster]
	if !ok {
		names := make([]string, 0, len(f.Clusters))
		for n := range f.Clusters {
			names = append(names, n)
		}
		sort.Strings(names)
		return fmt.Errorf("config %s: no [clusters.%s] (have %s)", path, cluster, strings.Join(names, ", "))
	}
	for k, why := range ignoredKiteQKeys {
		if md.IsDefined("clusters", cluster, k) {
			log.Info("config: KiteQ key not needed", "key", k, "why", why)
		}
	}
	if cl.Env != "" {
		reg, ok := f.Registry[cl.Env]
		if !ok {
			return fmt.Errorf("config %s: cluster %s names env %q but there is no [registry.%s]", path, cluster, cl.Env, cl.Env)
		}
		c.Registry = reg.Hosts
	}
	if cl.Topics != nil {
		c.Topics = cl.Topics
	}
	if cl.DB != "" {
		c.DB = cl.DB
	}
	if cl.DeliverySeconds > 0 {
		c.AckWait = time.Duration(cl.DeliverySeconds) * time.Second
	}
	if cl.RecoverPeriod != "" {
		if c.Recover, err = time.ParseDuration(cl.RecoverPeriod); err != nil {
			return fmt.Errorf("config %s: recoverPeriod: %w", path, err)
		}
	}
	c.AcceptRate = cl.RecievePermitsPerSecond
	if cl.NATS != "" {
		c.NATS = cl.NATS
	}
	if cl.Advertise != "" {
		c.Advertise = cl.Advertise
	}
	if cl.MaxPayload > 0 {
		c.MaxPayload = cl.MaxPayload
	}
	if cl.MaxInflight > 0 {
		c.MaxInflight = cl.MaxInflight
	}
	c.MaxConnections, c.MaxPending, c.MaxConnectionsPerHost = cl.MaxConnections, cl.MaxPending, cl.MaxConnectionsPerHost
	if cl.PingInterval != "" {
		if c.PingInterval, err = time.ParseDuration(cl.PingInterval); err != nil {
			return fmt.Errorf("config %s: pingInterval: %w", path, err)
		}
	}
	c.KiteQMaxConnections, c.KiteQMaxConnectionsPerHost = cl.KiteQMaxConnections, cl.KiteQMaxConnectionsPerHost
	if md.IsDefined("clusters", cluster, "metricTopics") {
		c.MetricTopics = cl.MetricTopics
	}
	c.APIWorkers, c.APIQueuePerGroup, c.MaxRequestBytes = cl.APIWorkers, cl.APIQueuePerGroup, cl.MaxRequestBytes
	c.MaxBindingsPerRequest, c.MaxBindingsPerGroup, c.MaxBindingsPerTopic = cl.MaxBindingsPerRequest, cl.MaxBindingsPerGroup, cl.MaxBindingsPerTopic
	c.MaxConsumersPerGroup, c.MaxConsumersPerConnection = cl.MaxConsumersPerGroup, cl.MaxConsumersPerConnection
	if cl.DedupWindow != "" {
		if c.DedupWindow, err = time.ParseDuration(cl.DedupWindow); err != nil {
			return fmt.Errorf("config %s: dedupWindow: %w", path, err)
		}
	}
	if cl.BrokerID != "" {
		c.BrokerID = cl.BrokerID
	}
	c.Secrets, c.AdminSecret = cl.Secrets, cl.AdminSecret
	for _, d := range []struct {
		key string
		val string
		dst *time.Duration
	}{{"txFirstCheck", cl.TxFirstCheck, &c.Tx.FirstCheck}, {"txCheckInterval", cl.TxInterval, &c.Tx.Interval}} {
		if d.val == "" {
			continue
		}
		if *d.dst, err = time.ParseDuration(d.val); err != nil {
			return fmt.Errorf("config %s: %s: %w", path, d.key, err)
		}
	}
	if cl.TxMaxChecks > 0 {
		c.Tx.MaxChecks = cl.TxMaxChecks
	}
	c.TLS = TLSConfig{
		Cert: cl.TLSCert, Key: cl.TLSKey, CA: cl.TLSCA, VerifyClients: cl.TLSVerifyClients,
		NATS:  ListenerTLS{On: cl.NATSTLS, Cert: cl.NATSTLSCert, Key: cl.NATSTLSKey, CA: cl.NATSTLSCA},
		KiteQ: ListenerTLS{On: cl.KiteQTLS, Cert: cl.KiteQTLSCert, Key: cl.KiteQTLSKey, CA: cl.KiteQTLSCA},
		Admin: ListenerTLS{On: cl.AdminTLS, Cert: cl.AdminTLSCert, Key: cl.AdminTLSKey, CA: cl.AdminTLSCA},
		Route: ListenerTLS{On: cl.RouteTLS, Cert: cl.RouteTLSCert, Key: cl.RouteTLSKey, CA: cl.RouteTLSCA},
	}
	c.Cluster = ClusterConfig{
		Name: cl.Name, Listen: cl.ClusterListen, Routes: cl.Routes, ClusterName: cl.ClusterName,
		RouteUser: cl.RouteUser, RoutePassword: cl.RoutePassword,
	}
	if cl.TxFinal != "" {
		if err := c.Tx.Final.UnmarshalText([]byte(cl.TxFinal)); err != nil {
			return fmt.Errorf("config %s: txFinalAction: %w", path, err)
		}
	}
	return nil
}

// serveFlags are the serve flags' values once parsed.
type serveFlags struct {
	nats, bind, advertise, db, registry, cluster, configPath, logPath *string
	tlsCert, tlsKey, tlsCA                                            *string
	name, clusterListen, routes, natsCluster, routeUser, routePass    *string
	pport                                                             *int
	debug, tlsVerify, natsTLS, kiteqTLS, adminTLS, routeTLS           *bool
}

// newFlagSet defines the serve flags (KiteQ's -clusterName -configPath
// -pport -bind, plus ours).
func newFlagSet() (*flag.FlagSet, serveFlags) {
	fs := flag.NewFlagSet("kitenats", flag.ContinueOnError)
	var f serveFlags
	f.nats = fs.String("nats", "", "NATS listen address (default 127.0.0.1:4222)")
	f.bind = fs.String("bind", "", "KiteQ TCP listen address (default 127.0.0.1:13800; off: no KiteQ adapter)")
	f.advertise = fs.String("advertise", "", "host:port registered in the registry for KiteQ clients (default: -bind)")
	f.pport = fs.Int("pport", 0, "admin HTTP port on the -nats host (default 13801; -1 off)")
	f.db = fs.String("db", "", "store URI: rocksdb://DIR[?durability=sync|async], memory://, mysql://... (default rocksdb://./data)")
	f.registry = fs.String("registry", "", "registry URI: zk://host:port,... or file://path.yaml (default none)")
	f.cluster = fs.String("clusterName", "default_dev", "the [clusters.<name>] section of the config file")
	f.configPath = fs.String("configPath", "", "TOML config file (KiteQ's cluster.toml keys are accepted)")
	f.logPath = fs.String("logPath", "", fmt.Sprintf("directory of the log file %s, rotated at %d MB, %d old files kept (KiteQ's flag; default: logs go to stderr)", LogFileName, LogMaxSizeMB, LogMaxBackups))
	f.debug = fs.Bool("debug", false, "debug logging")
	f.tlsCert = fs.String("tlsCert", "", "PEM certificate (chain, leaf first) of the listeners with TLS on; re-read on SIGHUP")
	f.tlsKey = fs.String("tlsKey", "", "PEM private key of -tlsCert; re-read on SIGHUP")
	f.tlsCA = fs.String("tlsCA", "", "PEM CA certificates that client certificates must chain to (optional); re-read on SIGHUP")
	f.tlsVerify = fs.Bool("tlsVerifyClients", false, "require a client certificate that chains to -tlsCA on every listener with TLS on (NATS: its CN is the group)")
	f.natsTLS = fs.Bool("natsTLS", false, "NATS clients over TLS only (tls:// URLs)")
	f.kiteqTLS = fs.Bool("kiteqTLS", false, "KiteQ TCP over TLS only (the original KiteQ client has no TLS)")
	f.adminTLS = fs.Bool("adminTLS", false, "admin HTTP over HTTPS only")
	f.routeTLS = fs.Bool("routeTLS", false, "routes over mutual TLS only (-tlsCert, -tlsKey and -tlsCA; peers verify each other)")
	f.name = fs.String("name", "", "this broker's name in its cluster, unique (default <hostname>-<KiteQ port>)")
	f.clusterListen = fs.String("cluster", "", "route listener host:port, e.g. 0.0.0.0:6222 (default none: no cluster)")
	f.routes = fs.String("routes", "", "seed routes, comma-separated: nats-route://host:6222,... (optional with a zk:// registry)")
	f.natsCluster = fs.String("cluster-name", "", "NATS cluster name, the same on every broker of a cluster (default kitenats)")
	f.routeUser = fs.String("routeUser", "", "user that routes authenticate with, both ways (with -routePassword)")
	f.routePass = fs.String("routePassword", "", "password of -routeUser (better in cluster.toml: routePassword)")
	return fs, f
}

// PrintFlags writes the serve flags and their defaults to w, as the flag
// package does (for `kitenats serve -h`).
func PrintFlags(w io.Writer) {
	fs, _ := newFlagSet()
	fs.SetOutput(w)
	fs.PrintDefaults()
}

// Parse reads the serve flags into a Config.
func Parse(args []string, log *slog.Logger) (Config, error) {
	fs, f := newFlagSet()
	fs.SetOutput(io.Discard) // the error is returned; `kitenats serve -h` prints the help
	natsAddr, bind, advertise, pport, db, reg := f.nats, f.bind, f.advertise, f.pport, f.db, f.registry
	cluster, cfgPath, logPath, debug := f.cluster, f.configPath, f.logPath, f.debug
	if err := fs.Parse(args); err != nil {
		return Config{}, err
	}
	if fs.NArg() > 0 {
		return Config{}, fmt.Errorf("unexpected arguments: %v", fs.Args())
	}
	c := Default()
	if *cfgPath != "" {
		if err := loadTOML(&c, *cfgPath, *cluster, log); err != nil {
			return Config{}, err
		}
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if set["nats"] {
		c.NATS = *natsAddr
	}
	if set["bind"] {
		c.Bind = *bind
	}
	if set["advertise"] {
		c.Advertise = *advertise
	}
	if set["pport"] {
		c.AdminPort = *pport
	}
	if set["db"] {
		c.DB = *db
	}
	if set["registry"] {
		c.Registry = *reg
	}
	for _, s := range []struct {
		name     string
		dst, val *string
	}{{"tlsCert", &c.TLS.Cert, f.tlsCert}, {"tlsKey", &c.TLS.Key, f.tlsKey}, {"tlsCA", &c.TLS.CA, f.tlsCA}} {
		if set[s.name] {
			*s.dst = *s.val
		}
	}
	for _, b := range []struct {
		name     string
		dst, val *bool
	}{{"tlsVerifyClients", &c.TLS.VerifyClients, f.tlsVerify}, {"natsTLS", &c.TLS.NATS.On, f.natsTLS},
		{"kiteqTLS", &c.TLS.KiteQ.On, f.kiteqTLS}, {"adminTLS", &c.TLS.Admin.On, f.adminTLS}, {"routeTLS", &c.TLS.Route.On, f.routeTLS}} {
		if set[b.name] {
			*b.dst = *b.val
		}
	}
	for _, s := range []struct {
		name     string
		dst, val *string
	}{{"name", &c.Cluster.Name, f.name}, {"cluster", &c.Cluster.Listen, f.clusterListen},
		{"cluster-name", &c.Cluster.ClusterName, f.natsCluster}, {"routeUser", &c.Cluster.RouteUser, f.routeUser},
		{"routePassword", &c.Cluster.RoutePassword, f.routePass}} {
		if set[s.name] {
			*s.dst = *s.val
		}
	}
	if set["routes"] {
		c.Cluster.Routes = nil
		for r := range strings.SplitSeq(*f.routes, ",") {
			if r = strings.TrimSpace(r); r != "" {
				c.Cluster.Routes = append(c.Cluster.Routes, r)
			}
		}
	}
	if *debug {
		c.LogLevel = slog.LevelDebug
	}
	c.LogPath = *logPath
	return c, c.Validate()
}

// Validate checks c and returns one error naming every bad key (the flag's
// name where a flag sets it, else the cluster.toml key).
func (c Config) Validate() error {
	var bad []string
	for _, a := range []struct{ name, addr string }{{"nats", c.NATS}, {"bind", c.Bind}} {
		if a.name == "bind" && a.addr == "off" {
			continue
		}
		if _, _, err := SplitHostPort(a.addr); err != nil {
			bad = append(bad, fmt.Sprintf("-%s %q: %v", a.name, a.addr, err))
		}
	}
	if c.AdminPort < -1 || c.AdminPort > 65535 || c.AdminPort == 0 {
		bad = append(bad, fmt.Sprintf("-pport %d: want 1..65535, or -1 for off", c.AdminPort))
	}
	if c.DB == "" {
		bad = append(bad, "db: empty (want rocksdb://DIR, memory:// or mysql://…)")
	}
	if c.MaxPayload <= 0 || c.MaxPayload > 64<<20 {
		bad = append(bad, fmt.Sprintf("maxPayload %d: want 1..64 MiB", c.MaxPayload))
	}
	if c.MaxInflight <= 0 {
		bad = append(bad, fmt.Sprintf("maxInflight %d: want a positive number", c.MaxInflight))
	}
	if c.MaxConnectionsPerHost < -1 {
		bad = append(bad, fmt.Sprintf("maxConnectionsPerHost %d: want a positive bound, or -1 for none", c.MaxConnectionsPerHost))
	}
	if c.PingInterval < 0 || (c.PingInterval > 0 && c.PingInterval < time.Millisecond) {
		bad = append(bad, fmt.Sprintf("pingInterval %s: want at least 1ms", c.PingInterval))
	}
	if c.MaxConnections < 0 || c.MaxPending < 0 {
		bad = append(bad, fmt.Sprintf("maxConnections %d, maxPending %d: must not be negative", c.MaxConnections, c.MaxPending))
	}
	if c.KiteQMaxConnections < -1 || c.KiteQMaxConnectionsPerHost < -1 {
		bad = append(bad, fmt.Sprintf("kiteqMaxConnections %d, kiteqMaxConnectionsPerHost %d: want a positive bound, or -1 for none",
			c.KiteQMaxConnections, c.KiteQMaxConnectionsPerHost))
	}
	if c.MetricTopics <= 0 {
		bad = append(bad, fmt.Sprintf("metricTopics %d: want a positive number", c.MetricTopics))
	}
	if c.AcceptRate < 0 {
		bad = append(bad, fmt.Sprintf("recievePermitsPerSecond %d: must not be negative", c.AcceptRate))
	}
	for _, n := range []struct {
		key string
		val int
	}{{"apiWorkers", c.APIWorkers}, {"apiQueuePerGroup", c.APIQueuePerGroup}} {
		if n.val < 0 || n.val > 1024 {
			bad = append(bad, fmt.Sprintf("%s %d: want 1..1024 (0: the default)", n.key, n.val))
		}
	}
	for _, n := range []struct {
		key string
		val int
	}{
		{"maxRequestBytes", c.MaxRequestBytes}, {"maxBindingsPerRequest", c.MaxBindingsPerRequest},
		{"maxBindingsPerGroup", c.MaxBindingsPerGroup}, {"maxBindingsPerTopic", c.MaxBindingsPerTopic},
		{"maxConsumersPerGroup", c.MaxConsumersPerGroup}, {"maxConsumersPerConnection", c.MaxConsumersPerConnection},
	} {
		if n.val < -1 {
			bad = append(bad, fmt.Sprintf("%s %d: want a positive bound, or -1 for none (0: the default)", n.key, n.val))
		}
	}
	for _, d := range []struct {
		key string
		val time.Duration
	}{{"deliverySeconds", c.AckWait}, {"recoverPeriod", c.Recover}, {"dedupWindow", c.DedupWindow}} {
		if d.val <= 0 {
			bad = append(bad, fmt.Sprintf("%s %s: want a positive duration", d.key, d.val))
		}
	}
	for _, d := range []struct {
		key string
		val time.Duration
	}{{"txFirstCheck", c.Tx.FirstCheck}, {"txCheckInterval", c.Tx.Interval}} {
		if d.val < 0 {
			bad = append(bad, fmt.Sprintf("%s %s: must not be negative", d.key, d.val))
		}
	}
	if c.Registry != "" && len(c.Topics) == 0 {
		bad = append(bad, "topics: with a registry, the served topics must be listed")
	}
	if c.AdminSecret == "" && len(c.Secrets) > 0 {
		bad = append(bad, "adminSecret: secrets are configured without it, so the admin user would be locked out")
	}
	bad = append(bad, c.TLS.validate()...)
	bad = append(bad, c.Cluster.validate(c.TLS.Route.On)...)
	if len(bad) == 0 {
		return nil
	}
	return fmt.Errorf("bad config: %s", strings.Join(bad, "; "))
}

// validate names the TLS keys that cannot work together; whether the files
// exist and hold a matching pair is checked when they are loaded (daemon).
func (t TLSConfig) validate() []string {
	var bad []string
	on := 0
	for _, name := range tlsListeners {
		f, ok := t.Files(name)
		if !ok {
			for _, k := range []struct{ key, val string }{{"Cert", t.listener(name).Cert}, {"Key", t.listener(name).Key}, {"CA", t.listener(name).CA}} {
				if k.val != "" {
					bad = append(bad, fmt.Sprintf("%sTLS%s %q: %sTLS is off", name, k.key, k.val, name))
				}
			}
			continue
		}
		on++
		if f.Cert == "" || f.Key == "" {
			bad = append(bad, fmt.Sprintf("%sTLS: on without a certificate and key (set tlsCert and tlsKey, or %sTLSCert and %sTLSKey)", name, name, name))
		}
		if name == "route" && f.CA == "" {
			bad = append(bad, "routeTLS: peers verify each other's certificates: set tlsCA or routeTLSCA")
		}
		if t.VerifyClients && f.CA == "" && name != "route" {
			bad = append(bad, fmt.Sprintf("tlsVerifyClients: %sTLS has no client CA (set tlsCA or %sTLSCA)", name, name))
		}
	}
	if on == 0 && (t.Cert != "" || t.Key != "" || t.CA != "" || t.VerifyClients) {
		bad = append(bad, "tlsCert, tlsKey, tlsCA, tlsVerifyClients: no listener has TLS on (set natsTLS, kiteqTLS, adminTLS or routeTLS)")
	}
	return bad
}

// validName is what a broker or NATS cluster name may hold: it names a
// znode and a nats-server, and shows in logs.
var validName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$`)

// validate checks the cluster keys. A route listener that other machines
// can reach must authenticate its peers: routeUser and routePassword, or
// routeTLS (routeTLS is the TLS switch, checked with the other TLS keys).
func (cl ClusterConfig) validate(routeTLS bool) []string {
	var bad []string
	if cl.Name != "" && !validName.MatchString(cl.Name) {
		bad = append(bad, fmt.Sprintf("-name %q: want letters, digits, '.', '_' or '-' (at most 128)", cl.Name))
	}
	if cl.ClusterName != "" && !validName.MatchString(cl.ClusterName) {
		bad = append(bad, fmt.Sprintf("-cluster-name %q: want letters, digits, '.', '_' or '-' (at most 128)", cl.ClusterName))
	}
	if (cl.RouteUser == "") != (cl.RoutePassword == "") {
		bad = append(bad, "routeUser, routePassword: set both or neither")
	}
	for _, r := range cl.Routes {
		u, err := url.Parse(r)
		switch {
		case err != nil:
			bad = append(bad, fmt.Sprintf("-routes %q: %v", r, err))
		case u.Scheme != "nats-route" && u.Scheme != "nats" || u.Host == "" || u.Port() == "":
			bad = append(bad, fmt.Sprintf("-routes %q: want nats-route://host:port", r))
		}
	}
	if cl.Listen == "" {
		if len(cl.Routes) > 0 {
			bad = append(bad, "-routes: needs a route listener (-cluster host:port, clusterListen)")
		}
		if routeTLS {
			bad = append(bad, "routeTLS: needs a route listener (-cluster host:port, clusterListen)")
		}
		return bad
	}
	host, _, err := SplitHostPort(cl.Listen)
	if err != nil {
		return append(bad, fmt.Sprintf("-cluster %q: %v", cl.Listen, err))
	}
	if !isLoopback(host) && cl.RouteUser == "" && !routeTLS {
		bad = append(bad, fmt.Sprintf("-cluster %s: a route listener on a non-loopback address needs route authentication: set routeUser and routePassword (-routeUser, -routePassword), or routeTLS with tlsCert, tlsKey and tlsCA", cl.Listen))
	}
	return bad
}

// isLoopback reports whether a listen host is reachable from this machine
// only: a loopback IP or "localhost". An empty host listens everywhere.
func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// SplitHostPort splits host:port and checks the port.
func SplitHostPort(addr string) (string, int, error) {
	host, ps, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, err
	}
	p, err := strconv.Atoi(ps)
	if err != nil || p < 0 || p > 65535 {
		return "", 0, fmt.Errorf("bad port %q", ps)
	}
	return host, p, nil
}
