package bridge

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"slices"
	"sync"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// Defaults applied by DefaultConfig and to zero-valued Config fields.
const (
	defaultHost            = "127.0.0.1"
	defaultPort            = 4222
	defaultMaxPayload      = 4 << 20
	defaultPingInterval    = 2 * time.Second
	defaultMaxPingsOut     = 2
	defaultServerName      = "kitenats"
	defaultClusterName     = "kitenats"
	defaultMaxConns        = 64 * 1024
	defaultMaxPending      = 64 << 20
	defaultMaxConnsPerHost = 1000
	defaultTLSTimeout      = 2 * time.Second
)

// Limits checked by Validate.
const (
	// maxPayloadLimit is nats-server's default max_pending (64 MiB); the server
	// refuses a max_payload above it.
	maxPayloadLimit = 64 << 20
	// minPingInterval keeps nats-server's first-ping jitter (a random 20% of
	// the interval) well defined and the server from spinning on timers.
	minPingInterval = time.Millisecond
	// randomPort asks nats-server for a free port (tests).
	randomPort = -1
)

// Config configures the embedded nats-server. A zero field takes its default,
// so Config{} is equivalent to DefaultConfig().
type Config struct {
	// Host is the interface the NATS client listener binds.
	// Default "127.0.0.1".
	Host string
	// Port is the NATS client port; -1 picks a random free port (tests).
	// Default 4222.
	Port int
	// MaxPayload is the server's max_payload in bytes: the largest message
	// (headers + body) a client may publish. At most 64 MiB. Default 4 MiB.
	MaxPayload int32
	// PingInterval is how often the server pings an idle client. A client that
	// leaves MaxPingsOut pings unanswered is disconnected, so a dead client is
	// noticed within about PingInterval*(MaxPingsOut+1). At least 1 ms.
	// Default 2s (a dead client is noticed within ~6 s).
	PingInterval time.Duration
	// MaxPingsOut is the number of unanswered pings after which the server
	// closes a client connection. Default 2.
	MaxPingsOut int
	// ServerName names this server in logs, events and monitoring. It must be
	// unique within a cluster (nats-server refuses a route to a server with
	// the same name). Default "kitenats".
	ServerName string
	// Authorizer decides the permissions of every external client. Nil means
	// open mode: every user/pass is accepted with full permissions.
	// Default nil.
	Authorizer Authorizer
	// Logger receives the bridge's and nats-server's logs (Noticef->Info,
	// Warnf->Warn, Errorf/Fatalf->Error, Debugf/Tracef->Debug; nats-server's
	// debug output is switched on when Logger has Debug enabled, its
	// per-message trace never). Default nil: logs are discarded.
	Logger *slog.Logger
	// ClusterName is the NATS cluster name; every broker of one cluster uses
	// the same (a generated name costs a reconnect dance and a warning).
	// Default "kitenats".
	ClusterName string
	// ClusterHost is the interface the NATS route listener binds.
	// Default: Host.
	ClusterHost string
	// ClusterPort is the NATS route port; -1 picks a random free port.
	// Default 0: no cluster listener, no routes.
	ClusterPort int
	// JetStreamDir, when set, enables JetStream with its file store in this
	// directory. The broker never sets it: it exists so that `kitenats bench
	// --compare` can measure an embedded JetStream server as a reference in
	// the same run. Default "": JetStream off.
	JetStreamDir string
	// MaxConnections bounds the client connections served at once
	// (nats-server's max_connections); a client over it is refused with
	// "-ERR 'maximum connections exceeded'". The broker's own connections
	// count too. Default 65536 (nats-server's).
	MaxConnections int
	// MaxConnectionsPerHost bounds the external clients from one IP
	// address; one more is refused at CONNECT (an authorization error) and
	// counted (Server.Refused). The count forgets a client at its
	// Disconnect event, so Events must be consumed. Default 1000; -1 none.
	MaxConnectionsPerHost int
	// MaxPending bounds, in bytes, what the server buffers for one client
	// that does not read (max_pending); a client past it is a slow consumer
	// and is disconnected. Default 64 MiB (nats-server's).
	MaxPending int64
	// Routes are the route URLs of the other brokers
	// ("nats-route://host:port"). They require ClusterPort. Default none.
	// A URL without user info is dialled with RouteUser/RoutePassword.
	Routes []string
	// RouteUser and RoutePassword authenticate routes: the route listener
	// refuses a peer that does not present them, and this server presents
	// them when it dials a peer (nats-server's cluster authorization).
	// Both or neither. Default none: routes are not authenticated.
	RouteUser, RoutePassword string
	// RouteTLS, when set, makes routes TLS only, both ways (nats-server's
	// cluster TLSConfig): it is the listener's config and the dialler's, so
	// it needs a certificate usable as server and client, RootCAs to verify
	// peers and, for mutual TLS, ClientCAs with RequireAndVerifyClientCert.
	// Default nil: plain TCP.
	RouteTLS *tls.Config
	// RouteLocal are subjects (wildcards allowed) kept on this server: its
	// subscriptions on them are not offered to routes, and messages on them
	// are not taken from routes (nats-server's cluster import and export
	// permissions, with these as deny lists). A client's publish on one
	// then reaches this server's subscribers only, queue groups included:
	// nats-server picks a queue member at random across the cluster for a
	// client's message, with no preference for a local one. Default none.
	RouteLocal []string
	// TLS, when set, makes the client listener TLS only (nats-server's
	// TLSConfig): every TCP client does the TLS handshake after the
	// server's INFO (nats.go does it for a tls:// URL, for nats.Secure(),
	// and by itself when INFO says tls_required), and a client that
	// speaks plain NATS is closed. The config is used as given, for every
	// handshake: set GetConfigForClient or GetCertificate on it to change
	// certificates without a restart. In-process connections (Connect,
	// ConnectPublisher, the events) stay plain; ConnectLoopback does TLS
	// too. Default nil: plain TCP.
	TLS *tls.Config
	// TLSTimeout bounds a client's TLS handshake (nats-server's
	// tls_timeout). Default 2 s.
	TLSTimeout time.Duration
	// TLSVerifyClients refuses every external client whose TLS handshake
	// did not present a certificate that TLS verified: TLS must then ask for
	// one and check it against its ClientCAs (tls.VerifyClientCertIfGiven,
	// not RequireAndVerifyClientCert, which would refuse ConnectLoopback's
	// connection, which has none). The Authorizer sees the verified
	// certificate in ConnInfo.Certificate. It needs TLS. Default false.
	TLSVerifyClients bool
}

