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

// GroupPermissions is the permission template of a group's user: publish
// anywhere under kq., call the API and ack as that group only; receive its
// deliveries, its transaction checks and replies.
func GroupPermissions(group string) Permissions {
	g := EncodeToken(group)
	return Permissions{
		Publish:        []string{"kq.>", "$KQ.API.*." + g, "$KQ.API.*.*." + g, "$KQ.ACK." + g + ".>"},
		Subscribe:      []string{"_INBOX.>", "$KQ.DLV." + g + ".>", "$KQ.TXCHECK." + g},
		AllowResponses: true,
	}
}

// AdminPermissions is the admin user's: every API call, publishing, taps.
func AdminPermissions() Permissions {
	return Permissions{
		Publish:        []string{"$KQ.API.>", "kq.>"},
		Subscribe:      []string{"$KQ.TAP.>", "kq.>", "_INBOX.>"},
		AllowResponses: true,
	}
}
