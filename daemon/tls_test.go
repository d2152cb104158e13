package daemon

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/require"

	"github.com/kitenats/kitenats/compat/compattest"
	"github.com/kitenats/kitenats/config"
	"github.com/kitenats/kitenats/natsproto"
	"github.com/kitenats/kitenats/registry"
)

// testCA is a certificate authority made by a test: it issues server
// certificates for 127.0.0.1 and localhost and client certificates with a
// chosen CN.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pem  []byte
	pool *x509.CertPool
}

// serials numbers every certificate the tests issue.
var serials atomic.Int64

func newTestCA(t *testing.T) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(serials.Add(1)),
		Subject:               pkix.Name{CommonName: "kitenats test CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	require.NoError(t, err)
	cert, err := x509.ParseCertificate(der)
	require.NoError(t, err)
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &testCA{cert: cert, key: key, pool: pool, pem: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}
}

// issued is a certificate the CA issued, in PEM and ready for crypto/tls.
type issued struct {
	certPEM, keyPEM []byte
	serial          *big.Int
	pair            tls.Certificate
}

// issue makes a certificate for cn: a server one (127.0.0.1, localhost)
// or a client one (extra names as DNS SANs), valid from notBefore to
// notAfter.
func (ca *testCA) issue(t *testing.T, cn string, server bool, notBefore, notAfter time.Time, dnsSANs ...string) issued {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serials.Add(1)),
		Subject:      pkix.Name{CommonName: cn},
		NotBefore:    notBefore,
		NotAfter:     notAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		DNSNames:     dnsSANs,
	}
	if server {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
		tmpl.IPAddresses = []net.IP{net.IPv4(127, 0, 0, 1)}
		tmpl.DNSNames = append(tmpl.DNSNames, "localhost")
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	require.NoError(t, err)
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	require.NoError(t, err)
	is := issued{
		certPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		keyPEM:  pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}),
		serial:  tmpl.SerialNumber,
	}
	is.pair, err = tls.X509KeyPair(is.certPEM, is.keyPEM)
	require.NoError(t, err)
	return is
}

func (ca *testCA) server(t *testing.T) issued {
	return ca.issue(t, "kitenats", true, time.Now().Add(-time.Hour), time.Now().Add(time.Hour))
}

func (ca *testCA) client(t *testing.T, cn string, sans ...string) issued {
	return ca.issue(t, cn, false, time.Now().Add(-time.Hour), time.Now().Add(time.Hour), sans...)
}

// tlsFiles are a server certificate, its key and the CA, written where a
// daemon reads them.
type tlsFiles struct{ cert, key, ca string }

func writeTLSFiles(t *testing.T, ca *testCA, srv issued) tlsFiles {
	t.Helper()
	dir := t.TempDir()
	f := tlsFiles{cert: filepath.Join(dir, "server.pem"), key: filepath.Join(dir, "server-key.pem"), ca: filepath.Join(dir, "ca.pem")}
	f.replace(t, srv)
	require.NoError(t, os.WriteFile(f.ca, ca.pem, 0o600))
	return f
}

// replace writes a new pair over the files, as an operator does before a
// SIGHUP.
func (f tlsFiles) replace(t *testing.T, srv issued) {
	t.Helper()
	require.NoError(t, os.WriteFile(f.cert, srv.certPEM, 0o600))
	require.NoError(t, os.WriteFile(f.key, srv.keyPEM, 0o600))
}

// withTLS turns TLS on for the listeners named (nats, kiteq, admin) with
// f's files as the shared ones.
func withTLS(f tlsFiles, verify bool, listeners ...string) func(*config.Config) {
	return func(c *config.Config) {
		c.TLS.Cert, c.TLS.Key, c.TLS.CA, c.TLS.VerifyClients = f.cert, f.key, f.ca, verify
		for _, l := range listeners {
			switch l {
			case "nats":
				c.TLS.NATS.On = true
			case "kiteq":
				c.TLS.KiteQ.On = true
			case "admin":
				c.TLS.Admin.On = true
				c.AdminPort = freePort()
			}
		}
	}
}

