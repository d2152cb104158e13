//go:build integration

package integration

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/require"
)

// clusterStat is the cluster section of $KQ.ADMIN.STAT.
type clusterStat struct {
	Name        string `json:"name"`
	ClusterName string `json:"clusterName"`
	Route       string `json:"route"`
	Peers       []struct {
		Name  string    `json:"name"`
		ID    string    `json:"id"`
		URL   string    `json:"url"`
		Addr  string    `json:"addr"`
		Since time.Time `json:"since"`
	} `json:"peers"`
}

// statCluster asks a broker's STAT and returns its cluster section.
func statCluster(url string) (*clusterStat, error) {
	nc, err := nats.Connect(url, nats.Timeout(500*time.Millisecond), nats.NoReconnect())
	if err != nil {
		return nil, err
	}
	defer nc.Close()
	msg, err := nc.Request("$KQ.ADMIN.STAT", nil, time.Second)
	if err != nil {
		return nil, err
	}
	var st struct {
		Cluster *clusterStat `json:"cluster"`
	}
	if err := json.Unmarshal(msg.Data, &st); err != nil {
		return nil, err
	}
	if st.Cluster == nil {
		return nil, fmt.Errorf("no cluster section in %s", msg.Data)
	}
	return st.Cluster, nil
}

// peersOf is the names of a broker's peers in its STAT ("" entries never).
func peersOf(b *Broker) []string {
	c, err := statCluster(b.URL())
	if err != nil {
		return []string{"error: " + err.Error()}
	}
	var names []string
	for _, p := range c.Peers {
		names = append(names, p.Name)
	}
	slices.Sort(names)
	return names
}

// requirePeers waits until every broker's STAT lists exactly want[broker].
func requirePeers(t *testing.T, within time.Duration, want map[*Broker][]string) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		bad := ""
		for b, names := range want {
			if got := peersOf(b); !slices.Equal(got, names) {
				bad += fmt.Sprintf("%s: peers %v, want %v; ", b.NATSAddr, got, names)
			}
		}
		if bad == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("peers not as expected within %s: %s", within, bad)
		}
		time.Sleep(100 * time.Millisecond) // polling processes we do not control
	}
}

// clusterBroker is a broker named name with a route listener on a free
// loopback port, seeded with routes.
func clusterBroker(t *testing.T, name, routeAddr string, extra ...string) *Broker {
	b := NewBroker(t, "memory://")
	b.Args = append([]string{"-name", name, "-cluster", routeAddr}, extra...)
	return b
}

// TestClusterStart: three brokers started with one command each (seeds
// 1→2 and 3→1) list the two others in STAT within seconds; a plain NATS
// message published on broker 1 reaches a subscriber on broker 3 through
// the routes; broker 2 killed with SIGKILL leaves the peers of 1 and 3,
// and comes back when restarted. Broker 1 shows its peers in /stat and
// /metrics too, and logs them coming and going.
func TestClusterStart(t *testing.T) {
	r1, r2, r3 := freeAddr(t), freeAddr(t), freeAddr(t)
	admin := freeAddr(t)
	_, adminPort, _ := strings.Cut(admin, ":")
	b1 := clusterBroker(t, "b1", r1, "-routes", "nats-route://"+r2, "-pport", adminPort)
	b2 := clusterBroker(t, "b2", r2)
	b3 := clusterBroker(t, "b3", r3, "-routes", "nats-route://"+r1)
	b1.Start()
	b2.Start()
	b3.Start()
	requirePeers(t, 10*time.Second, map[*Broker][]string{b1: {"b2", "b3"}, b2: {"b1", "b3"}, b3: {"b1", "b2"}})
	c, err := statCluster(b3.URL())
	require.NoError(t, err)
	require.Equal(t, "b3", c.Name)
	require.Equal(t, "kitenats", c.ClusterName)
	require.Equal(t, "nats-route://"+r3, c.Route)
	for _, p := range c.Peers {
		require.NotEmpty(t, p.ID)
		require.NotEmpty(t, p.Addr)
		require.WithinDuration(t, time.Now(), p.Since, time.Minute)
		if p.Name == "b1" {
			require.Equal(t, "nats-route://"+r1, p.URL, "b3 dialled b1")
		}
	}

	// Routes carry traffic: a core NATS subject, not a kq one.
	sub, err := nats.Connect(b3.URL())
	require.NoError(t, err)
	defer sub.Close()
	got := make(chan *nats.Msg, 16)
	_, err = sub.ChanSubscribe("plain.hello", got)
	require.NoError(t, err)
	require.NoError(t, sub.Flush())
	pub, err := nats.Connect(b1.URL())
	require.NoError(t, err)
	defer pub.Close()
	deadline := time.Now().Add(5 * time.Second)
	var m *nats.Msg
	for m == nil && time.Now().Before(deadline) { // until b3's interest has reached b1
		require.NoError(t, pub.Publish("plain.hello", []byte("from b1")))
		select {
		case m = <-got:
		case <-time.After(100 * time.Millisecond):
		}
	}
	require.NotNil(t, m, "nothing crossed the routes")
	require.Equal(t, "from b1", string(m.Data))

	// /stat and /metrics of broker 1.
	body := httpGet(t, "http://"+admin+"/stat")
	require.Contains(t, body, `"cluster"`)
	require.Contains(t, body, `"b2"`)
	metrics := httpGet(t, "http://"+admin+"/metrics")
	require.Contains(t, metrics, "kitenats_cluster_peers 2")
	require.Contains(t, metrics, `kitenats_cluster_peer_up{peer="b2"} 1`)

	// kill -9 broker 2: the others drop it.
	b2.Kill()
	requirePeers(t, 15*time.Second, map[*Broker][]string{b1: {"b3"}, b3: {"b1"}})
	require.Eventually(t, func() bool {
		return strings.Contains(httpGet(t, "http://"+admin+"/metrics"), `kitenats_cluster_peer_up{peer="b2"} 0`)
	}, 5*time.Second, 100*time.Millisecond)
	// Restarted on the same ports, it comes back (broker 1 dials its seed
	// again; gossip tells broker 3).
	b2.Start()
	requirePeers(t, 15*time.Second, map[*Broker][]string{b1: {"b2", "b3"}, b2: {"b1", "b3"}, b3: {"b1", "b2"}})
	logs := b1.Stderr()
	require.Contains(t, logs, "cluster: peer connected")
	require.Contains(t, logs, "cluster: peer gone")
	require.Contains(t, logs, "peer=b2")
}

