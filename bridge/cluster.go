package bridge

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Peer is another server of the cluster that this server has a route to.
type Peer struct {
	// Name is the peer's ServerName (the broker's name).
	Name string
	// ID is the peer's nats-server id, new at each of its starts.
	ID string
	// URL is the peer's route listener when this server dialled it
	// ("nats-route://host:port"); "" when only the peer dialled.
	URL string
	// Addr is the peer's address (host:port) as seen on the oldest route
	// connection.
	Addr string
	// Since is when the oldest route connection to the peer came up.
	Since time.Time
	// Conns is the number of route connections to the peer (nats-server
	// keeps a pool of them per peer).
	Conns int
}

// Peers returns the servers this server has a route to, by name. Without
// a cluster it returns none. The answer is a snapshot of nats-server's
// routez: cheap, but a control-path call.
func (s *Server) Peers() ([]Peer, error) {
	srv, err := s.running()
	if err != nil {
		return nil, err
	}
	if s.cfg.ClusterPort == 0 {
		return nil, nil
	}
	rz, err := srv.Routez(nil)
	if err != nil {
		return nil, fmt.Errorf("bridge: routez: %w", err)
	}
	byID := map[string]*Peer{}
	for _, r := range rz.Routes {
		if r.RemoteID == "" {
			continue // still in its handshake
		}
		addr := net.JoinHostPort(r.IP, strconv.Itoa(r.Port))
		p, ok := byID[r.RemoteID]
		if !ok {
			p = &Peer{Name: r.RemoteName, ID: r.RemoteID, Addr: addr, Since: r.Start}
			byID[r.RemoteID] = p
		}
		p.Conns++
		if r.Start.Before(p.Since) {
			p.Since, p.Addr = r.Start, addr
		}
		if r.DidSolicit && p.URL == "" {
			p.URL = "nats-route://" + addr
		}
	}
	peers := make([]Peer, 0, len(byID))
	for _, p := range byID {
		peers = append(peers, *p)
	}
	slices.SortFunc(peers, func(a, b Peer) int {
		return strings.Compare(a.Name+"\x00"+a.ID, b.Name+"\x00"+b.ID)
	})
	return peers, nil
}

// AddRoutes makes the server dial the route URLs it does not dial yet (a
// URL without user info takes RouteUser and RoutePassword), as explicit
// routes: each is dialled, and re-dialled whenever it goes, until Close.
// URLs already configured are skipped, and a URL naming this server itself
// is dropped by nats-server once it sees its own id. It is nats-server's
// configuration reload of the routes, which adds routes and touches
// nothing else. It needs a cluster (ClusterPort).
func (s *Server) AddRoutes(routes []string) error {
	urls, err := parseRoutes(routes)
	if err != nil {
		return err
	}
	s.routesMu.Lock()
	defer s.routesMu.Unlock()
	srv, err := s.running()
	if err != nil {
		return err
	}
	if s.cfg.ClusterPort == 0 {
		return errors.New("bridge: add routes: no cluster listener")
	}
	s.mu.Lock()
	cur := s.opts
	s.mu.Unlock()
	var add []*url.URL
	for _, u := range s.cfg.withRouteCreds(urls) {
		if !slices.ContainsFunc(cur.Routes, func(have *url.URL) bool { return sameRoute(have, u) }) &&
			!slices.ContainsFunc(add, func(have *url.URL) bool { return sameRoute(have, u) }) {
			add = append(add, u)
		}
	}
	if len(add) == 0 {
		return nil
	}
	next := cur.Clone()
	// Clone copies the TLS configs; the reload would see them as changed.
	next.TLSConfig, next.Cluster.TLSConfig = cur.TLSConfig, cur.Cluster.TLSConfig
	next.Routes = append(next.Routes, add...)
	if err := srv.ReloadOptions(next); err != nil {
		return fmt.Errorf("bridge: add routes %v: %w", routes, err)
	}
	s.mu.Lock()
	s.opts = next
	s.mu.Unlock()
	return nil
}

// sameRoute reports whether two route URLs dial the same host:port.
func sameRoute(a, b *url.URL) bool {
	return strings.EqualFold(a.Host, b.Host)
}

// ClusterURL is the route URL of this server's route listener
// ("nats-route://host:port", with the port obtained for -1); an
// unspecified listen address (0.0.0.0, ::) is given as host instead. It
// is "" without a cluster, before Start and after Close.
func (s *Server) ClusterURL(host string) string {
	addr, ok := s.ClusterAddr().(*net.TCPAddr)
	if !ok {
		return ""
	}
	h := addr.IP.String()
	if addr.IP.IsUnspecified() {
		h = host
	}
	return "nats-route://" + net.JoinHostPort(h, strconv.Itoa(addr.Port))
}
