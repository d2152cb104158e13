package bridge

import (
	"bufio"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/require"
)

var errBadSecret = errors.New("bad secret")

// secrets is a test Authorizer: user -> secret and permissions. It records
// the ConnInfo of every call.
type secrets struct {
	users map[string]string
	perms map[string]*Permissions

	mu    sync.Mutex
	infos []ConnInfo
}

func (a *secrets) Authorize(user, pass string, info ConnInfo) (*Permissions, error) {
	a.mu.Lock()
	a.infos = append(a.infos, info)
	a.mu.Unlock()
	if secret, ok := a.users[user]; !ok || secret != pass {
		return nil, errBadSecret
	}
	return a.perms[user], nil
}

func (a *secrets) calls() []ConnInfo {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]ConnInfo(nil), a.infos...)
}

// groupAuth: g1 publishes to work.> and svc.>, reads inboxes; svc answers
// requests on svc.> through AllowResponses only; mute is svc without it.
func groupAuth() *secrets {
	return &secrets{
		users: map[string]string{"g1": "s1", "svc": "s2", "mute": "s3", "admin": "s4"},
		perms: map[string]*Permissions{
			"g1":    {Publish: []string{"work.>", "svc.>"}, Subscribe: []string{"_INBOX.>"}},
			"svc":   {Subscribe: []string{"svc.>"}, AllowResponses: true},
			"mute":  {Subscribe: []string{"svc.>"}},
			"admin": nil,
		},
	}
}

// asyncErrors returns a nats.go option that sends async errors to a channel.
func asyncErrors() (nats.Option, <-chan error) {
	ch := make(chan error, 16)
	return nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
		select {
		case ch <- err:
		default:
		}
	}), ch
}

func nextErr(t *testing.T, ch <-chan error) error {
	t.Helper()
	select {
	case err := <-ch:
		return err
	case <-time.After(waitTimeout):
		t.Fatal("no async error")
		return nil
	}
}

func TestBridgeAuthWrongSecretRefused(t *testing.T) {
	s := startServer(t, func(c *Config) { c.Authorizer = groupAuth() })
	for _, opt := range []nats.Option{
		nats.UserInfo("g1", "wrong"),
		nats.UserInfo("stranger", "s1"),
		nats.Name("no credentials"),
	} {
		_, err := nats.Connect(s.ClientURL(), opt, nats.MaxReconnects(0))
		require.ErrorIs(t, err, nats.ErrAuthorization)
	}
	_ = dial(t, s, nats.UserInfo("g1", "s1"))
}

func TestBridgeAuthConnInfo(t *testing.T) {
	a := groupAuth()
	s := startServer(t, func(c *Config) { c.Authorizer = a })
	nc := dial(t, s, nats.UserInfo("g1", "s1"), nats.Name("producer-1"))
	calls := a.calls()
	require.Len(t, calls, 1)
	require.Equal(t, "producer-1", calls[0].ClientName)
	require.Equal(t, nc.ConnectedAddr(), s.Addr().String())
	require.True(t, strings.HasPrefix(calls[0].RemoteAddr, "127.0.0.1:"), calls[0].RemoteAddr)
}

func TestBridgeAuthPublishPermissions(t *testing.T) {
	s := startServer(t, func(c *Config) { c.Authorizer = groupAuth() })
	watcher, err := s.Connect("watcher")
	require.NoError(t, err)
	seen, err := watcher.SubscribeSync(">")
	require.NoError(t, err)
	require.NoError(t, watcher.Flush())

	onErr, errs := asyncErrors()
	nc := dial(t, s, nats.UserInfo("g1", "s1"), onErr)
	require.NoError(t, nc.Publish("denied.x", []byte("no")))
	require.NoError(t, nc.Publish("work.a", []byte("yes")))
	require.NoError(t, nc.Flush())

	err = nextErr(t, errs)
	require.ErrorIs(t, err, nats.ErrPermissionViolation)
	require.Contains(t, err.Error(), "denied.x")
	m, err := seen.NextMsg(waitTimeout)
	require.NoError(t, err)
	require.Equal(t, "work.a", m.Subject, "only the allowed publish arrives")

	_, err = nc.SubscribeSync("work.a")
	require.NoError(t, err)
	require.NoError(t, nc.Flush())
	err = nextErr(t, errs)
	require.ErrorIs(t, err, nats.ErrPermissionViolation)
	require.Contains(t, err.Error(), "Subscription to \"work.a\"")
}

func TestBridgeAuthRequestReply(t *testing.T) {
	s := startServer(t, func(c *Config) { c.Authorizer = groupAuth() })
	svc := dial(t, s, nats.UserInfo("svc", "s2"))
	_, err := svc.Subscribe("svc.echo", func(m *nats.Msg) { _ = m.Respond(m.Data) })
	require.NoError(t, err)
	require.NoError(t, svc.Flush())

	g1 := dial(t, s, nats.UserInfo("g1", "s1"))
	reply, err := g1.Request("svc.echo", []byte("ping"), waitTimeout)
	require.NoError(t, err)
	require.Equal(t, "ping", string(reply.Data))

	// Without AllowResponses the reply is a permissions violation.
	onErr, errs := asyncErrors()
	mute := dial(t, s, nats.UserInfo("mute", "s3"), onErr)
	_, err = mute.Subscribe("svc.mute", func(m *nats.Msg) { _ = m.Respond(m.Data) })
	require.NoError(t, err)
	require.NoError(t, mute.Flush())
	require.NoError(t, g1.PublishRequest("svc.mute", "_INBOX.mute", []byte("ping")))
	require.ErrorIs(t, nextErr(t, errs), nats.ErrPermissionViolation)
}