// DefaultConfig returns the standalone configuration: NATS on 127.0.0.1:4222,
// 4 MiB max payload, 2 s pings, open auth, no cluster, logs discarded.
func DefaultConfig() Config {
	c := Config{}
	c.setDefaults()
	return c
}

// setDefaults replaces zero fields with their defaults.
func (c *Config) setDefaults() {
	if c.Host == "" {
		c.Host = defaultHost
	}
	if c.Port == 0 {
		c.Port = defaultPort
	}
	if c.MaxPayload == 0 {
		c.MaxPayload = defaultMaxPayload
	}
	if c.PingInterval == 0 {
		c.PingInterval = defaultPingInterval
	}
	if c.MaxPingsOut == 0 {
		c.MaxPingsOut = defaultMaxPingsOut
	}
	if c.ServerName == "" {
		c.ServerName = defaultServerName
	}
	if c.ClusterName == "" {
		c.ClusterName = defaultClusterName
	}
	if c.ClusterHost == "" {
		c.ClusterHost = c.Host
	}
	if c.MaxConnections == 0 {
		c.MaxConnections = defaultMaxConns
	}
	if c.MaxPending == 0 {
		c.MaxPending = defaultMaxPending
	}
	if c.MaxConnectionsPerHost == 0 {
		c.MaxConnectionsPerHost = defaultMaxConnsPerHost
	}
	if c.TLSTimeout == 0 {
		c.TLSTimeout = defaultTLSTimeout
	}
}

