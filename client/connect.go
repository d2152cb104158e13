package client

import "github.com/nats-io/nats.go"

// InboxPrefix returns the inbox prefix of a NATS user, a group or the admin
// user: "_INBOX_" followed by the user's name written with [EncodeToken],
// one subject token ("_INBOX_s-trade"). With group secrets configured the
// broker lets a group receive replies (publish acks, $KQ.API answers) only
// on subjects under its own prefix, so that no group reads another's
// replies (NATS-PROTOCOL.md §7): connect with
// nats.CustomInboxPrefix(InboxPrefix(group)), or with [Connect]. In open
// mode any prefix works, this one included.
func InboxPrefix(user string) string { return "_INBOX_" + EncodeToken(user) }

// Connect connects to the broker at url as group, with its secret (any, or
// empty, in open mode) and its inbox prefix ([InboxPrefix]): the options
// a connection needs in secrets mode. opts come after them, so they may add
// or override anything (a name, reconnect settings, TLS). A broker with
// TLS on its NATS listener takes a tls:// url and the CA that signed its
// certificate, nats.RootCAs("ca.pem"); with a client certificate,
// nats.ClientCert("s-trade.pem", "s-trade-key.pem"), whose CN (or a SAN) is
// group, the certificate stands for the secret, which may then be empty
// (NATS-PROTOCOL.md §7).
func Connect(url, group, secret string, opts ...nats.Option) (*nats.Conn, error) {
	base := []nats.Option{nats.UserInfo(group, secret), nats.CustomInboxPrefix(InboxPrefix(group))}
	return nats.Connect(url, append(base, opts...)...)
}