func freePort() int {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	defer func() { _ = ln.Close() }()
	return ln.Addr().(*net.TCPAddr).Port
}

// clientTLS trusts ca and presents certs.
func clientTLS(ca *testCA, certs ...issued) *tls.Config {
	c := &tls.Config{RootCAs: ca.pool, MinVersion: tls.VersionTLS12}
	for _, is := range certs {
		c.Certificates = append(c.Certificates, is.pair)
	}
	return c
}

const tradeBinding = `{"topic":"trade","messageType":"pay-succ","bindType":"direct","persistent":true}`

// NATS over TLS: tls:// URLs with the CA publish and consume; the
// broker's own loopback connection works over TLS; a plaintext client is
// refused, and so is a client that does not trust the CA.
func TestTLSNATSPublishConsume(t *testing.T) {
	ca := newTestCA(t)
	files := writeTLSFiles(t, ca, ca.server(t))
	d := startTestDaemon(t, withTLS(files, false, "nats"))
	url := d.ClientURL()
	require.True(t, strings.HasPrefix(url, "tls://"), url)

	_, ch := consumeWith(t, url, "s-trade", tradeBinding, "", nats.UserInfo("s-trade", ""), nats.Secure(clientTLS(ca)))
	// A nats:// URL with nats.Secure() works too.
	nc := connect(t, strings.Replace(url, "tls://", "nats://", 1), nats.Secure(clientTLS(ca)))
	st, err := nc.TLSConnectionState()
	require.NoError(t, err)
	require.True(t, st.HandshakeComplete)
	ack, err := nc.Request("kq.trade.pay-succ", []byte("over tls"), 5*time.Second)
	require.NoError(t, err)
	require.Contains(t, string(ack.Data), `"groups":1`)
	m := recv(t, ch)
	require.Equal(t, "over tls", string(m.Data))
	require.NoError(t, m.AckSync())

	// Plain NATS on the socket: the server wants a TLS handshake, and
	// closes the connection instead of answering PING.
	raw, err := net.DialTimeout("tcp", strings.TrimPrefix(url, "tls://"), time.Second)
	require.NoError(t, err)
	defer func() { _ = raw.Close() }()
	_ = raw.SetDeadline(time.Now().Add(5 * time.Second))
	br := bufio.NewReader(raw)
	info, err := br.ReadString('\n')
	require.NoError(t, err)
	require.Contains(t, info, `"tls_required":true`)
	_, err = raw.Write([]byte("CONNECT {\"verbose\":false}\r\nPING\r\n"))
	require.NoError(t, err)
	rest, _ := io.ReadAll(br)
	require.NotContains(t, string(rest), "PONG")

	// A client that does not trust the CA fails the handshake.
	_, err = nats.Connect(url, nats.NoReconnect(), nats.Timeout(2*time.Second))
	require.Error(t, err)
	require.Contains(t, err.Error(), "certificate")
}

