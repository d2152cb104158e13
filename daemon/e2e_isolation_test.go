package daemon

import (
	"encoding/json"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/proto"

	"github.com/kitenats/kitenats/compat/compattest"
	"github.com/kitenats/kitenats/compat/wire"
	"github.com/kitenats/kitenats/config"
	"github.com/kitenats/kitenats/natsproto"
)

// The tests of this file pin the isolation of groups (issue #16,
// NATS-PROTOCOL.md §5, §7, §8): against a real embedded server in secrets
// mode, a group reaches neither another group's subjects nor an admin
// call, reads no other group's replies, and resolves only its own prepared
// messages, over NATS and over KiteQ.

// violations collects the permissions violations the server reports to a
// connection.
type violations struct {
	mu   sync.Mutex
	errs []string
}

func (v *violations) handler(_ *nats.Conn, _ *nats.Subscription, err error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.errs = append(v.errs, err.Error())
}

// requireAll waits until a violation naming each of subjects was reported.
func (v *violations) requireAll(t *testing.T, kind string, subjects []string) {
	t.Helper()
	missing := func() []string {
		v.mu.Lock()
		defer v.mu.Unlock()
		var m []string
		for _, s := range subjects {
			found := false
			for _, e := range v.errs {
				if strings.Contains(strings.ToLower(e), "permissions violation for "+kind) && strings.Contains(e, `"`+s+`"`) {
					found = true
					break
				}
			}
			if !found {
				m = append(m, s)
			}
		}
		return m
	}
	require.Eventually(t, func() bool { return len(missing()) == 0 }, 10*time.Second, 20*time.Millisecond,
		"no %s violation for some subjects", kind)
	if m := missing(); len(m) > 0 {
		t.Fatalf("no %s violation for %v", kind, m)
	}
}

// connectAs connects as user with its secret and its inbox prefix
// (NATS-PROTOCOL.md §7), reporting violations to v (may be nil).
func connectAs(t *testing.T, url, user, secret string, v *violations) *nats.Conn {
	t.Helper()
	opts := []nats.Option{nats.UserInfo(user, secret), nats.CustomInboxPrefix(natsproto.InboxPrefix(user))}
	if v != nil {
		opts = append(opts, nats.ErrorHandler(v.handler))
	}
	return connect(t, url, opts...)
}

// The API's verbs (NATS-PROTOCOL.md §8): a group's own, called as
// $KQ.API.<verb>.<group token>, and the admin's, under $KQ.ADMIN and,
// for some, the legacy $KQ.API.<verb>.
var (
	e2eGroupVerbs   = []string{"BIND", "CONSUMER.DELETE", "BINDINGS.DELETE", "TX"}
	e2eAdminVerbs   = []string{"STAT", "BINDINGS.LIST", "DLQ.LIST", "DLQ.REPLAY", "TX.LIST", "TX"}
	e2eLegacyAdmins = []string{"STAT", "BINDINGS.LIST", "DLQ.LIST", "DLQ.REPLAY", "TX.LIST"}
)

// verbGroups are groups named after every API verb and every token of one.
func verbGroups() []string {
	seen := map[string]bool{}
	var out []string
	for _, v := range append(append([]string{"ADMIN", "API"}, e2eGroupVerbs...), e2eAdminVerbs...) {
		for _, n := range append([]string{v}, strings.Split(v, ".")...) {
			if !seen[n] {
				seen[n] = true
				out = append(out, n)
			}
		}
	}
	return out
}

