package bridge

import (
	"crypto/rand"
	"crypto/subtle"
	"crypto/x509"
	"log/slog"
	"net"
	"sync"

	"github.com/nats-io/nats-server/v2/server"
)

// Permissions are what one client connection may do. A nil *Permissions
// allows everything. A non-nil one allows exactly what it lists: an empty
// list allows nothing. Subjects may use NATS wildcards (* and >).
type Permissions struct {
	// Publish lists the subjects the client may publish to.
	Publish []string
	// Subscribe lists the subjects the client may subscribe to (plain or
	// queue subscriptions).
	Subscribe []string
	// AllowResponses lets the client publish one reply to the reply subject
	// of each message it received, within 2 minutes, even where Publish does
	// not allow it (nats-server's allow_responses defaults).
	AllowResponses bool
}

// ConnInfo describes a connecting client to an Authorizer.
type ConnInfo struct {
	// RemoteAddr is the client's "ip:port".
	RemoteAddr string
	// ClientName is the name the client gave in CONNECT; it may be empty.
	ClientName string
	// TLS reports whether the connection did a TLS handshake.
	TLS bool
	// Certificate is the client's certificate once TLS verified it against
	// Config.TLS's ClientCAs (the leaf of its first verified chain); nil
	// when the client presented none or TLS did not verify it. With
	// Config.TLSVerifyClients it is never nil: a client without one is
	// refused before the Authorizer is asked.
	Certificate *x509.Certificate
}

// Authorizer decides a connecting client's permissions from its NATS
// user/pass. It is called once per connection attempt, on nats-server's
// connection goroutine, before the client may do anything: it must be safe
// for concurrent use and return quickly (no network round trips). A non-nil
// error refuses the connection; the client gets the NATS authorization error
// and the error itself is logged at Debug, never sent to the client.
//
// The user names "_kitenats_internal" and "_kitenats_system" are reserved for
// the bridge's own connections: an external client using them is refused
// without calling the Authorizer.
type Authorizer interface {
	Authorize(user, pass string, info ConnInfo) (*Permissions, error)
}

// AuthorizerFunc adapts a function to the Authorizer interface.
type AuthorizerFunc func(user, pass string, info ConnInfo) (*Permissions, error)

// Authorize calls f.
func (f AuthorizerFunc) Authorize(user, pass string, info ConnInfo) (*Permissions, error) {
	return f(user, pass, info)
}

// Reserved user names of the bridge's in-process connections.
const (
	// internalUser is the user of Server.Connect's connections: client
	// account, full permissions.
	internalUser = "_kitenats_internal"
	// systemUser is the user of the events connection: system account.
	systemUser = "_kitenats_system"
)

// credential is a user name with a random password generated in New.
type credential struct {
	user, pass string
}

func newCredential(user string) credential {
	return credential{user: user, pass: rand.Text()}
}

func (c credential) matches(user, pass string) bool {
	return user == c.user && subtle.ConstantTimeCompare([]byte(pass), []byte(c.pass)) == 1
}

// authenticator is nats-server's CustomClientAuthentication hook. Every
// client connection, in-process or TCP, passes through Check.
type authenticator struct {
	authz Authorizer // nil: open mode
	// verify refuses external clients without a verified certificate
	// (Config.TLSVerifyClients).
	verify   bool
	internal credential
	system   credential
	log      *slog.Logger
	// srv is set once by Start before the server starts accepting, and
	// only read afterwards (Check runs on the server's goroutines).
	srv *server.Server
	// hosts counts the external clients of each IP address
	// (Config.MaxConnectionsPerHost).
	hosts *hostCounts
}

var _ server.Authentication = (*authenticator)(nil)

// Check authenticates one client and registers its account and permissions.
func (a *authenticator) Check(c server.ClientAuthentication) bool {
	opts := c.GetOpts()
	if opts == nil || c.Kind() != server.CLIENT {
		return false
	}
	addr := c.RemoteAddress()
	if opts.Username == internalUser || opts.Username == systemUser {
		return a.checkReserved(c, opts, addr)
	}
	info := ConnInfo{RemoteAddr: addrString(addr), ClientName: opts.Name}
	if st := c.GetTLSConnectionState(); st != nil {
		info.TLS = true
		if len(st.VerifiedChains) > 0 && len(st.VerifiedChains[0]) > 0 {
			info.Certificate = st.VerifiedChains[0][0]
		}
	}
	if a.verify && info.Certificate == nil {
		a.log.Debug("connection refused: no verified client certificate",
			"user", opts.Username, "remote", info.RemoteAddr, "tls", info.TLS)
		return false
	}
	var perms *server.Permissions
	if a.authz != nil {
		p, err := a.authz.Authorize(opts.Username, opts.Password, info)
		if err != nil {
			a.log.Debug("connection refused by authorizer",
				"user", opts.Username, "remote", info.RemoteAddr, "err", err)
			return false
		}
		perms = p.server()
	}
	if !a.hosts.admit(c, addr) {
		return false
	}
	a.register(c, opts.Username, perms)
	return true
}