// TestClusterRefusesOpenRoutes: a route listener on every interface
// without route authentication does not start, and says which keys to set.
func TestClusterRefusesOpenRoutes(t *testing.T) {
	b := NewBroker(t, "memory://")
	b.Args = []string{"-cluster", "0.0.0.0:" + strings.Split(freeAddr(t), ":")[1]}
	r := b.launch()
	select {
	case <-r.exited:
	case <-time.After(30 * time.Second):
		t.Fatal("the broker started with an open route listener")
	}
	require.NotZero(t, r.state.ExitCode())
	out := b.Stderr()
	for _, key := range []string{"-cluster 0.0.0.0", "routeUser", "routePassword", "routeTLS"} {
		require.Contains(t, out, key)
	}
}

// TestClusterRoutesFromZooKeeper: three brokers with the ZooKeeper
// registry and no -routes find each other through their route nodes, with
// route authentication on.
func TestClusterRoutesFromZooKeeper(t *testing.T) {
	zk := os.Getenv("KITENATS_ZK_ADDR")
	if zk == "" {
		const how = "start ZooKeeper with `scripts/zookeeper.sh start /tmp/zk-it 12181` and set KITENATS_ZK_ADDR=127.0.0.1:12181"
		if os.Getenv("CI") != "" {
			t.Fatal("KITENATS_ZK_ADDR is not set on CI: " + how)
		}
		t.Skip("KITENATS_ZK_ADDR is not set: " + how)
	}
	conf := filepath.Join(t.TempDir(), "cluster.toml")
	require.NoError(t, os.WriteFile(conf, []byte(`[clusters.it]
topics = ["cluster-it"]
routeUser = "route"
routePassword = "s3cret"
`), 0o600))
	// A cluster name of this run only: nodes of earlier runs are not ours.
	cluster := "it-" + strconv.FormatInt(time.Now().UnixNano(), 36)
	var bs []*Broker
	for _, name := range []string{"z1", "z2", "z3"} {
		bs = append(bs, clusterBroker(t, name, freeAddr(t), "-registry", "zk://"+zk, "-configPath", conf, "-clusterName", "it", "-cluster-name", cluster))
	}
	// All three at once: each writes its node before it reads the others'.
	for _, b := range bs {
		b.launch()
	}
	all := map[*Broker][]string{bs[0]: {"z2", "z3"}, bs[1]: {"z1", "z3"}, bs[2]: {"z1", "z2"}}
	requirePeers(t, 30*time.Second, all)
	// z2 killed: the others drop it; restarted, it finds them in the registry.
	bs[1].Kill()
	requirePeers(t, 15*time.Second, map[*Broker][]string{bs[0]: {"z3"}, bs[2]: {"z1"}})
	bs[1].Start()
	requirePeers(t, 15*time.Second, all)
	c, err := statCluster(bs[0].URL())
	require.NoError(t, err)
	require.Equal(t, cluster, c.ClusterName)
	for _, p := range c.Peers {
		require.NotEmpty(t, p.URL, "the registry names every peer's route: %+v", p)
	}
	require.Contains(t, bs[0].Stderr(), "route node written in the registry")
}

func httpGet(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	require.NoError(t, err)
	defer func() { _ = resp.Body.Close() }()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, resp.StatusCode, string(b))
	return string(b)
}
