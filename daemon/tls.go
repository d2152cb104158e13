package daemon

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/kitenats/kitenats/config"
)

// listenerTLS is one listener's TLS: the files config names, and the
// tls.Config made of them that new handshakes use. Reload swaps that
// config; connections already up keep the certificate they shook hands
// with.
type listenerTLS struct {
	files config.TLSFiles
	// requireCert makes the listener refuse a handshake without a verified
	// client certificate (KiteQ, admin with tlsVerifyClients). NATS asks for
	// one and lets the bridge refuse (bridge.Config.TLSVerifyClients).
	requireCert bool
	cur         atomic.Pointer[tls.Config]
	serial      atomic.Pointer[string] // of the current certificate, for logs
}

// newListenerTLS loads the listener's files; an error names the key of
// the file at fault.
func newListenerTLS(files config.TLSFiles, requireCert bool) (*listenerTLS, error) {
	l := &listenerTLS{files: files, requireCert: requireCert}
	if err := l.load(time.Now()); err != nil {
		return nil, err
	}
	return l, nil
}

// config is what the listener is given: every handshake takes the
// current certificates.
func (l *listenerTLS) config() *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) {
			return l.cur.Load(), nil
		},
	}
}

// load reads the files and, if they make a usable configuration, makes it
// the one new handshakes use.
func (l *listenerTLS) load(now time.Time) error {
	cfg, leaf, err := loadTLSFiles(l.files, l.requireCert, now)
	if err != nil {
		return err
	}
	l.cur.Store(cfg)
	serial := leaf.SerialNumber.Text(16)
	l.serial.Store(&serial)
	return nil
}

// loadTLSFiles reads a certificate chain, its key and the optional client
// CA, and checks that the key is the certificate's and that the
// certificate is valid now. Every error names the config key and the file.
func loadTLSFiles(f config.TLSFiles, requireCert bool, now time.Time) (*tls.Config, *x509.Certificate, error) {
	certPEM, err := os.ReadFile(f.Cert)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", f.CertKey, err)
	}
	keyPEM, err := os.ReadFile(f.Key)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", f.KeyKey, err)
	}
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, nil, fmt.Errorf("%s %s, %s %s: %w", f.CertKey, f.Cert, f.KeyKey, f.Key, err)
	}
	leaf := pair.Leaf
	if leaf == nil {
		if leaf, err = x509.ParseCertificate(pair.Certificate[0]); err != nil {
			return nil, nil, fmt.Errorf("%s %s: %w", f.CertKey, f.Cert, err)
		}
	}
	switch {
	case now.After(leaf.NotAfter):
		return nil, nil, fmt.Errorf("%s %s: the certificate expired at %s", f.CertKey, f.Cert, leaf.NotAfter.UTC().Format(time.RFC3339))
	case now.Before(leaf.NotBefore):
		return nil, nil, fmt.Errorf("%s %s: the certificate is not valid before %s", f.CertKey, f.Cert, leaf.NotBefore.UTC().Format(time.RFC3339))
	}
	cfg := &tls.Config{Certificates: []tls.Certificate{pair}, MinVersion: tls.VersionTLS12}
	if f.CA != "" {
		caPEM, err := os.ReadFile(f.CA)
		if err != nil {
			return nil, nil, fmt.Errorf("%s: %w", f.CAKey, err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(caPEM) {
			return nil, nil, fmt.Errorf("%s %s: no PEM certificate in it", f.CAKey, f.CA)
		}
		cfg.ClientCAs = pool
		cfg.ClientAuth = tls.VerifyClientCertIfGiven
		if requireCert {
			cfg.ClientAuth = tls.RequireAndVerifyClientCert
		}
	}
	return cfg, leaf, nil
}

// tlsSet is the TLS of the daemon's listeners; nil entries are plain.
type tlsSet struct {
	nats, kiteq, admin *listenerTLS
}

// loadTLS loads the files of every listener that has TLS on and serves.
func loadTLS(cfg config.Config) (*tlsSet, error) {
	var s tlsSet
	// The listeners that share a file share its error: one line,
	// "natsTLS, kiteqTLS: tlsCert: open …".
	var msgs []string
	by := map[string][]string{}
	for _, l := range []struct {
		name   string
		serves bool
		dst    **listenerTLS
	}{
		{"nats", true, &s.nats},
		{"kiteq", cfg.Bind != "off", &s.kiteq},
		{"admin", cfg.AdminPort > 0, &s.admin},
	} {
		files, on := cfg.TLS.Files(l.name)
		if !on || !l.serves {
			continue
		}
		lt, err := newListenerTLS(files, files.VerifyClients && l.name != "nats")
		if err != nil {
			if by[err.Error()] == nil {
				msgs = append(msgs, err.Error())
			}
			by[err.Error()] = append(by[err.Error()], l.name+"TLS")
			continue
		}
		*l.dst = lt
	}
	if len(msgs) > 0 {
		for i, m := range msgs {
			msgs[i] = strings.Join(by[m], ", ") + ": " + m
		}
		return nil, fmt.Errorf("bad config: %s", strings.Join(msgs, "; "))
	}
	return &s, nil
}

func (s *tlsSet) listeners() []*listenerTLS {
	return slices.DeleteFunc([]*listenerTLS{s.nats, s.kiteq, s.admin}, func(l *listenerTLS) bool { return l == nil })
}

// reload re-reads every listener's files. A listener whose files do not
// load keeps its certificate, and the error is logged and returned.
func (s *tlsSet) reload(log *slog.Logger) error {
	var errs []error
	for _, l := range s.listeners() {
		old := *l.serial.Load()
		if err := l.load(time.Now()); err != nil {
			log.Error("TLS reload failed: keeping the certificate in use", "listener", l.files.Listener, "serial", old, "err", err)
			errs = append(errs, fmt.Errorf("%sTLS: %w", l.files.Listener, err))
			continue
		}
		log.Info("TLS reloaded", "listener", l.files.Listener, "cert", l.files.Cert, "serial", *l.serial.Load(), "previous", old)
	}
	return errors.Join(errs...)
}

// certUser is the NATS user a verified client certificate stands for
// (NATS-PROTOCOL.md §7): the user the client gave when it is the
// certificate's subject CN or one of its DNS or e-mail SANs, else, when the
// client gave none, the CN.
func certUser(cert *x509.Certificate, user string) (string, error) {
	cn := cert.Subject.CommonName
	if user == "" {
		if cn == "" {
			return "", errors.New("client certificate without a subject CN, and no user given")
		}
		return cn, nil
	}
	if user == cn || slices.Contains(cert.DNSNames, user) || slices.Contains(cert.EmailAddresses, user) {
		return user, nil
	}
	names := append([]string{cn}, cert.DNSNames...)
	return "", fmt.Errorf("user %q is not a name of the client certificate (%s)", user, strings.Join(append(names, cert.EmailAddresses...), ", "))
}
