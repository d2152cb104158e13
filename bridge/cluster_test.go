package bridge

import (
	"testing"
	"time"

	"github.com/nats-io/nats.go"
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
	require.Empty(t, plain.ClusterURL("h"))
	require.Equal(t, seed, a.ClusterURL("h"))
}

func TestBridgeRouteCredsTogether(t *testing.T) {
	require.Error(t, Config{ClusterPort: -1, RouteUser: "u"}.Validate())
	require.NoError(t, Config{ClusterPort: -1, RouteUser: "u", RoutePassword: "p"}.Validate())
}

// RouteLocal subjects stay on their server, queue groups included; the
// others cross the routes.
func TestBridgeRouteLocal(t *testing.T) {
	local := func(c *Config) { c.RouteLocal = []string{"local.>"} }
	a := startServer(t, func(c *Config) { c.ServerName = "a"; c.ClusterPort = randomPort; local(c) })
	b := startServer(t, func(c *Config) {
		c.ServerName = "b"
		c.ClusterPort = randomPort
		c.Routes = []string{"nats-route://" + a.ClusterAddr().String()}
		local(c)
	})
	waitFor(t, func() bool { return len(peerNames(t, a)) == 1 })
	onA, onB := dial(t, a), dial(t, b)
	_, err := onA.QueueSubscribe("local.x", "q", func(m *nats.Msg) { _ = m.Respond([]byte("a")) })
	require.NoError(t, err)
	_, err = onB.QueueSubscribe("local.x", "q", func(m *nats.Msg) { _ = m.Respond([]byte("b")) })
	require.NoError(t, err)
	_, err = onB.Subscribe("shared.x", func(m *nats.Msg) { _ = m.Respond([]byte("b")) })
	require.NoError(t, err)
	require.NoError(t, onA.Flush())
	require.NoError(t, onB.Flush())
	waitFor(t, func() bool {
		m, err := onA.Request("shared.x", nil, 100*time.Millisecond)
		return err == nil && string(m.Data) == "b"
	})
	for range 30 {
		m, err := onA.Request("local.x", nil, time.Second)
		require.NoError(t, err)
		require.Equal(t, "a", string(m.Data))
		m, err = onB.Request("local.x", nil, time.Second)
		require.NoError(t, err)
		require.Equal(t, "b", string(m.Data))
	}
}
