package bridge

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func peerNames(t *testing.T, s *Server) []string {
	t.Helper()
	ps, err := s.Peers()
	require.NoError(t, err)
	var names []string
	for _, p := range ps {
		names = append(names, p.Name)
	}
	return names
}

// Routes with a user and password: a peer that presents them joins, one
// that does not is refused; Peers lists the peers by name.
func TestBridgeRouteAuthAndPeers(t *testing.T) {
	auth := func(c *Config) { c.RouteUser, c.RoutePassword = "route", "s3cret" }
	a := startServer(t, func(c *Config) { c.ServerName = "a"; c.ClusterPort = randomPort; auth(c) })
	seed := "nats-route://" + a.ClusterAddr().String()
	b := startServer(t, func(c *Config) { c.ServerName = "b"; c.ClusterPort = randomPort; c.Routes = []string{seed}; auth(c) })
	waitFor(t, func() bool { return len(peerNames(t, a)) == 1 && len(peerNames(t, b)) == 1 })
	require.Equal(t, []string{"b"}, peerNames(t, a))
	ps, err := b.Peers()
	require.NoError(t, err)
	require.Equal(t, "a", ps[0].Name)
	require.Equal(t, seed, ps[0].URL, "b dialled a: a's route listener")
	require.NotEmpty(t, ps[0].ID)
	require.WithinDuration(t, time.Now(), ps[0].Since, time.Minute)
	require.Positive(t, ps[0].Conns)

	// No credentials, and wrong ones: refused.
	x := startServer(t, func(c *Config) { c.ServerName = "x"; c.ClusterPort = randomPort; c.Routes = []string{seed} })
	y := startServer(t, func(c *Config) {
		c.ServerName = "y"
		c.ClusterPort = randomPort
		c.Routes = []string{"nats-route://route:wrong@" + a.ClusterAddr().String()}
	})
	time.Sleep(500 * time.Millisecond)
	require.Empty(t, peerNames(t, x))
	require.Empty(t, peerNames(t, y))
	require.Equal(t, []string{"b"}, peerNames(t, a))

	// Peers without a cluster: none.
	plain := startServer(t, nil)
	ps, err = plain.Peers()
	require.NoError(t, err)
	require.Empty(t, ps)
	require.Error(t, plain.AddRoutes([]string{seed}))
}

// AddRoutes dials routes learnt after start (the registry's), once each.
func TestBridgeAddRoutes(t *testing.T) {
	auth := func(c *Config) { c.RouteUser, c.RoutePassword = "route", "pw" }
	a := startServer(t, func(c *Config) { c.ServerName = "a"; c.ClusterPort = randomPort; auth(c) })
	b := startServer(t, func(c *Config) { c.ServerName = "b"; c.ClusterPort = randomPort; auth(c) })
	require.Empty(t, peerNames(t, a))
	url := "nats-route://" + b.ClusterAddr().String()
	require.NoError(t, a.AddRoutes([]string{url}))
	require.NoError(t, a.AddRoutes([]string{url, url}), "already there: nothing to do")
	waitFor(t, func() bool { return len(peerNames(t, a)) == 1 && len(peerNames(t, b)) == 1 })
	require.Equal(t, []string{"b"}, peerNames(t, a))
	require.Equal(t, []string{"a"}, peerNames(t, b))
	// The client listener still works after the reload.
	nc := dial(t, a)
	require.NoError(t, nc.Flush())
	require.Equal(t, "nats-route://"+b.ClusterAddr().String(), b.ClusterURL("h"))
	require.Error(t, a.AddRoutes([]string{"::%zz"}))
}

func TestBridgeRouteCredsTogether(t *testing.T) {
	require.Error(t, Config{ClusterPort: -1, RouteUser: "u"}.Validate())
	require.NoError(t, Config{ClusterPort: -1, RouteUser: "u", RoutePassword: "p"}.Validate())
}