// TestE2ESecretsModeNoGroupReachesAnAPIVerb: for every API verb and every
// group named after a verb (or a token of one), the group calls its own
// verbs as itself, and the server refuses (permissions violation) every
// admin call, $KQ.ADMIN and legacy $KQ.API alike, and every verb of every
// other group; none of them gets an answer.
func TestE2ESecretsModeNoGroupReachesAnAPIVerb(t *testing.T) {
	groups := verbGroups()
	secrets := map[string]string{}
	for _, g := range groups {
		secrets[g] = "pw-" + g
	}
	url := startBroker(t, func(c *config.Config) { c.Secrets, c.AdminSecret = secrets, "root" })

	var wg sync.WaitGroup
	for _, g := range groups {
		v := &violations{}
		nc := connectAs(t, url, g, secrets[g], v)
		tok := natsproto.EncodeToken(g)
		// Its own verbs: each answered (a refusal of the empty body is an
		// answer too).
		for _, verb := range e2eGroupVerbs {
			msg, err := nc.Request("$KQ.API."+verb+"."+tok, []byte(`{}`), 5*time.Second)
			require.NoError(t, err, "group %q calls its own %s", g, verb)
			require.True(t, json.Valid(msg.Data), string(msg.Data))
		}
		var forbidden []string
		for _, verb := range e2eAdminVerbs {
			forbidden = append(forbidden, "$KQ.ADMIN."+verb)
		}
		for _, verb := range e2eLegacyAdmins {
			if s := "$KQ.API." + verb; s != "$KQ.API.TX."+tok { // TX.LIST is the group LIST's own TX
				forbidden = append(forbidden, s)
			}
		}
		for _, other := range groups {
			if other != g {
				for _, verb := range e2eGroupVerbs {
					forbidden = append(forbidden, "$KQ.API."+verb+"."+natsproto.EncodeToken(other))
				}
			}
		}
		answers := make(chan *nats.Msg, len(forbidden))
		inbox := natsproto.InboxPrefix(g) + ".forbidden"
		_, err := nc.ChanSubscribe(inbox, answers)
		require.NoError(t, err)
		for _, s := range forbidden {
			require.NoError(t, nc.PublishRequest(s, inbox, []byte(`{"topic":"trade","groupId":"s-trade","offset":0}`)))
		}
		require.NoError(t, nc.Flush())
		wg.Add(1)
		go func() {
			defer wg.Done()
			v.requireAll(t, "publish", forbidden)
			requireNone(t, answers, 200*time.Millisecond)
		}()
	}
	wg.Wait()
}

// TestE2ESecretsModeInboxIsolation: a group cannot subscribe to nats.go's
// default inbox, nor to another group's or the admin's inbox prefix, and
// receives none of their replies (BIND answers, publish acks, STAT and
// DLQ.LIST answers), while their requests work.
func TestE2ESecretsModeInboxIsolation(t *testing.T) {
	url := startBroker(t, func(c *config.Config) {
		c.Secrets = map[string]string{"spy": "spy", "s-trade": "s3cret", "p-trade": "p4ss"}
		c.AdminSecret = "root"
	})
	v := &violations{}
	spy := connectAs(t, url, "spy", "spy", v)
	stolen := make(chan *nats.Msg, 100)
	attempts := []string{"_INBOX.>", "_INBOX_s-trade.>", "_INBOX_p-trade.>", "_INBOX_admin.>", ">", "*.>"}
	for _, s := range attempts {
		_, err := spy.ChanSubscribe(s, stolen)
		require.NoError(t, err)
	}
	require.NoError(t, spy.Flush())
	v.requireAll(t, "subscription", attempts)

	cons := connectAs(t, url, "s-trade", "s3cret", nil)
	ch := make(chan *nats.Msg, 10)
	_, err := cons.ChanSubscribe("$KQ.DLV.s-trade.a", ch)
	require.NoError(t, err)
	var r struct{ Consumer string }
	request(t, cons, "$KQ.API.BIND.s-trade", map[string]any{"deliver": "$KQ.DLV.s-trade.a",
		"bindings": []map[string]any{{"topic": "trade", "messageType": "pay", "persistent": true}}}, &r)
	require.NotEmpty(t, r.Consumer)
	prod := connectAs(t, url, "p-trade", "p4ss", nil)
	_, err = prod.Request("kq.trade.pay", []byte("x"), 5*time.Second)
	require.NoError(t, err, "the publish ack reaches the producer's inbox")
	require.NoError(t, recv(t, ch).AckSync())
	admin := connectAs(t, url, "admin", "root", nil)
	var st struct{ Consumers []any }
	request(t, admin, "$KQ.ADMIN.STAT", nil, &st)
	require.Len(t, st.Consumers, 1)
	var dl struct{ Total int }
	request(t, admin, "$KQ.ADMIN.DLQ.LIST", map[string]string{"topic": "trade", "groupId": "s-trade"}, &dl)
	requireNone(t, stolen, 300*time.Millisecond)

	// The default inbox gets no reply in secrets mode.
	plain := connect(t, url, nats.UserInfo("p-trade", "p4ss"))
	_, err = plain.Request("kq.trade.pay", []byte("x"), 300*time.Millisecond)
	require.Error(t, err)
}