// hostCounts bounds the external clients of one IP address: Check admits
// a client (counting it) while its address has fewer than max, and the
// events loop forgets it at its Disconnect. A Server whose Events is never
// consumed never forgets: the daemon always consumes it.
type hostCounts struct {
	max     int // -1: no bound
	log     *slog.Logger
	mu      sync.Mutex
	byHost  map[string]int
	ofConn  map[uint64]string // client id -> host, for the Disconnect
	refused uint64
}

func newHostCounts(max int, log *slog.Logger) *hostCounts {
	return &hostCounts{max: max, log: log, byHost: make(map[string]int), ofConn: make(map[uint64]string)}
}

// admit counts a client of addr, or refuses it over the bound.
func (h *hostCounts) admit(c server.ClientAuthentication, addr net.Addr) bool {
	ided, ok := c.(interface{ GetID() uint64 })
	if h == nil || h.max < 0 || !ok {
		return true
	}
	host := hostOf(addr)
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.byHost[host] >= h.max {
		h.refused++
		if n := h.refused; n&(n-1) == 0 { // the 1st, 2nd, 4th…: a flood does not flood the log
			h.log.Warn("connection refused: too many from its host", "remote", host, "max_connections_per_host", h.max, "refused_so_far", n)
		}
		return false
	}
	h.byHost[host]++
	h.ofConn[ided.GetID()] = host
	return true
}

// gone forgets client id.
func (h *hostCounts) gone(id uint64) {
	if h == nil {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	host, ok := h.ofConn[id]
	if !ok {
		return
	}
	delete(h.ofConn, id)
	if h.byHost[host]--; h.byHost[host] <= 0 {
		delete(h.byHost, host)
	}
}

// Refused counts the clients refused over Config.MaxConnectionsPerHost.
func (s *Server) Refused() uint64 {
	h := s.auth.hosts
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.refused
}

// hostOf is the IP address of addr, or its string.
func hostOf(addr net.Addr) string {
	if ta, ok := addr.(*net.TCPAddr); ok {
		return ta.IP.String()
	}
	return addrString(addr)
}

// register puts an external client in the client account ($G).
func (a *authenticator) register(c server.ClientAuthentication, user string, p *server.Permissions) {
	c.RegisterUser(&server.User{Username: user, Account: a.srv.GlobalAccount(), Permissions: p})
}

// checkReserved admits the bridge's own connections: only with the password
// generated in New, and only over an in-process pipe, or, for the internal
// user, a loopback TCP connection (ConnectLoopback). The system account is
// reachable over the pipe only.
func (a *authenticator) checkReserved(c server.ClientAuthentication, opts *server.ClientOpts, addr net.Addr) bool {
	if addr == nil || addr.Network() != "pipe" && !(opts.Username == internalUser && isLoopback(addr)) {
		a.log.Warn("reserved user refused on a network connection",
			"user", opts.Username, "remote", addrString(addr))
		return false
	}
	var acc *server.Account
	switch {
	case a.internal.matches(opts.Username, opts.Password):
		acc = a.srv.GlobalAccount()
	case a.system.matches(opts.Username, opts.Password):
		acc = a.srv.SystemAccount()
	}
	if acc == nil {
		return false
	}
	c.RegisterUser(&server.User{Username: opts.Username, Account: acc})
	return true
}

// server converts p to nats-server permissions; nil stays nil (allow all).
// The allow lists are always non-nil, because nats-server reads a nil list
// as "everything".
func (p *Permissions) server() *server.Permissions {
	if p == nil {
		return nil
	}
	sp := &server.Permissions{
		Publish:   &server.SubjectPermission{Allow: append([]string{}, p.Publish...)},
		Subscribe: &server.SubjectPermission{Allow: append([]string{}, p.Subscribe...)},
	}
	if p.AllowResponses {
		sp.Response = &server.ResponsePermission{
			MaxMsgs: server.DEFAULT_ALLOW_RESPONSE_MAX_MSGS,
			Expires: server.DEFAULT_ALLOW_RESPONSE_EXPIRATION,
		}
	}
	return sp
}

func addrString(a net.Addr) string {
	if a == nil {
		return ""
	}
	return a.String()
}

// isLoopback reports whether addr is a TCP address on the loopback network.
func isLoopback(addr net.Addr) bool {
	ta, ok := addr.(*net.TCPAddr)
	return ok && ta.IP.IsLoopback()
}
