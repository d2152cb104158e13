package bridge

import (
	"fmt"
	"net"
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

// There is no way to add a route to a running server: nats-server's
// configuration reload (ReloadOptions, the only way) re-authorizes every
// client, and closes every client with a user name when authentication is
// custom, as the bridge's is (nats-server looks the user up in its own
// user list, finds none and decides the user has gone). Routes are the
// ones given at Start; gossip adds the peers those know of.

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