// txReply is a $KQ.API.TX or $KQ.ADMIN.TX answer.
type txReply struct {
	Action string `json:"action"`
	apiErr
}

// TestE2ETxResolvesOnlyTheOwnGroup: $KQ.API.TX.<G> resolves only the
// prepared messages G published; another group's is refused with 403 /
// 14403 and stays prepared, in open mode (the subject's group is the
// caller's claim) as in secrets mode; the admin resolves any group's with
// $KQ.ADMIN.TX.
func TestE2ETxResolvesOnlyTheOwnGroup(t *testing.T) {
	for _, secrets := range []bool{false, true} {
		t.Run(map[bool]string{false: "open", true: "secrets"}[secrets], func(t *testing.T) {
			url := startBroker(t, func(c *config.Config) {
				c.Tx.FirstCheck = time.Hour
				if secrets {
					c.Secrets = map[string]string{"s-trade": "s3cret", "p-trade": "p4ss"}
					c.AdminSecret = "root"
				}
			})
			prod := connectAs(t, url, "p-trade", "p4ss", nil)
			other := connectAs(t, url, "s-trade", "s3cret", nil)
			admin := connectAs(t, url, "admin", "root", nil)
			mine, theirs := strings.Repeat("1", 32), strings.Repeat("2", 32)
			prepare(t, prod, mine, "p-trade")
			prepare(t, prod, theirs, "p-trade")
			for _, action := range []string{"commit", "rollback"} {
				var r txReply
				request(t, other, "$KQ.API.TX.s-trade", map[string]string{"topic": "trade", "id": mine, "action": action}, &r)
				require.NotNil(t, r.Error, "s-trade %ss p-trade's message", action)
				require.Equal(t, 403, r.Error.Code)
				require.Equal(t, 14403, r.Error.ErrCode)
			}
			if secrets {
				_, err := other.Request("$KQ.API.TX.p-trade", []byte(`{}`), 300*time.Millisecond)
				require.Error(t, err, "nor can it call TX as p-trade")
			} else {
				// In open mode anyone may claim to be p-trade: the
				// subject's group is the caller's claim.
				require.Zero(t, resolve(t, other, "p-trade", theirs, "commit"))
			}
			var list struct {
				Total int
				Items []struct{ ID string }
			}
			request(t, admin, "$KQ.ADMIN.TX.LIST", nil, &list)
			require.Equal(t, mine, list.Items[0].ID, "still prepared")

			require.Zero(t, resolve(t, prod, "p-trade", mine, "commit"), "the publishing group resolves its own")
			var r txReply
			request(t, other, "$KQ.API.TX.s-trade", map[string]string{"topic": "trade", "id": mine, "action": "commit"}, &r)
			require.NotNil(t, r.Error)
			require.Equal(t, 403, r.Error.Code, "decided: still not s-trade's")
			if secrets {
				var r txReply
				request(t, admin, "$KQ.ADMIN.TX", map[string]string{"topic": "trade", "id": theirs, "action": "rollback"}, &r)
				require.Nil(t, r.Error, "the admin resolves any group's")
				require.Equal(t, "rollback", r.Action)
			}
			request(t, admin, "$KQ.ADMIN.TX.LIST", nil, &list)
			require.Zero(t, list.Total)
		})
	}
}