// In secrets mode a verified client certificate stands for the secret:
// its CN is the group (or the user it gives, if that is one of its names),
// and its permissions are that group's.
func TestTLSClientCertificateIsTheGroup(t *testing.T) {
	ca := newTestCA(t)
	files := writeTLSFiles(t, ca, ca.server(t))
	d := startTestDaemon(t, func(c *config.Config) {
		withTLS(files, true, "nats")(c)
		c.Secrets = map[string]string{"s-trade": "s3cret", "p-trade": "p3cret"}
		c.AdminSecret = "adm"
	})
	url := d.ClientURL()
	sTrade := ca.client(t, "s-trade", "p-trade")

	// No user: the CN. No password: the certificate is the secret.
	_, ch := consumeWith(t, url, "s-trade", tradeBinding, "",
		nats.CustomInboxPrefix(natsproto.InboxPrefix("s-trade")), nats.Secure(clientTLS(ca, sTrade)))
	// Its permissions are s-trade's: no BIND as another group.
	v := &violations{}
	nc := connect(t, url, nats.CustomInboxPrefix(natsproto.InboxPrefix("s-trade")), nats.Secure(clientTLS(ca, sTrade)),
		nats.ErrorHandler(v.handler))
	_, err := nc.Request("$KQ.API.BIND.other", []byte(`{}`), 300*time.Millisecond)
	require.Error(t, err)
	v.requireAll(t, "publish", []string{"$KQ.API.BIND.other"})

	// A user that is a SAN of the certificate: that group, with no secret.
	prod := connect(t, url, nats.UserInfo("p-trade", ""), nats.CustomInboxPrefix(natsproto.InboxPrefix("p-trade")),
		nats.Secure(clientTLS(ca, sTrade)))
	ack, err := prod.Request("kq.trade.pay-succ", []byte("by cert"), 5*time.Second)
	require.NoError(t, err)
	require.Contains(t, string(ack.Data), `"groups":1`)
	require.NoError(t, recv(t, ch).AckSync())

	for name, opts := range map[string][]nats.Option{
		"no client certificate, with the right secret": {nats.UserInfo("s-trade", "s3cret"), nats.Secure(clientTLS(ca))},
		"a user the certificate does not name":         {nats.UserInfo("admin", "adm"), nats.Secure(clientTLS(ca, sTrade))},
		"a certificate of a group not configured":      {nats.Secure(clientTLS(ca, ca.client(t, "stranger")))},
		"a certificate of another CA":                  {nats.Secure(clientTLS(ca, newTestCA(t).client(t, "s-trade")))},
	} {
		nc, err := nats.Connect(url, append(opts, nats.NoReconnect(), nats.Timeout(2*time.Second))...)
		if err == nil {
			nc.Close()
		}
		require.Error(t, err, name)
	}
}

// KiteQ over TLS: the handshake, then KiteQ's ConnMeta and a heartbeat
// inside it; a plain KiteQ client gets nothing back.
func TestTLSKiteQ(t *testing.T) {
	ca := newTestCA(t)
	files := writeTLSFiles(t, ca, ca.server(t))
	d := startTestDaemon(t, withTLS(files, false, "kiteq"))
	addr := d.KiteQAddr().String()

	c := compattest.DialTLS(t, addr, clientTLS(ca))
	c.MustHandshake("s-trade", "", 0)
	c.Heartbeat(42)

	// kiteq-client-go's socket over TLS: deliveries of 2 KiB bodies, many
	// to a write, through the writer's TLS path.
	require.NoError(t, d.broker.AddBindings(context.Background(), "s-kite", []registry.Binding{
		{GroupID: "s-kite", Topic: "trade", MessageType: "pay-succ", BindType: registry.Direct, Persistent: true},
	}))
	k, err := compattest.StartKite(t, addr, compattest.KiteConfig{Group: "s-kite", TLS: clientTLS(ca)})
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		st, err := d.broker.Stat(context.Background())
		return err == nil && len(st.Consumers) == 2
	}, 5*time.Second, 10*time.Millisecond)
	nc := connect(t, d.ClientURL())
	const n = 300
	body := []byte(strings.Repeat("k", 2<<10))
	for range n {
		_, err := nc.Request("kq.trade.pay-succ", body, 5*time.Second)
		require.NoError(t, err)
	}
	require.Eventually(t, func() bool { return k.Stats().Unique == n }, 10*time.Second, 10*time.Millisecond)
	k.Close()

	plain := compattest.Dial(t, addr)
	plain.Timeout = 2 * time.Second
	_ = plain.WriteRaw([]byte("not a TLS ClientHello, a KiteQ frame would be no better\r\n"))
	plain.ExpectClosed()
}

// tlsVerifyClients on KiteQ: a handshake without a client certificate is
// refused.
func TestTLSKiteQRequiresClientCertificate(t *testing.T) {
	ca := newTestCA(t)
	files := writeTLSFiles(t, ca, ca.server(t))
	d := startTestDaemon(t, withTLS(files, true, "kiteq"))
	addr := d.KiteQAddr().String()

	c := compattest.DialTLS(t, addr, clientTLS(ca, ca.client(t, "s-trade")))
	c.MustHandshake("s-trade", "", 0)

	conn, err := compattest.DialTLSConn(addr, clientTLS(ca))
	if err == nil {
		// TLS 1.3: the server refuses the client's certificate after the
		// client's side of the handshake: the first read says so.
		_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		_, err = conn.Read(make([]byte, 1))
		_ = conn.Close()
	}
	require.Error(t, err)
	require.Contains(t, err.Error(), "certificate")
}

