package compat

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"io"
	"math/big"
	"net"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// selfSigned is a server certificate for tests that do not check it.
func selfSigned(t *testing.T) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	require.NoError(t, err)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// Over TLS the writer copies frames together into writes of at most 16
// KiB, a larger frame on its own, and the bytes arrive as given, in order.
func TestWriteFramesTLSCoalesces(t *testing.T) {
	a, b := net.Pipe()
	srv := tls.Server(a, &tls.Config{Certificates: []tls.Certificate{selfSigned(t)}, MinVersion: tls.VersionTLS12})
	cli := tls.Client(b, &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS12})
	defer func() { _ = srv.Close(); _ = cli.Close() }()

	var iov [][]byte
	var want bytes.Buffer
	for i, n := range []int{19, 100, 8 << 10, 9 << 10, 40 << 10, 1, coalesceBuf, 3} {
		f := bytes.Repeat([]byte{byte('a' + i)}, n)
		iov = append(iov, f)
		want.Write(f)
	}
	got := make(chan []byte, 1)
	go func() {
		buf := make([]byte, want.Len())
		_, err := io.ReadFull(cli, buf)
		if err != nil {
			buf = nil
		}
		got <- buf
	}()
	s := &session{conn: srv}
	require.NoError(t, s.writeFrames(iov))
	require.Equal(t, want.Bytes(), <-got)
}