// Validate reports the first invalid field, after applying defaults to the
// zero fields of a copy of c.
func (c Config) Validate() error {
	c.setDefaults()
	var errs []error
	if !validPort(c.Port) {
		errs = append(errs, fmt.Errorf("bridge: port %d out of range -1..65535", c.Port))
	}
	if c.MaxPayload < 0 || c.MaxPayload > maxPayloadLimit {
		errs = append(errs, fmt.Errorf("bridge: max payload %d out of range 1..%d", c.MaxPayload, maxPayloadLimit))
	}
	if c.PingInterval < minPingInterval {
		errs = append(errs, fmt.Errorf("bridge: ping interval %s below %s", c.PingInterval, minPingInterval))
	}
	if c.MaxPingsOut < 1 {
		errs = append(errs, fmt.Errorf("bridge: max pings out %d below 1", c.MaxPingsOut))
	}
	if c.MaxConnectionsPerHost < -1 {
		errs = append(errs, fmt.Errorf("bridge: max connections per host %d: want a positive bound or -1 for none", c.MaxConnectionsPerHost))
	}
	if c.MaxConnections < 1 || c.MaxPending < 1 {
		errs = append(errs, fmt.Errorf("bridge: max connections %d and max pending %d must be positive", c.MaxConnections, c.MaxPending))
	}
	if !validPort(c.ClusterPort) {
		errs = append(errs, fmt.Errorf("bridge: cluster port %d out of range -1..65535", c.ClusterPort))
	}
	if len(c.Routes) > 0 && c.ClusterPort == 0 {
		errs = append(errs, errors.New("bridge: routes need a cluster port"))
	}
	if _, err := parseRoutes(c.Routes); err != nil {
		errs = append(errs, err)
	}
	if (c.RouteUser == "") != (c.RoutePassword == "") {
		errs = append(errs, errors.New("bridge: route user and route password go together"))
	}
	if c.TLSTimeout < 0 {
		errs = append(errs, fmt.Errorf("bridge: TLS timeout %s is negative", c.TLSTimeout))
	}
	if c.TLSVerifyClients && c.TLS == nil {
		errs = append(errs, errors.New("bridge: verifying client certificates needs TLS"))
	}
	if c.TLSVerifyClients && c.TLS != nil && c.TLS.ClientAuth == tls.RequireAndVerifyClientCert {
		errs = append(errs, errors.New("bridge: TLS.ClientAuth RequireAndVerifyClientCert would refuse the broker's own loopback connection: use VerifyClientCertIfGiven with TLSVerifyClients"))
	}
	return errors.Join(errs...)
}

func validPort(p int) bool {
	return p >= randomPort && p <= 65535
}

// parseRoutes parses route URLs; nats-server's RoutesFromStr ignores errors.
func parseRoutes(routes []string) ([]*url.URL, error) {
	urls := make([]*url.URL, 0, len(routes))
	for _, r := range routes {
		u, err := url.Parse(r)
		if err != nil {
			return nil, fmt.Errorf("bridge: route %q: %w", r, err)
		}
		if u.Host == "" {
			return nil, fmt.Errorf("bridge: route %q has no host:port", r)
		}
		urls = append(urls, u)
	}
	return urls, nil
}

