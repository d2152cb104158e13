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
	"sync"
	"time"

	"github.com/kitenats/kitenats/admin"
	"github.com/kitenats/kitenats/bridge"
	"github.com/kitenats/kitenats/config"
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
	regURL map[string]string      // name → route URL, from the registry
}

// clusterBridgeConfig fills the route part of the bridge's config.
func clusterBridgeConfig(cfg config.Config, b *bridge.Config) error {
	b.ServerName = cfg.BrokerName()
	if cfg.Cluster.Listen == "" {
		return nil
	}
	host, port, err := config.SplitHostPort(cfg.Cluster.Listen)
	if err != nil {
		return err
	}
	if port == 0 {
		port = -1 // a free port (tests)
	}
	if host == "" {
		host = "0.0.0.0"
	}
	b.ClusterHost, b.ClusterPort, b.ClusterName = host, port, cfg.NATSClusterName()
	b.Routes = cfg.Cluster.Routes
	b.RouteUser, b.RoutePassword = cfg.Cluster.RouteUser, cfg.Cluster.RoutePassword
	if files, on := cfg.TLS.Files("route"); on {
		// Loaded once: a SIGHUP does not re-read the routes' files.
		tc, _, err := loadTLSFiles(files, true, time.Now())
		if err != nil {
			return fmt.Errorf("bad config: routeTLS: %w", err)
		}
		// The same CA verifies the peers this broker dials.
		tc.RootCAs = tc.ClientCAs
		if tc.RootCAs == nil {
			tc.RootCAs = x509.NewCertPool()
		}
		b.RouteTLS = tc
	}
	return nil
}

// newCluster is the cluster of a started bridge with a route listener.
func newCluster(cfg config.Config, br *bridge.Server, log *slog.Logger) *cluster {
	return &cluster{
		br:          br,
		log:         log.With("component", "cluster"),
		name:        cfg.BrokerName(),
		clusterName: cfg.NATSClusterName(),
		url:         br.ClusterURL(routeHost(cfg)),
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
		if _, ok := now[id]; !ok {
			c.log.Info("cluster: peer gone", "peer", p.Name, "url", c.urlLocked(p), "addr", p.Addr, "id", p.ID,
				"connected", time.Since(p.Since).Round(time.Millisecond).String())
		}
	}
	for id, p := range now {
		if _, ok := c.peers[id]; !ok {
			c.log.Info("cluster: peer connected", "peer", p.Name, "url", c.urlLocked(p), "addr", p.Addr, "id", p.ID)
			c.seen[p.Name] = true
		}
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

// stat is STAT's cluster section, from the route table now.
func (c *cluster) stat() *semantics.ClusterStat {
	s := &semantics.ClusterStat{Name: c.name, ClusterName: c.clusterName, Route: c.url, Peers: []semantics.PeerStat{}}
	ps, err := c.br.Peers()
	if err != nil {
		return s
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, p := range ps {
		s.Peers = append(s.Peers, semantics.PeerStat{Name: p.Name, ID: p.ID, URL: c.urlLocked(p), Addr: p.Addr, Since: p.Since.UTC()})
	}
	return s
}

// metrics are the cluster families: the peers connected now, and per
// peer name ever connected since start, whether it is connected now.
func (c *cluster) metrics() []admin.Metric {
	ps, _ := c.br.Peers()
	up := map[string]bool{}
	for _, p := range ps {
		up[p.Name] = true
	}
	c.mu.Lock()
	names := slices.Sorted(maps.Keys(c.seen))
	c.mu.Unlock()
	for n := range up {
		if !slices.Contains(names, n) {
			names = append(names, n)
		}
	}
	slices.Sort(names)
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

// discover writes this broker's route node in the registry and dials
// every route the registry lists, as they come, until ctx ends; then it
// withdraws the node. A broker that goes stays a route (nats-server dials
// it again until it is back): a registry node that vanishes for a while
// must not cut a live route.
func (c *cluster) discover(ctx context.Context, reg routeRegistry) error {
	if err := reg.PublishRoute(ctx, c.clusterName, c.name, c.url); err != nil {
		// Not fatal: the peers that know this broker dial it anyway.
		c.log.Error("cluster: writing the route node in the registry", "url", c.url, "err", err)
	} else {
		c.log.Info("cluster: route node written in the registry", "name", c.name, "url", c.url)
	}
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
		var dial []string
		for name, url := range state {
			if name != c.name {
				dial = append(dial, url)
			}
		}
		slices.Sort(dial)
		if len(dial) == 0 {
			continue
		}
		if err := c.br.AddRoutes(dial); err != nil {
			c.log.Warn("cluster: dialling the registry's routes", "routes", dial, "err", err)
		}
	}
	return nil
}