// TestE2EKiteQTxAckOfAnotherGroupRefused: a KiteQ connection of one group
// cannot commit another group's prepared message, neither with that
// group's header nor with its own; the refusal gets no reply (a KiteQ
// client expects none) and is counted; the publishing group's TxAck still
// commits.
func TestE2EKiteQTxAckOfAnotherGroupRefused(t *testing.T) {
	for _, secrets := range []bool{false, true} {
		t.Run(map[bool]string{false: "open", true: "secrets"}[secrets], func(t *testing.T) {
			k := startKiteQ(t, func(c *config.Config) {
				c.Tx.FirstCheck = time.Hour
				if secrets {
					c.Secrets = map[string]string{"spy": "spy", "p-trade": "p4ss"}
					c.AdminSecret = "root"
				}
			})
			k.bind(t, "s-trade", "trade", "pay")
			admin := connectAs(t, k.url, "admin", "root", nil)
			prepared := func() int {
				var list struct{ Total int }
				request(t, admin, "$KQ.ADMIN.TX.LIST", nil, &list)
				return list.Total
			}
			p := compattest.Dial(t, k.kiteq)
			p.MustHandshake("p-trade", "p4ss", 0)
			spy := compattest.Dial(t, k.kiteq)
			spy.MustHandshake("spy", "spy", 0)

			h := compattest.Header(compattest.NewID(), "trade", "pay", "p-trade")
			h.Commit = proto.Bool(false)
			require.True(t, p.ExpectStoreAck(p.Publish(wire.CmdBytesMessage, h, []byte("tx"))).GetStatus())
			spy.SendWith(0, wire.CmdTxAck, &wire.TxACKPacket{Header: h, Status: proto.Int32(wire.TxCommit), Feedback: proto.String("")})
			own := proto.Clone(h).(*wire.Header)
			own.GroupId = proto.String("spy")
			spy.SendWith(0, wire.CmdTxAck, &wire.TxACKPacket{Header: own, Status: proto.Int32(wire.TxRollback), Feedback: proto.String("")})
			spy.Heartbeat(7) // the next frame is the echo: no reply to either TxAck
			require.Eventually(t, func() bool { return k.d.kiteq.TxAcksRefused() == 2 }, 5*time.Second, 10*time.Millisecond)
			require.Equal(t, 1, prepared(), "still prepared")

			p.SendWith(0, wire.CmdTxAck, &wire.TxACKPacket{Header: h, Status: proto.Int32(wire.TxCommit), Feedback: proto.String("")})
			require.Eventually(t, func() bool { return prepared() == 0 }, 5*time.Second, 10*time.Millisecond)
			require.EqualValues(t, 2, k.d.kiteq.TxAcksRefused())
		})
	}
}

// TestE2EPrepareOnlyAsItsOwnGroup: in secrets mode a prepare names its
// group (Kq-Group), and the reply to it must go to that group's inbox,
// which only that group (or the admin) receives; so a group cannot prepare
// a message as another, which would then have that group's check-backs.
// Open mode stays as it was.
func TestE2EPrepareOnlyAsItsOwnGroup(t *testing.T) {
	url := startBroker(t, func(c *config.Config) {
		c.Tx.FirstCheck = time.Hour
		c.Secrets = map[string]string{"s-trade": "s3cret", "p-trade": "p4ss"}
		c.AdminSecret = "root"
	})
	spoof := connectAs(t, url, "s-trade", "s3cret", nil)
	hdr := nats.Header{"Kq-Tx": {"prepare"}, "Kq-Msg-Id": {strings.Repeat("3", 32)}, "Kq-Group": {"p-trade"}}
	msg, err := spoof.RequestMsg(&nats.Msg{Subject: "kq.trade.pay", Header: hdr, Data: []byte("x")}, 5*time.Second)
	require.NoError(t, err)
	var r apiErr
	require.NoError(t, json.Unmarshal(msg.Data, &r), string(msg.Data))
	require.NotNil(t, r.Error, "s-trade prepares as p-trade: %s", msg.Data)
	require.Equal(t, 403, r.Error.Code)
	require.NoError(t, spoof.PublishMsg(&nats.Msg{Subject: "kq.trade.pay", Header: hdr, Data: []byte("x")}))

	prod := connectAs(t, url, "p-trade", "p4ss", nil)
	prepare(t, prod, strings.Repeat("4", 32), "p-trade")
	admin := connectAs(t, url, "admin", "root", nil)
	prepare(t, admin, strings.Repeat("5", 32), "p-trade")
	var list struct{ Total int }
	request(t, admin, "$KQ.ADMIN.TX.LIST", nil, &list)
	require.Equal(t, 2, list.Total, "only the prepares of p-trade itself and of the admin are stored")
}