// serverOptions builds nats-server's options. c must have its defaults set
// and be valid. JetStream stays off unless JetStreamDir is set; the system account is nats-server's
// default one ($SYS), which only the bridge's own in-process conn can join.
//
// nats-server's subject-match caches (one per account, one per client
// connection) are off (its no_sublist_cache). They pay off when the same
// subjects are published again and again; most of a broker's messages are
// acks and replies, each on a subject used once ($KQ.ACK.….<delivery>, a
// publisher's _INBOX.….<n>), which only fill them and make the server prune
// them. Without them `kitenats bench` did 16 % more messages a second on the
// memory store and 4 % more on RocksDB (BENCHMARKS.md).
func (c *Config) serverOptions(auth server.Authentication) (*server.Options, error) {
	opts := &server.Options{
		ServerName:                 c.ServerName,
		Host:                       c.Host,
		Port:                       c.Port,
		MaxPayload:                 c.MaxPayload,
		PingInterval:               c.PingInterval,
		MaxPingsOut:                c.MaxPingsOut,
		MaxConn:                    c.MaxConnections,
		MaxPending:                 c.MaxPending,
		NoSigs:                     true,
		NoLog:                      false,
		JetStream:                  c.JetStreamDir != "",
		StoreDir:                   c.JetStreamDir,
		CustomClientAuthentication: auth,
		NoSublistCache:             true,
	}
	if c.TLS != nil {
		// TLSConfig alone switches nats-server's client TLS on (tls_required
		// in INFO); TLSVerify and TLSMap are not set: the authenticator
		// checks and maps client certificates itself (TLSVerifyClients).
		opts.TLSConfig = c.TLS
		opts.TLSTimeout = c.TLSTimeout.Seconds()
	}
	if c.ClusterPort == 0 {
		return opts, nil
	}
	routes, err := parseRoutes(c.Routes)
	if err != nil {
		return nil, err
	}
	opts.Cluster.Name = c.ClusterName
	opts.Cluster.Host = c.ClusterHost
	opts.Cluster.Port = c.ClusterPort
	opts.Cluster.Username = c.RouteUser
	opts.Cluster.Password = c.RoutePassword
	if c.RouteTLS != nil {
		opts.Cluster.TLSConfig = c.RouteTLS
		opts.Cluster.TLSTimeout = c.TLSTimeout.Seconds()
	}
	if len(c.RouteLocal) > 0 {
		opts.Cluster.Permissions = &server.RoutePermissions{
			Import: &server.SubjectPermission{Deny: slices.Clone(c.RouteLocal)},
			Export: &server.SubjectPermission{Deny: slices.Clone(c.RouteLocal)},
		}
	}
	opts.Routes = c.withRouteCreds(routes)
	return opts, nil
}

// withRouteCreds gives every URL without user info RouteUser and
// RoutePassword (nats-server dials an explicit route with the URL's user
// info only).
func (c *Config) withRouteCreds(urls []*url.URL) []*url.URL {
	if c.RouteUser == "" {
		return urls
	}
	for _, u := range urls {
		if u.User == nil {
			u.User = url.UserPassword(c.RouteUser, c.RoutePassword)
		}
	}
	return urls
}

// logAdapter routes nats-server's logger into slog. It remembers the last
// Fatalf message so that Start can report why the server did not come up.
type logAdapter struct {
	log *slog.Logger

	mu    sync.Mutex // guards fatal
	fatal string     // last Fatalf message, "" if none
}

var _ server.Logger = (*logAdapter)(nil)

// Noticef logs at Info.
func (a *logAdapter) Noticef(format string, v ...any) { a.emit(slog.LevelInfo, format, v) }

// Warnf logs at Warn.
func (a *logAdapter) Warnf(format string, v ...any) { a.emit(slog.LevelWarn, format, v) }

// Errorf logs at Error.
func (a *logAdapter) Errorf(format string, v ...any) { a.emit(slog.LevelError, format, v) }

// Debugf logs at Debug.
func (a *logAdapter) Debugf(format string, v ...any) { a.emit(slog.LevelDebug, format, v) }

// Tracef logs at Debug.
func (a *logAdapter) Tracef(format string, v ...any) { a.emit(slog.LevelDebug, format, v) }

// Fatalf logs at Error and remembers the message; it never exits: the server
// stops the failing subsystem itself and Start reports the failure.
func (a *logAdapter) Fatalf(format string, v ...any) {
	msg := fmt.Sprintf(format, v...)
	a.mu.Lock()
	a.fatal = msg
	a.mu.Unlock()
	a.log.Error(msg)
}

func (a *logAdapter) lastFatal() string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.fatal
}

func (a *logAdapter) emit(level slog.Level, format string, v []any) {
	ctx := context.Background()
	if !a.log.Enabled(ctx, level) {
		return
	}
	a.log.Log(ctx, level, fmt.Sprintf(format, v...))
}