func TestBridgeAuthNilPermissionsAllowAll(t *testing.T) {
	s := startServer(t, func(c *Config) { c.Authorizer = groupAuth() })
	onErr, errs := asyncErrors()
	admin := dial(t, s, nats.UserInfo("admin", "s4"), onErr)
	sub, err := admin.SubscribeSync("$KQ.TAP.>")
	require.NoError(t, err)
	require.NoError(t, admin.Publish("$KQ.TAP.t.m", nil))
	_, err = sub.NextMsg(waitTimeout)
	require.NoError(t, err)
	require.Empty(t, errs)
}

func TestBridgeAuthOpenMode(t *testing.T) {
	s := startServer(t, nil)
	for _, opt := range []nats.Option{nats.UserInfo("any", "thing"), nats.Name("anonymous")} {
		nc := dial(t, s, opt)
		_, err := nc.SubscribeSync("$KQ.DLV.any.x")
		require.NoError(t, err)
		require.NoError(t, nc.Publish("kq.t.m", nil))
		require.NoError(t, nc.Flush())
		require.NoError(t, nc.LastError())
	}
}

func TestBridgeAuthReservedUsers(t *testing.T) {
	for _, mode := range []string{"open", "authorizer"} {
		t.Run(mode, func(t *testing.T) {
			a := groupAuth()
			s := startServer(t, func(c *Config) {
				if mode == "authorizer" {
					c.Authorizer = a
				}
			})
			// The system user never over TCP, even with the right password;
			// the internal user over loopback with its password only.
			_, err := nats.Connect(s.ClientURL(), nats.UserInfo(s.auth.system.user, s.auth.system.pass), nats.MaxReconnects(0))
			require.ErrorIs(t, err, nats.ErrAuthorization)
			_, err = nats.Connect(s.ClientURL(), nats.UserInfo(s.auth.internal.user, "guess"), nats.MaxReconnects(0))
			require.ErrorIs(t, err, nats.ErrAuthorization)
			nc, err := s.ConnectLoopback("test")
			require.NoError(t, err)
			require.NoError(t, nc.Publish("any.subject", nil), "full permissions")
			require.NoError(t, nc.Flush())
			require.Empty(t, a.calls(), "reserved names never reach the Authorizer")
		})
	}
}

// A wrong password on the in-process pipe is refused too. (Spoken by hand:
// nats.go would block writing its PING while the server writes -ERR, until
// the server's 10 s write deadline, since a pipe has no buffer.)
func TestBridgeAuthInProcessWrongPassword(t *testing.T) {
	s := startServer(t, nil)
	srv, err := s.running()
	require.NoError(t, err)
	for _, user := range []string{internalUser, systemUser} {
		conn, err := srv.InProcessConn()
		require.NoError(t, err)
		require.NoError(t, conn.SetDeadline(time.Now().Add(waitTimeout)))
		r := bufio.NewReader(conn)
		info, err := r.ReadString('\n')
		require.NoError(t, err)
		require.True(t, strings.HasPrefix(info, "INFO "))
		_, err = fmt.Fprintf(conn, "CONNECT {\"verbose\":false,\"user\":%q,\"pass\":\"guess\"}\r\n", user)
		require.NoError(t, err)
		line, err := r.ReadString('\n')
		require.NoError(t, err)
		require.Contains(t, line, "Authorization Violation", user)
		require.NoError(t, conn.Close())
	}
}

func TestBridgeAuthClientsLandInClientAccount(t *testing.T) {
	s := startServer(t, nil)
	nc := dial(t, s, nats.UserInfo("g1", "x"))
	id, err := s.ConnID(nc)
	require.NoError(t, err)
	srv, err := s.running()
	require.NoError(t, err)
	cz, err := srv.Connz(&server.ConnzOptions{CID: id, Username: true})
	require.NoError(t, err)
	require.Len(t, cz.Conns, 1)
	require.Equal(t, "g1", cz.Conns[0].AuthorizedUser)
	require.Empty(t, cz.Conns[0].Account, "Connz leaves the global account ($G) out")
	require.False(t, srv.JetStreamEnabled())
}

func TestBridgePermissionsToServer(t *testing.T) {
	require.Nil(t, (*Permissions)(nil).server(), "nil allows everything")

	empty := (&Permissions{}).server()
	require.NotNil(t, empty.Publish.Allow, "an empty list allows nothing, not everything")
	require.Empty(t, empty.Publish.Allow)
	require.NotNil(t, empty.Subscribe.Allow)
	require.Nil(t, empty.Response)

	p := &Permissions{Publish: []string{"a.>"}, Subscribe: []string{"_INBOX.>"}, AllowResponses: true}
	sp := p.server()
	require.Equal(t, []string{"a.>"}, sp.Publish.Allow)
	require.Equal(t, []string{"_INBOX.>"}, sp.Subscribe.Allow)
	require.Equal(t, &server.ResponsePermission{MaxMsgs: 1, Expires: 2 * time.Minute}, sp.Response)
	sp.Publish.Allow[0] = "changed"
	require.Equal(t, "a.>", p.Publish[0], "the conversion copies")
}
