package natsproto

// Permissions are the subjects a NATS user may publish and subscribe to
// (NATS-PROTOCOL.md §7); the root package turns them into the embedded
// server's permissions (bridge.Permissions).
type Permissions struct {
	Publish   []string
	Subscribe []string
	// AllowResponses lets the user answer requests sent to it (a
	// producer's answer to $KQ.TXCHECK, replies to its inbox).
	AllowResponses bool
}

// AdminUser is the NATS user of the admin calls ($KQ.ADMIN) in secrets
// mode: no group of that name can log in over NATS.
const AdminUser = "admin"

// The subject spaces of the API (NATS-PROTOCOL.md §8). $KQ.API.<verb>.<G>
// is always a call as group G (a group's own verbs); the admin calls, which
// see every group, are under $KQ.ADMIN, which no group's permissions reach.
const (
	APIPrefix   = "$KQ.API."
	AdminPrefix = "$KQ.ADMIN."
)

// InboxPrefix is the inbox prefix of a NATS user (a group, or AdminUser) in
// secrets mode: its permissions let it receive replies on
// InboxPrefix(user)+".>" only, so that no group reads another's replies.
// It is one subject token, "_INBOX_" followed by the escaped user name (a
// group's token is never empty and always canonical, so two users never
// share it, and it never is nats.go's default "_INBOX"); give it to
// nats.go's nats.CustomInboxPrefix as it is.
func InboxPrefix(user string) string { return "_INBOX_" + EncodeToken(user) }

// GroupPermissions is the permission template of a group's user: publish
// anywhere under kq., call its own verbs of the API and ack as that group
// only; receive replies on its own inbox prefix, its deliveries and its
// transaction checks. Every subject names the group as one escaped token
// in a fixed place, so no group name, however chosen, reaches another
// group's subjects or an admin call.
func GroupPermissions(group string) Permissions {
	g := EncodeToken(group)
	return Permissions{
		Publish: []string{"kq.>",
			APIPrefix + "BIND." + g, APIPrefix + "CONSUMER.DELETE." + g, APIPrefix + "BINDINGS.DELETE." + g, APIPrefix + "TX." + g,
			"$KQ.ACK." + g + ".>"},
		Subscribe:      []string{InboxPrefix(group) + ".>", "$KQ.DLV." + g + ".>", "$KQ.TXCHECK." + g},
		AllowResponses: true,
	}
}

// AdminPermissions is the admin user's: the admin calls, every group's API
// calls, publishing, taps, and its own inbox.
func AdminPermissions() Permissions {
	return Permissions{
		Publish:        []string{AdminPrefix + ">", APIPrefix + ">", "kq.>"},
		Subscribe:      []string{InboxPrefix(AdminUser) + ".>", "$KQ.TAP.>", "kq.>"},
		AllowResponses: true,
	}
}
