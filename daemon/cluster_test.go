package daemon

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kitenats/kitenats/config"
	"github.com/kitenats/kitenats/semantics"
)

// peerNames is the names of d's peers in its STAT.
func peerNames(t *testing.T, d *Daemon) []string {
	t.Helper()
	st, err := d.Stat(context.Background())
	require.NoError(t, err)
	require.NotNil(t, st.Cluster)
	var names []string
	for _, p := range st.Cluster.Peers {
		names = append(names, p.Name)
	}
	return names
}

// Three brokers with seeds 1→2 and 3→1 find each other (gossip), show
// their peers in STAT (NATS and /stat) and /metrics, and a broker that
// stops is dropped by the others.
func TestClusterThreeBrokersSeePeers(t *testing.T) {
	mod := func(name string, routes ...string) func(*config.Config) {
		return func(c *config.Config) {
			c.Cluster.Name, c.Cluster.Listen, c.Cluster.Routes = name, "127.0.0.1:0", routes
			c.Cluster.RouteUser, c.Cluster.RoutePassword = "route", "pw"
			c.AdminPort = freeAdminPort(t)
		}
	}
	cfg2 := config.Default()
	cfg2.NATS, cfg2.Bind, cfg2.DB = "127.0.0.1:0", "127.0.0.1:0", "memory://"
	mod("b2")(&cfg2)
	d2, stop2, err := Start(context.Background(), cfg2, testLogger(t))
	require.NoError(t, err)
	stopped2 := false
	t.Cleanup(func() {
		if !stopped2 {
			require.NoError(t, stop2())
		}
	})
	require.Equal(t, "b2", d2.Name())
	require.Regexp(t, `^nats-route://127\.0\.0\.1:\d+$`, d2.ClusterURL())
	d1 := startTestDaemon(t, mod("b1", d2.ClusterURL()))
	d3 := startTestDaemon(t, mod("b3", d1.ClusterURL()))
	want := map[*Daemon][]string{d1: {"b2", "b3"}, d2: {"b1", "b3"}, d3: {"b1", "b2"}}
	require.Eventually(t, func() bool {
		for d, names := range want {
			if !slices.Equal(peerNames(t, d), names) {
				return false
			}
		}
		return true
	}, 10*time.Second, 50*time.Millisecond)

	st, err := d3.Stat(context.Background())
	require.NoError(t, err)
	require.Equal(t, "b3", st.Cluster.Name)
	require.Equal(t, "kitenats", st.Cluster.ClusterName)
	require.Equal(t, d3.ClusterURL(), st.Cluster.Route)
	require.Equal(t, d1.ClusterURL(), st.Cluster.Peers[0].URL, "b3 dialled b1")
	require.NotEmpty(t, st.Cluster.Peers[0].ID)
	require.WithinDuration(t, time.Now(), st.Cluster.Peers[0].Since, time.Minute)

	// The same over NATS ($KQ.ADMIN.STAT) and the admin HTTP /stat.
	var viaNATS semantics.Stat
	request(t, connect(t, d1.ClientURL()), "$KQ.ADMIN.STAT", struct{}{}, &viaNATS)
	require.NotNil(t, viaNATS.Cluster)
	require.Len(t, viaNATS.Cluster.Peers, 2)
	nc3 := connect(t, d3.ClientURL())
	for range 20 { // the API's queue subscriptions prefer the local broker
		var st semantics.Stat
		request(t, nc3, "$KQ.ADMIN.STAT", struct{}{}, &st)
		require.Equal(t, "b3", st.Cluster.Name)
	}
	resp, err := http.Get("http://" + d1.AdminAddr().String() + "/stat")
	require.NoError(t, err)
	var viaHTTP struct {
		Cluster semantics.ClusterStat `json:"cluster"`
	}
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&viaHTTP))
	_ = resp.Body.Close()
	require.Equal(t, "b1", viaHTTP.Cluster.Name)
	require.Len(t, viaHTTP.Cluster.Peers, 2)

	fs := scrape(t, d1)
	require.Equal(t, 2.0, fs["kitenats_cluster_peers"].GetMetric()[0].GetGauge().GetValue())
	up := series(fs["kitenats_cluster_peer_up"], "peer")
	require.Equal(t, 1.0, up["b2"].GetGauge().GetValue())
	require.Equal(t, 1.0, up["b3"].GetGauge().GetValue())

	// b2 stops: the others drop it, and its peer_up turns 0.
	require.NoError(t, stop2())
	stopped2 = true
	require.Eventually(t, func() bool {
		return slices.Equal(peerNames(t, d1), []string{"b3"}) && slices.Equal(peerNames(t, d3), []string{"b1"})
	}, 10*time.Second, 50*time.Millisecond)
	require.Eventually(t, func() bool {
		fs := scrape(t, d1)
		return series(fs["kitenats_cluster_peer_up"], "peer")["b2"].GetGauge().GetValue() == 0 &&
			fs["kitenats_cluster_peers"].GetMetric()[0].GetGauge().GetValue() == 1
	}, 5*time.Second, 50*time.Millisecond)
}