// Admin HTTP over HTTPS.
func TestTLSAdminHTTPS(t *testing.T) {
	ca := newTestCA(t)
	files := writeTLSFiles(t, ca, ca.server(t))
	d := startTestDaemon(t, withTLS(files, false, "admin"))
	addr := d.AdminAddr().String()

	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: clientTLS(ca)}, Timeout: 5 * time.Second}
	res, err := hc.Get("https://" + addr + "/healthz")
	require.NoError(t, err)
	body, _ := io.ReadAll(res.Body)
	_ = res.Body.Close()
	require.Equal(t, http.StatusOK, res.StatusCode)
	require.Equal(t, "ok\n", string(body))

	res, err = (&http.Client{Timeout: 5 * time.Second}).Get("http://" + addr + "/healthz")
	if err == nil {
		_ = res.Body.Close()
		require.Equal(t, http.StatusBadRequest, res.StatusCode, "plain HTTP to an HTTPS port")
	}
}

// Reload: new files, Reload (what SIGHUP calls), and new connections on
// every listener see the new certificate's serial while the old ones keep
// working; files that do not load keep the certificate in use.
func TestTLSReload(t *testing.T) {
	ca := newTestCA(t)
	first := ca.server(t)
	files := writeTLSFiles(t, ca, first)
	d := startTestDaemon(t, withTLS(files, false, "nats", "kiteq", "admin"))
	url := d.ClientURL()

	serials := func() map[string]string {
		got := map[string]string{}
		nc := connect(t, url, nats.Secure(clientTLS(ca)), nats.NoReconnect())
		st, err := nc.TLSConnectionState()
		require.NoError(t, err)
		got["nats"] = st.PeerCertificates[0].SerialNumber.String()
		nc.Close()
		for name, addr := range map[string]string{"kiteq": d.KiteQAddr().String(), "admin": d.AdminAddr().String()} {
			conn, err := tls.Dial("tcp", addr, clientTLS(ca))
			require.NoError(t, err)
			got[name] = conn.ConnectionState().PeerCertificates[0].SerialNumber.String()
			_ = conn.Close()
		}
		return got
	}
	all := func(is issued) map[string]string {
		s := is.serial.String()
		return map[string]string{"nats": s, "kiteq": s, "admin": s}
	}
	require.Equal(t, all(first), serials())
	old := connect(t, url, nats.Secure(clientTLS(ca)))

	second := ca.server(t)
	files.replace(t, second)
	require.NoError(t, d.Reload())
	require.Equal(t, all(second), serials())
	require.NoError(t, old.Flush(), "a connection made before the reload")

	// A key that is not the certificate's, a missing file, an expired
	// certificate: each is an error naming the key, and the second
	// certificate stays.
	third := ca.server(t)
	require.NoError(t, os.WriteFile(files.cert, third.certPEM, 0o600))
	err := d.Reload()
	require.ErrorContains(t, err, "tlsCert "+files.cert+", tlsKey "+files.key)
	require.ErrorContains(t, err, "private key does not match public key")
	require.NoError(t, os.Remove(files.key))
	require.ErrorContains(t, d.Reload(), "tlsKey: open "+files.key)
	files.replace(t, ca.issue(t, "kitenats", true, time.Now().Add(-2*time.Hour), time.Now().Add(-time.Hour)))
	require.ErrorContains(t, d.Reload(), "tlsCert "+files.cert+": the certificate expired at")
	require.Equal(t, all(second), serials())

	files.replace(t, third)
	require.NoError(t, d.Reload())
	require.Equal(t, all(third), serials())
}

