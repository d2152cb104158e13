// Package bridge embeds nats-server: it is kitenats' NATS wire layer and the
// only package that imports nats-server/v2/server. It imports no package of
// ours.
//
// # What it owns
//
//   - The nats-server lifecycle: New validates a Config and starts nothing;
//     Start starts the server (signals off, logs routed into slog, JetStream
//     off) and returns once it accepts connections; Close shuts it down and
//     waits for it.
//   - Authentication: every client connection passes through one hook that
//     calls the configured Authorizer with the client's NATS user/pass and
//     installs the Permissions it returns (nil Authorizer: open mode, all
//     allowed). External clients always land in the client account ($G).
//   - TLS on the client listener (Config.TLS): nats-server's own, for every
//     TCP client; a verified client certificate reaches the Authorizer in
//     ConnInfo.Certificate, and Config.TLSVerifyClients refuses clients
//     without one. ConnectLoopback does TLS too; in-process connections stay
//     plain.
//   - In-process connections for the broker's own clients (Connect): no TCP,
//     full permissions, never seen by the Authorizer.
//   - The broker's outbound connection (ConnectPublisher): a publish-only
//     in-process client that writes the client protocol itself, so that
//     deliveries go out with pre-encoded header blocks (publisher.go). Its
//     owner closes it.
//   - Connection events (Events): connect and disconnect of external
//     clients, read from the system account's $SYS.ACCOUNT.<acc>.CONNECT and
//     DISCONNECT advisories through a private in-process connection.
//   - Subscription lookup (Holders): which client connections hold a given
//     plain subscription.
//
// # What it does not own
//
// It knows nothing about topics, groups, subjects' meaning or KiteQ rules:
// the permission template, the $KQ subjects and the consumer registry belong
// to the NATS adapter, semantics and the daemon. It does not drain the connections Connect returns:
// their owners drain them before Close.
//
// # Accounts and reserved users
//
// Clients live in nats-server's global account ($G). The default system
// account ($SYS) carries the server's advisories; the only connection that
// can join it is the bridge's events connection, which authenticates with a
// random password generated in New and is accepted only over an in-process
// pipe. Connect's connections use a second reserved user the same way. An
// external client presenting a reserved user name ("_kitenats_internal",
// "_kitenats_system") is refused without calling the Authorizer.
//
// # Concurrency
//
// All Server and Publisher methods are safe for concurrent use. A
// Publisher owns two goroutines (its writer and its reader), which Close
// stops and waits for. Otherwise the bridge starts no goroutine of its own: nats-server and nats.go own theirs, and Close stops
// and waits for them (nats-server's WaitForShutdown; closing every in-process
// connection). Events runs on the caller's goroutine and calls fn there, one
// event at a time; only one Events call may run at a time. Events are
// buffered from Start on, so a consumer that starts Events after Start loses
// nothing, but should keep Events running for the server's lifetime: an
// unread backlog is bounded and overflowing it fails Events with
// ErrEventsLost. The Authorizer is called concurrently from nats-server's
// connection goroutines.
//
// Lock order: Server.eventsMu (held by the running Events call) before
// Server.mu. The log adapter's mutex is a leaf.
//
// # Caveats
//
//   - Connection ids are per server: in a cluster, Holders and Events only
//     report this server's clients.
//   - Every server of a cluster needs its own ServerName.
//   - Routes are authenticated only with RouteUser/RoutePassword or
//     RouteTLS; without them bind the cluster listener to loopback or a
//     private interface.
//   - A running server takes no new route (cluster.go says why): routes
//     are the ones given at Start, plus the ones gossip adds.
//   - A connection refused by the Authorizer still shows in nats-server's
//     own logs (as an authorization error), at Error level.
package bridge
