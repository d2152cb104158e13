package daemon

import (
	"context"
	"crypto/x509"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/kitenats/kitenats/admin"
	"github.com/kitenats/kitenats/bridge"
	"github.com/kitenats/kitenats/config"
	"github.com/kitenats/kitenats/natsproto"
	"github.com/kitenats/kitenats/semantics"
)

// peerPoll is how often the route table is read to log the peers that
// come and go (and keep kitenats_cluster_peer_up).
const peerPoll = 250 * time.Millisecond

// routeRegistry is what route discovery needs from a registry: the zk://
// registry has it (registry/zk's /kitenats/routes nodes); file:// does not.
type routeRegistry interface {
	PublishRoute(ctx context.Context, cluster, name, url string) error
	UnpublishRoute(ctx context.Context, cluster, name string) error
	Routes(ctx context.Context, cluster string) (map[string]string, error)
	WatchRoutes(ctx context.Context, cluster string) (<-chan map[string]string, error)
}

// cluster is the broker's routes: its name and route URL, the peers it
// has routes to, and route discovery through the registry.
type cluster struct {
	br          *bridge.Server
	log         *slog.Logger
	name        string // this broker's (config.Config.BrokerName)
	clusterName string
	url         string // this broker's route URL, as peers dial it

	mu     sync.Mutex
	peers  map[string]bridge.Peer // by server id, at the last poll
	seen   map[string]bool        // peer names ever connected: peer_up 1 or 0
	pollMu sync.Mutex             // serialises poll
	regURL map[string]string      // name → route URL, from the registry
}

// clusterBridgeConfig fills the route part of the bridge's config and
// returns this broker's route URL ("" without -cluster). A route port 0
// is a port free now (the URL is written in the registry before the
// listener opens): for tests.
func clusterBridgeConfig(cfg config.Config, b *bridge.Config) (string, error) {
	b.ServerName = cfg.BrokerName()
	if cfg.Cluster.Listen == "" {
		return "", nil
	}
	host, port, err := config.SplitHostPort(cfg.Cluster.Listen)
	if err != nil {
		return "", err
	}
	if host == "" {
		host = "0.0.0.0"
	}
	if port == 0 {
		if port, err = freeRoutePort(host); err != nil {
			return "", fmt.Errorf("route listener (-cluster %s): %w", cfg.Cluster.Listen, err)
		}
	}
	b.ClusterHost, b.ClusterPort, b.ClusterName = host, port, cfg.NATSClusterName()
	b.Routes = cfg.Cluster.Routes
	// The broker's own calls and its topics stay on the broker a client is
	// connected to (docs/CLUSTERING.md, "Step 1"): nats-server would pick
	// any broker's queue member at random, and a STAT, a BIND or a publish
	// must be answered by the client's own broker until brokers share
	// consumers.
	b.RouteLocal = []string{natsproto.APIPrefix + ">", natsproto.AdminPrefix + ">", natsproto.SubjectPrefix + ".>"}
	b.RouteUser, b.RoutePassword = cfg.Cluster.RouteUser, cfg.Cluster.RoutePassword
	if files, on := cfg.TLS.Files("route"); on {
		// Loaded once: a SIGHUP does not re-read the routes' files.
		tc, _, err := loadTLSFiles(files, true, time.Now())
		if err != nil {
			return "", fmt.Errorf("bad config: routeTLS: %w", err)
		}
		// The same CA verifies the peers this broker dials.
		tc.RootCAs = tc.ClientCAs
		if tc.RootCAs == nil {
			tc.RootCAs = x509.NewCertPool()
		}
		b.RouteTLS = tc
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
		host = routeHost(cfg)
	}
	return "nats-route://" + net.JoinHostPort(host, strconv.Itoa(port)), nil
}

// freeRoutePort is a port free on host a moment ago.
func freeRoutePort(host string) (int, error) {
	l, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		return 0, err
	}
	defer func() { _ = l.Close() }()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// registrySeeds writes this broker's route node in the registry, before
// its route listener opens, and returns the routes of the brokers already
// there, to dial as seeds. Of two brokers that start at once, the one that
// reads second finds the other: each writes before it reads. A failure is
// logged, not fatal: -routes and the peers that know this broker still
// make the cluster.
func registrySeeds(ctx context.Context, cfg config.Config, reg routeRegistry, url string, log *slog.Logger) []string {
	name, cluster := cfg.BrokerName(), cfg.NATSClusterName()
	if err := reg.PublishRoute(ctx, cluster, name, url); err != nil {
		log.Error("cluster: writing the route node in the registry", "name", name, "url", url, "err", err)
		return nil
	}
	routes, err := reg.Routes(ctx, cluster)
	if err != nil {
		log.Error("cluster: reading the routes in the registry", "cluster", cluster, "err", err)
		return nil
	}
	var seeds []string
	for n, u := range routes {
		if n != name {
			seeds = append(seeds, u)
		}
	}
	slices.Sort(seeds)
	log.Info("cluster: route node written in the registry", "name", name, "url", url, "cluster", cluster, "seeds", seeds)
	return seeds
}

