package bridge

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/require"
)

// testPKI is a CA made by the test, a server certificate for 127.0.0.1
// signed by it, and a client certificate with CN "g1".
type testPKI struct {
	pool           *x509.CertPool
	server, client tls.Certificate
}

func newTestPKI(t *testing.T) testPKI {
	t.Helper()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	require.NoError(t, err)
	ca, err := x509.ParseCertificate(caDER)
	require.NoError(t, err)
	issue := func(serial int64, cn string, usage x509.ExtKeyUsage) tls.Certificate {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		require.NoError(t, err)
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: cn},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
			ExtKeyUsage: []x509.ExtKeyUsage{usage}, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
		require.NoError(t, err)
		return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
	}
	p := testPKI{pool: x509.NewCertPool(), server: issue(2, "server", x509.ExtKeyUsageServerAuth), client: issue(3, "g1", x509.ExtKeyUsageClientAuth)}
	p.pool.AddCert(ca)
	return p
}

func (p testPKI) serverTLS() *tls.Config {
	return &tls.Config{Certificates: []tls.Certificate{p.server}, ClientCAs: p.pool,
		ClientAuth: tls.VerifyClientCertIfGiven, MinVersion: tls.VersionTLS12}
}

func (p testPKI) clientTLS(withCert bool) *tls.Config {
	c := &tls.Config{RootCAs: p.pool, MinVersion: tls.VersionTLS12}
	if withCert {
		c.Certificates = []tls.Certificate{p.client}
	}
	return c
}

// With TLS and TLSVerifyClients: the client URL is tls://, a client with
// a certificate of the CA connects and the Authorizer sees its
// certificate, one without is refused before the Authorizer is asked; the
// bridge's own connections (in-process, loopback over TLS, the publisher)
// work.
func TestTLSVerifiedClientCertificateInConnInfo(t *testing.T) {
	pki := newTestPKI(t)
	auth := groupAuth()
	auth.users["g1"] = ""
	srv := startServer(t, func(c *Config) {
		c.TLS, c.TLSVerifyClients, c.Authorizer = pki.serverTLS(), true, auth
	})
	url := srv.ClientURL()
	require.True(t, strings.HasPrefix(url, "tls://"), url)

	nc, err := nats.Connect(url, nats.UserInfo("g1", ""), nats.Secure(pki.clientTLS(true)))
	require.NoError(t, err)
	defer nc.Close()
	require.NoError(t, nc.Publish("work.x", nil))
	require.NoError(t, nc.Flush())
	calls := auth.calls()
	require.Len(t, calls, 1)
	require.True(t, calls[0].TLS)
	require.NotNil(t, calls[0].Certificate)
	require.Equal(t, "g1", calls[0].Certificate.Subject.CommonName)

	_, err = nats.Connect(url, nats.UserInfo("g1", ""), nats.Secure(pki.clientTLS(false)), nats.NoReconnect())
	require.Error(t, err, "no client certificate")
	require.Len(t, auth.calls(), 1, "refused before the Authorizer")

	in, err := srv.Connect("in-process")
	require.NoError(t, err)
	lo, err := srv.ConnectLoopback("loopback")
	require.NoError(t, err)
	st, err := lo.TLSConnectionState()
	require.NoError(t, err)
	require.True(t, st.HandshakeComplete, "the loopback connection is TLS too")
	pub, err := srv.ConnectPublisher("publisher")
	require.NoError(t, err)
	defer func() { _ = pub.Close() }()
	sub, err := in.SubscribeSync("work.y")
	require.NoError(t, err)
	require.NoError(t, in.Flush())
	require.NoError(t, lo.Publish("work.y", []byte("lo")))
	require.NoError(t, lo.Flush())
	require.NoError(t, pub.Publish("work.y", "", nil, []byte("pub")))
	for _, want := range []string{"lo", "pub"} {
		m, err := sub.NextMsg(5 * time.Second)
		require.NoError(t, err)
		require.Equal(t, want, string(m.Data))
	}
}

func TestTLSConfigValidate(t *testing.T) {
	require.ErrorContains(t, Config{TLSVerifyClients: true}.Validate(), "verifying client certificates needs TLS")
	require.ErrorContains(t, Config{TLS: &tls.Config{ClientAuth: tls.RequireAndVerifyClientCert}, TLSVerifyClients: true}.Validate(),
		"RequireAndVerifyClientCert would refuse the broker's own loopback connection")
	require.ErrorContains(t, Config{TLSTimeout: -time.Second}.Validate(), "TLS timeout")
}
