package natsproto

import (
	"os"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestPermissionsTemplate pins the subjects of NATS-PROTOCOL.md §7: a
// group's user acks and calls its own API verbs as its own (escaped) group
// only, and gets replies on its own inbox prefix.
func TestPermissionsTemplate(t *testing.T) {
	require.Equal(t, Permissions{
		Publish: []string{"kq.>", "$KQ.API.BIND.s-trade", "$KQ.API.CONSUMER.DELETE.s-trade", "$KQ.API.BINDINGS.DELETE.s-trade",
			"$KQ.API.TX.s-trade", "$KQ.ACK.s-trade.>"},
		Subscribe:      []string{"_INBOX_s-trade.>", "$KQ.DLV.s-trade.>", "$KQ.TXCHECK.s-trade"},
		AllowResponses: true,
	}, GroupPermissions("s-trade"))
	require.Equal(t, Permissions{
		Publish: []string{"kq.>", "$KQ.API.BIND.s%2Etrade%20x", "$KQ.API.CONSUMER.DELETE.s%2Etrade%20x",
			"$KQ.API.BINDINGS.DELETE.s%2Etrade%20x", "$KQ.API.TX.s%2Etrade%20x", "$KQ.ACK.s%2Etrade%20x.>"},
		Subscribe:      []string{"_INBOX_s%2Etrade%20x.>", "$KQ.DLV.s%2Etrade%20x.>", "$KQ.TXCHECK.s%2Etrade%20x"},
		AllowResponses: true,
	}, GroupPermissions("s.trade x"), "the group is one escaped token: a dot in its name cannot widen the grant")
	require.Equal(t, Permissions{
		Publish:        []string{"$KQ.ADMIN.>", "$KQ.API.>", "kq.>"},
		Subscribe:      []string{"_INBOX_admin.>", "$KQ.TAP.>", "kq.>"},
		AllowResponses: true,
	}, AdminPermissions())
	require.Equal(t, "_INBOX_p-trade", InboxPrefix("p-trade"))
	require.Equal(t, "_INBOX_p%2Etrade%3E", InboxPrefix("p.trade>"), "one token, no wildcard: nats.CustomInboxPrefix takes it")
}

// matches reports whether NATS would route subject to a subscription (or
// allow a publish) on pattern: tokens compared one by one, * matches one
// token, > the rest (at least one).
func matches(pattern, subject string) bool {
	p, s := strings.Split(pattern, "."), strings.Split(subject, ".")
	for i, pt := range p {
		switch {
		case pt == ">":
			return len(s) > i
		case i >= len(s):
			return false
		case pt != "*" && pt != s[i]:
			return false
		}
	}
	return len(p) == len(s)
}

// apiVerbs are the API's verbs: a group's own (subject $KQ.API.<verb>.<G>)
// and the admin's (subject $KQ.ADMIN.<verb>, and the legacy $KQ.API.<verb>).
var (
	groupVerbs = []string{"BIND", "CONSUMER.DELETE", "BINDINGS.DELETE", "TX"}
	adminVerbs = []string{"STAT", "BINDINGS.LIST", "DLQ.LIST", "DLQ.REPLAY", "TX.LIST", "TX"}
)

// verbGroupNames are group names chosen to collide with the API: every
// token and every whole verb, and the admin user's name.
func verbGroupNames() []string {
	names := map[string]bool{"admin": true, "ADMIN": true, "API": true, "KQ": true, "$KQ": true, "*": true, ">": true}
	for _, v := range append(append([]string(nil), groupVerbs...), adminVerbs...) {
		names[v] = true
		for _, tok := range strings.Split(v, ".") {
			names[tok] = true
		}
	}
	out := make([]string, 0, len(names))
	for n := range names {
		out = append(out, n)
	}
	return out
}

// TestPermissionsNoGroupReachesAnother: for every API verb and every group
// named after a verb (or a token of one), the group's permissions let it
// call that verb as itself only, never an admin call, never another group's
// verb, and receive only its own inbox, deliveries and checks (issue #16).
// The daemon's e2e tests check the same against a real server.
func TestPermissionsNoGroupReachesAnother(t *testing.T) {
	names := verbGroupNames()
	for _, g := range names {
		p := GroupPermissions(g)
		allowedPub := func(subject string) bool {
			for _, pat := range p.Publish {
				if matches(pat, subject) {
					return true
				}
			}
			return false
		}
		allowedSub := func(subject string) bool {
			for _, pat := range p.Subscribe {
				if matches(pat, subject) {
					return true
				}
			}
			return false
		}
		for _, v := range adminVerbs {
			require.False(t, allowedPub(AdminPrefix+v), "group %q may call admin %s", g, v)
			if v != "TX" && !(v == "TX.LIST" && g == "LIST") {
				require.False(t, allowedPub(APIPrefix+v), "group %q may call legacy admin $KQ.API.%s", g, v)
			}
		}
		for _, v := range groupVerbs {
			require.True(t, allowedPub(APIPrefix+v+"."+EncodeToken(g)), "group %q may not call its own %s", g, v)
			for _, other := range names {
				if other != g {
					require.False(t, allowedPub(APIPrefix+v+"."+EncodeToken(other)), "group %q may call %s as %q", g, v, other)
					require.False(t, allowedSub(InboxPrefix(other)+".x.y"), "group %q reads %q's inbox", g, other)
					require.False(t, allowedSub("$KQ.DLV."+EncodeToken(other)+".x"), "group %q reads %q's deliveries", g, other)
					require.False(t, allowedPub("$KQ.ACK."+EncodeToken(other)+".b.c.d"), "group %q acks as %q", g, other)
				}
			}
		}
		require.False(t, allowedSub("_INBOX.x"), "group %q reads the default inbox", g)
		if g != AdminUser { // the user admin is never a group: it logs in as the admin
			require.False(t, allowedSub(InboxPrefix(AdminUser)+".x"), "group %q reads the admin's inbox", g)
		}
		require.True(t, allowedSub(InboxPrefix(g)+".x.y"))
	}
}

// TestPermissionsTableIsTheTemplate reads the table of NATS-PROTOCOL.md §7
// and checks that it lists, in order, exactly the subjects of
// GroupPermissions and AdminPermissions, each with a reason, so that the
// documentation and the template cannot drift apart.
func TestPermissionsTableIsTheTemplate(t *testing.T) {
	b, err := os.ReadFile("../docs/NATS-PROTOCOL.md")
	require.NoError(t, err)
	doc := string(b)
	i := strings.Index(doc, "\n## 7. ")
	require.NotEqual(t, -1, i, "NATS-PROTOCOL.md has no §7")
	sec := doc[i+1:]
	if j := strings.Index(sec, "\n## "); j >= 0 {
		sec = sec[:j]
	}
	const group = "s.trade x" // <G> in the table: its escaped token
	got := map[string]*Permissions{"group": {}, "admin": {}}
	header := false
	for _, line := range strings.Split(sec, "\n") {
		if !strings.HasPrefix(line, "|") {
			if header {
				break // the end of the table
			}
			continue
		}
		cells := strings.Split(strings.Trim(line, "|"), "|")
		for k := range cells {
			cells[k] = strings.TrimSpace(cells[k])
		}
		if !header {
			require.Equal(t, []string{"user", "may", "subject", "why"}, cells, "§7 table header")
			header = true
			continue
		}
		if strings.HasPrefix(cells[0], "---") {
			continue
		}
		require.Len(t, cells, 4, "§7 row %q", line)
		p := got[cells[0]]
		require.NotNil(t, p, "§7 row %q: user is group or admin", line)
		require.NotEmpty(t, cells[3], "§7 row %q says why", line)
		subject := cells[2]
		if subject == "replies" {
			require.Equal(t, "publish", cells[1], "§7 row %q", line)
			p.AllowResponses = true
			continue
		}
		require.True(t, strings.HasPrefix(subject, "`") && strings.HasSuffix(subject, "`"), "§7 row %q: subject in backticks", line)
		subject = strings.ReplaceAll(strings.Trim(subject, "`"), "<G>", EncodeToken(group))
		switch cells[1] {
		case "publish":
			p.Publish = append(p.Publish, subject)
		case "subscribe":
			p.Subscribe = append(p.Subscribe, subject)
		default:
			t.Fatalf("§7 row %q: may is publish or subscribe", line)
		}
	}
	require.True(t, header, "§7 has no table")
	require.Equal(t, GroupPermissions(group), *got["group"], "NATS-PROTOCOL.md §7 and GroupPermissions differ")
	require.Equal(t, AdminPermissions(), *got["admin"], "NATS-PROTOCOL.md §7 and AdminPermissions differ")
}