// A broker alone has no cluster section, and keeps its STAT as before.
func TestClusterAloneHasNoSection(t *testing.T) {
	d := startTestDaemon(t, nil)
	st, err := d.Stat(context.Background())
	require.NoError(t, err)
	require.Nil(t, st.Cluster)
	b, err := json.Marshal(st)
	require.NoError(t, err)
	require.NotContains(t, string(b), `"cluster"`)
	require.Empty(t, d.ClusterURL())
}

// A route listener on every interface without route authentication is
// refused before anything opens.
func TestClusterRefusesOpenRouteListener(t *testing.T) {
	cfg := startupConfig()
	cfg.Cluster.Listen = "0.0.0.0:0"
	_, err := New(context.Background(), cfg, testLogger(t))
	require.ErrorContains(t, err, "routeUser")
}

// testLogger sends the daemon's logs to t.Log.
func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(tWriter{t}, nil))
}

type tWriter struct{ t *testing.T }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// routeCert is a certificate for 127.0.0.1 usable as server and client:
// a route's TLS is both.
func routeCert(t *testing.T, ca *testCA) issued {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serials.Add(1)),
		Subject:      pkix.Name{CommonName: "route"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	require.NoError(t, err)
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	require.NoError(t, err)
	return issued{
		certPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		keyPEM:  pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}),
	}
}

// Routes over mutual TLS (routeTLS, the shared tlsCert/tlsKey/tlsCA): two
// brokers with certificates of the CA become peers, one without TLS does
// not, and neither does one whose certificate another CA signed.
func TestClusterRouteTLS(t *testing.T) {
	ca := newTestCA(t)
	files := writeTLSFiles(t, ca, routeCert(t, ca))
	withRouteTLS := func(name string, f tlsFiles, routes ...string) func(*config.Config) {
		return func(c *config.Config) {
			c.Cluster.Name, c.Cluster.Listen, c.Cluster.Routes = name, "127.0.0.1:0", routes
			c.TLS.Cert, c.TLS.Key, c.TLS.CA, c.TLS.Route.On = f.cert, f.key, f.ca, true
		}
	}
	a := startTestDaemon(t, withRouteTLS("a", files))
	b := startTestDaemon(t, withRouteTLS("b", files, a.ClusterURL()))
	plain := startTestDaemon(t, func(c *config.Config) {
		c.Cluster.Name, c.Cluster.Listen, c.Cluster.Routes = "plain", "127.0.0.1:0", []string{a.ClusterURL()}
	})
	other := newTestCA(t)
	stranger := startTestDaemon(t, withRouteTLS("stranger", writeTLSFiles(t, other, routeCert(t, other)), a.ClusterURL()))
	require.Eventually(t, func() bool {
		return slices.Equal(peerNames(t, a), []string{"b"}) && slices.Equal(peerNames(t, b), []string{"a"})
	}, 10*time.Second, 50*time.Millisecond)
	time.Sleep(500 * time.Millisecond)
	require.Equal(t, []string{"b"}, peerNames(t, a))
	require.Empty(t, peerNames(t, plain))
	require.Empty(t, peerNames(t, stranger))
}
