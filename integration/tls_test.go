//go:build integration

package integration

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/require"
)

// itCA is a certificate authority made by the test.
type itCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pool *x509.CertPool
	next int64
}

func newITCA(t *testing.T) *itCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "kitenats integration CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	require.NoError(t, err)
	cert, err := x509.ParseCertificate(der)
	require.NoError(t, err)
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &itCA{cert: cert, key: key, pool: pool, next: 100}
}

// serverPEM issues a server certificate for 127.0.0.1 and localhost and
// returns it, its key and its serial.
func (ca *itCA) serverPEM(t *testing.T) (certPEM, keyPEM []byte, serial string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	ca.next++
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(ca.next), Subject: pkix.Name{CommonName: "kitenats"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, DNSNames: []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	require.NoError(t, err)
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	require.NoError(t, err)
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}), tmpl.SerialNumber.String()
}

// The built binary with TLS on all three listeners: clients that trust
// the CA connect (tls:// for NATS, TLS for KiteQ, https:// for the admin
// HTTP); new files and a SIGHUP give new connections the new certificate
// while the old connections carry on; a bad key and a SIGHUP are logged
// and change nothing; SIGTERM still stops it cleanly.
func TestIntegrationTLSReloadOnSIGHUP(t *testing.T) {
	ca := newITCA(t)
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "server.pem"), filepath.Join(dir, "server-key.pem")
	write := func(certPEM, keyPEM []byte) {
		require.NoError(t, os.WriteFile(certFile, certPEM, 0o600))
		require.NoError(t, os.WriteFile(keyFile, keyPEM, 0o600))
	}
	c1, k1, serial1 := ca.serverPEM(t)
	write(c1, k1)
	adminAddr := freeAddr(t)
	_, adminPort, err := net.SplitHostPort(adminAddr)
	require.NoError(t, err)

	b := NewBroker(t, "memory://")
	b.Args = []string{"-natsTLS", "-kiteqTLS", "-adminTLS", "-tlsCert", certFile, "-tlsKey", keyFile, "-pport", adminPort}
	b.launch()
	url := "tls://" + b.NATSAddr
	secure := nats.Secure(&tls.Config{RootCAs: ca.pool, MinVersion: tls.VersionTLS12})
	waitFor(t, 60*time.Second, func() bool {
		b.RequireRunning()
		nc, err := nats.Connect(url, secure, nats.NoReconnect(), nats.Timeout(time.Second))
		if err != nil {
			return false
		}
		defer nc.Close()
		_, err = nc.Request("$KQ.ADMIN.STAT", nil, time.Second)
		return err == nil
	}, "the broker serves over TLS")

	serials := func() map[string]string {
		got := map[string]string{}
		nc, err := nats.Connect(url, secure, nats.NoReconnect())
		require.NoError(t, err)
		st, err := nc.TLSConnectionState()
		require.NoError(t, err)
		got["nats"] = st.PeerCertificates[0].SerialNumber.String()
		nc.Close()
		conn, err := tls.Dial("tcp", b.bindAddr, &tls.Config{RootCAs: ca.pool, MinVersion: tls.VersionTLS12})
		require.NoError(t, err)
		got["kiteq"] = conn.ConnectionState().PeerCertificates[0].SerialNumber.String()
		_ = conn.Close()
		hc := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.pool, MinVersion: tls.VersionTLS12}}}
		res, err := hc.Get("https://" + adminAddr + "/healthz")
		require.NoError(t, err)
		body, _ := io.ReadAll(res.Body)
		_ = res.Body.Close()
		require.Equal(t, "ok\n", string(body))
		got["admin"] = res.TLS.PeerCertificates[0].SerialNumber.String()
		return got
	}
	all := func(s string) map[string]string { return map[string]string{"nats": s, "kiteq": s, "admin": s} }
	require.Equal(t, all(serial1), serials())

	// A client that does not trust the CA is refused.
	_, err = nats.Connect(url, nats.NoReconnect(), nats.Timeout(2*time.Second))
	require.Error(t, err)

	old, err := nats.Connect(url, secure)
	require.NoError(t, err)
	defer old.Close()

	c2, k2, serial2 := ca.serverPEM(t)
	write(c2, k2)
	require.NoError(t, syscall.Kill(b.PID(), syscall.SIGHUP))
	waitFor(t, 10*time.Second, func() bool { return serials()["nats"] == serial2 }, "the new certificate after SIGHUP")
	require.Equal(t, all(serial2), serials())
	_, err = old.Request("$KQ.ADMIN.STAT", nil, 5*time.Second)
	require.NoError(t, err, "a connection made before the reload")
	require.Contains(t, b.Stderr(), "TLS reloaded")

	// A key that is not the certificate's: logged, the certificate kept.
	_, k3, _ := ca.serverPEM(t)
	require.NoError(t, os.WriteFile(keyFile, k3, 0o600))
	require.NoError(t, syscall.Kill(b.PID(), syscall.SIGHUP))
	waitFor(t, 10*time.Second, func() bool { return strings.Contains(b.Stderr(), "TLS reload failed") }, "the failed reload logged")
	require.Contains(t, b.Stderr(), "private key does not match public key")
	b.RequireRunning()
	require.Equal(t, all(serial2), serials())

	code, _ := b.Stop(30 * time.Second)
	require.Zero(t, code, "exit code after SIGTERM")
}

// A certificate file that does not exist stops the start with one line
// naming the key.
func TestIntegrationTLSBadFileAtStart(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "nope.pem")
	code, stderr := runToExit(t, startArgs(t, "-natsTLS", "-tlsCert", missing, "-tlsKey", missing)...)
	requireStartupError(t, code, stderr, "kitenats: bad config: natsTLS: tlsCert: open "+missing)
}