// Files that do not load stop the start with one error naming the key.
func TestTLSBadFilesAtStart(t *testing.T) {
	ca := newTestCA(t)
	srv := ca.server(t)
	files := writeTLSFiles(t, ca, srv)
	other := ca.server(t)
	mismatched := filepath.Join(t.TempDir(), "other-key.pem")
	require.NoError(t, os.WriteFile(mismatched, other.keyPEM, 0o600))
	expired := ca.issue(t, "kitenats", true, time.Now().Add(-2*time.Hour), time.Now().Add(-time.Hour))
	expiredFile := filepath.Join(t.TempDir(), "expired.pem")
	require.NoError(t, os.WriteFile(expiredFile, expired.certPEM, 0o600))
	notPEM := filepath.Join(t.TempDir(), "ca.pem")
	require.NoError(t, os.WriteFile(notPEM, []byte("not a certificate"), 0o600))

	for name, tc := range map[string]struct {
		mod  func(*config.Config)
		want string
	}{
		"missing cert":     {func(c *config.Config) { c.TLS.Cert = "/nonexistent/cert.pem" }, "natsTLS: tlsCert: open /nonexistent/cert.pem"},
		"key mismatch":     {func(c *config.Config) { c.TLS.Key = mismatched }, "natsTLS: tlsCert " + files.cert + ", tlsKey " + mismatched + ": tls: private key does not match public key"},
		"expired":          {func(c *config.Config) { c.TLS.NATS.Cert, c.TLS.NATS.Key = expiredFile, mismatched }, "natsTLS: natsTLSCert " + expiredFile},
		"CA without PEM":   {func(c *config.Config) { c.TLS.CA = notPEM }, "natsTLS: tlsCA " + notPEM + ": no PEM certificate in it"},
		"kiteq per listen": {func(c *config.Config) { c.TLS.KiteQ.On, c.TLS.KiteQ.Key = true, "/nonexistent/key.pem" }, "kiteqTLS: kiteqTLSKey: open /nonexistent/key.pem"},
	} {
		t.Run(name, func(t *testing.T) {
			cfg := config.Default()
			cfg.NATS, cfg.Bind, cfg.AdminPort, cfg.DB = "127.0.0.1:0", "127.0.0.1:0", -1, "memory://"
			withTLS(files, false, "nats")(&cfg)
			tc.mod(&cfg)
			_, err := New(context.Background(), cfg, slog.New(slog.DiscardHandler))
			require.ErrorContains(t, err, tc.want)
			require.ErrorContains(t, err, "bad config: ")
		})
	}
	// The expired pair is refused for its date, not its key.
	cfg := config.Default()
	cfg.NATS, cfg.Bind, cfg.AdminPort, cfg.DB = "127.0.0.1:0", "off", -1, "memory://"
	expiredKey := filepath.Join(t.TempDir(), "expired-key.pem")
	require.NoError(t, os.WriteFile(expiredKey, expired.keyPEM, 0o600))
	cfg.TLS = config.TLSConfig{Cert: expiredFile, Key: expiredKey, NATS: config.ListenerTLS{On: true}}
	_, err := New(context.Background(), cfg, slog.New(slog.DiscardHandler))
	require.ErrorContains(t, err, "natsTLS: tlsCert "+expiredFile+": the certificate expired at")
}

func TestCertUser(t *testing.T) {
	cert := &x509.Certificate{Subject: pkix.Name{CommonName: "s-trade"}, DNSNames: []string{"p-trade"}, EmailAddresses: []string{"ops@example.com"}}
	for user, want := range map[string]string{"": "s-trade", "s-trade": "s-trade", "p-trade": "p-trade", "ops@example.com": "ops@example.com"} {
		got, err := certUser(cert, user)
		require.NoError(t, err, user)
		require.Equal(t, want, got)
	}
	_, err := certUser(cert, "admin")
	require.ErrorContains(t, err, `user "admin" is not a name of the client certificate (s-trade, p-trade, ops@example.com)`)
	_, err = certUser(&x509.Certificate{}, "")
	require.Error(t, err)
}
