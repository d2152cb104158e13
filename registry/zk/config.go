package zk

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Defaults of Config, KiteQ's values where KiteQ has one.
const (
	// DefaultServer is the ZooKeeper address KiteQ uses when a zk:// URI
	// names no host.
	DefaultServer = "localhost:2181"
	// DefaultSessionTimeout is KiteQ's fixed session timeout.
	DefaultSessionTimeout = 5 * time.Second
	// DefaultRetryInterval is the pause before a failed watch read or a
	// failed re-publication after a new session is tried again.
	DefaultRetryInterval = time.Second
)

// Config configures a Registry.
type Config struct {
	// Servers are the ZooKeeper servers as host:port (a host alone gets
	// port 2181). Default: [DefaultServer].
	Servers []string
	// SessionTimeout is the requested ZooKeeper session timeout; the
	// server may adjust it. Ephemeral nodes vanish this long after the
	// broker stops talking to ZooKeeper. Default 5 s (KiteQ's).
	SessionTimeout time.Duration
	// RetryInterval is how long a watch waits before reading its topic
	// again after a failed read, and how long the session loop waits
	// before re-publishing again after a failure. Default 1 s.
	RetryInterval time.Duration
	// Logger receives the registry's logs and go-zookeeper's (at Debug,
	// except its failures at Warn). Default: discard.
	Logger *slog.Logger
}

// DefaultConfig returns a Config with every default set.
func DefaultConfig() Config {
	c := Config{}
	c.setDefaults()
	return c
}

func (c *Config) setDefaults() {
	if len(c.Servers) == 0 {
		c.Servers = []string{DefaultServer}
	}
	if c.SessionTimeout == 0 {
		c.SessionTimeout = DefaultSessionTimeout
	}
	if c.RetryInterval == 0 {
		c.RetryInterval = DefaultRetryInterval
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
}

// Validate reports what is wrong with c once defaults are applied: an
// empty server, or a negative duration.
func (c Config) Validate() error {
	c.setDefaults()
	for _, s := range c.Servers {
		if strings.TrimSpace(s) == "" {
			return errors.New("zk: empty server address in config")
		}
	}
	if c.SessionTimeout < 0 {
		return fmt.Errorf("zk: negative session timeout %v", c.SessionTimeout)
	}
	if c.RetryInterval < 0 {
		return fmt.Errorf("zk: negative retry interval %v", c.RetryInterval)
	}
	return nil
}

// ParseURI parses KiteQ's registry URI zk://host1:2181,host2:2181[?k=v…]
// into server addresses. Query parameters are accepted and ignored, as in
// KiteQ; empty host entries are dropped, and no host at all gives
// [DefaultServer]; a host without a port gets 2181. A path other than "/"
// (a chroot) is rejected: KiteQ's layout always starts at /kiteq.
func ParseURI(uri string) ([]string, error) {
	scheme, rest, ok := strings.Cut(uri, "://")
	if !ok || !strings.EqualFold(scheme, "zk") {
		return nil, fmt.Errorf("zk: registry URI %q does not start with zk://", uri)
	}
	hosts, query, _ := strings.Cut(rest, "?")
	if _, err := url.ParseQuery(query); err != nil {
		return nil, fmt.Errorf("zk: registry URI %q: bad query: %w", uri, err)
	}
	if h, path, found := strings.Cut(hosts, "/"); found {
		if path != "" {
			return nil, fmt.Errorf("zk: registry URI %q: a path (chroot) is not supported", uri)
		}
		hosts = h
	}
	var servers []string
	for _, h := range strings.Split(hosts, ",") {
		h = strings.TrimSpace(h)
		if h == "" {
			continue
		}
		if _, _, err := net.SplitHostPort(h); err != nil {
			// No port (or an unbracketed IPv6 literal): add KiteQ's
			// default, as go-zookeeper's FormatServers does.
			if strings.Contains(h, ":") && !strings.HasPrefix(h, "[") {
				return nil, fmt.Errorf("zk: registry URI %q: bad host %q: %w", uri, h, err)
			}
			h = net.JoinHostPort(strings.Trim(h, "[]"), "2181")
		}
		if _, port, _ := net.SplitHostPort(h); !validPort(port) {
			return nil, fmt.Errorf("zk: registry URI %q: bad port in %q", uri, h)
		}
		servers = append(servers, h)
	}
	if len(servers) == 0 {
		servers = []string{DefaultServer}
	}
	return servers, nil
}

func validPort(p string) bool {
	n, err := strconv.Atoi(p)
	return err == nil && n > 0 && n < 65536
}

// CheckAddr reports whether addr can be advertised as a broker address:
// host:port with a host that other machines can dial. KiteQ registers its
// -bind value verbatim, so ":13800" or "0.0.0.0:13800" end up in ZooKeeper
// and clients elsewhere dial themselves; this registry refuses them.
func CheckAddr(addr string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("zk: server address %q is not host:port: %w", addr, err)
	}
	if host == "" {
		return fmt.Errorf("zk: server address %q has no host; advertise a routable host:port", addr)
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
		return fmt.Errorf("zk: server address %q has the unspecified host %s; advertise a routable host:port", addr, host)
	}
	if !validPort(port) {
		return fmt.Errorf("zk: server address %q has a bad port", addr)
	}
	return nil
}

// checkName reports whether s can be one znode name: a topic or a group.
func checkName(kind, s string) error {
	switch {
	case s == "":
		return fmt.Errorf("zk: empty %s", kind)
	case s == "." || s == "..":
		return fmt.Errorf("zk: %s %q is not a valid znode name", kind, s)
	case strings.ContainsAny(s, "/\x00"):
		return fmt.Errorf("zk: %s %q contains '/' or NUL", kind, s)
	}
	return nil
}