// newCluster is the cluster of a started bridge with a route listener.
func newCluster(cfg config.Config, br *bridge.Server, url string, log *slog.Logger) *cluster {
	return &cluster{
		br:          br,
		log:         log.With("component", "cluster"),
		name:        cfg.BrokerName(),
		clusterName: cfg.NATSClusterName(),
		url:         url,
		peers:       map[string]bridge.Peer{},
		seen:        map[string]bool{},
		regURL:      map[string]string{},
	}
}

// routeHost is the host given in the route URL when the route listener
// listens on every interface: -advertise's host, else the host name.
func routeHost(cfg config.Config) string {
	if h, _, err := net.SplitHostPort(cfg.Advertise); err == nil && h != "" {
		return h
	}
	if h, err := os.Hostname(); err == nil && h != "" {
		return h
	}
	return "127.0.0.1"
}

// watchPeers reads the route table every peerPoll until ctx ends, and
// logs every peer that connects or goes.
func (c *cluster) watchPeers(ctx context.Context) error {
	t := time.NewTicker(peerPoll)
	defer t.Stop()
	for {
		c.poll()
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

func (c *cluster) poll() {
	// One poll at a time (the watcher, STAT, /metrics), so that an older
	// route table never replaces a newer one.
	c.pollMu.Lock()
	defer c.pollMu.Unlock()
	ps, err := c.br.Peers()
	if err != nil {
		return // closed: the lifecycle stops this stage too
	}
	now := make(map[string]bridge.Peer, len(ps))
	for _, p := range ps {
		now[p.ID] = p
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for id, p := range c.peers {
		if _, ok := now[id]; !ok && p.Name != "" {
			c.log.Info("cluster: peer gone", "peer", p.Name, "url", c.urlLocked(p), "addr", p.Addr, "id", p.ID,
				"connected", time.Since(p.Since).Round(time.Millisecond).String())
		}
	}
	for id, p := range now {
		if p.Name == "" {
			continue // a route still in its handshake: named, and logged, at a later poll
		}
		if old, ok := c.peers[id]; !ok || old.Name == "" {
			c.log.Info("cluster: peer connected", "peer", p.Name, "url", c.urlLocked(p), "addr", p.Addr, "id", p.ID)
		}
		c.seen[p.Name] = true
	}
	c.peers = now
}

// urlLocked is a peer's route URL: the one this broker dialled, else the
// registry's. Caller holds mu.
func (c *cluster) urlLocked(p bridge.Peer) string {
	if p.URL != "" {
		return p.URL
	}
	return c.regURL[p.Name]
}

// stat is STAT's cluster section, from the route table now. It polls
// first, so that a peer STAT shows is one the log has said connected (and
// will say gone), however briefly it was there.
func (c *cluster) stat() *semantics.ClusterStat {
	s := &semantics.ClusterStat{Name: c.name, ClusterName: c.clusterName, Route: c.url, Peers: []semantics.PeerStat{}}
	c.poll()
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, p := range c.peers {
		s.Peers = append(s.Peers, semantics.PeerStat{Name: p.Name, ID: p.ID, URL: c.urlLocked(p), Addr: p.Addr, Since: p.Since.UTC()})
	}
	slices.SortFunc(s.Peers, func(a, b semantics.PeerStat) int { return strings.Compare(a.Name+"\x00"+a.ID, b.Name+"\x00"+b.ID) })
	return s
}

// metrics are the cluster families: the peers connected now, and per
// peer name ever connected since start, whether it is connected now.
func (c *cluster) metrics() []admin.Metric {
	c.poll() // as stat does: what /metrics shows, the log has said
	up := map[string]bool{}
	c.mu.Lock()
	for _, p := range c.peers {
		if p.Name != "" {
			up[p.Name] = true
		}
	}
	names := slices.Sorted(maps.Keys(c.seen))
	c.mu.Unlock()
	peerUp := admin.Metric{Name: "kitenats_cluster_peer_up", Help: "1 while this broker has a route to the peer (by name), 0 once it is gone; every peer seen since start."}
	for _, n := range names {
		v := 0.0
		if up[n] {
			v = 1
		}
		peerUp.Samples = append(peerUp.Samples, admin.Sample{Labels: []admin.Label{{Name: "peer", Value: n}}, Value: v})
	}
	return []admin.Metric{
		{Name: "kitenats_cluster_peers", Help: "Brokers of the cluster this broker has a route to now.", Samples: []admin.Sample{{Value: float64(len(up))}}},
		peerUp,
	}
}

// followRegistry keeps the registry's route URLs (STAT names a peer's
// route with them) until ctx ends, then withdraws this broker's route
// node, so that brokers starting later do not dial it. It dials nothing:
// a running nats-server takes no new route (bridge, "There is no way to
// add a route"); brokers that start later dial this one.
func (c *cluster) followRegistry(ctx context.Context, reg routeRegistry) error {
	defer func() {
		uctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := reg.UnpublishRoute(uctx, c.clusterName, c.name); err != nil {
			c.log.Warn("cluster: withdrawing the route node", "err", err)
		}
	}()
	routes, err := reg.WatchRoutes(ctx, c.clusterName)
	if err != nil {
		return fmt.Errorf("watching the registry's routes: %w", err)
	}
	for state := range routes {
		c.mu.Lock()
		maps.Copy(c.regURL, state)
		c.mu.Unlock()
	}
	return nil
}
