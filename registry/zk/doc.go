// Package zk is a registry.Registry on ZooKeeper with KiteQ's exact znode
// layout, so KiteQ clients and kitenats brokers share one registry.
//
// # Basics
//
// New connects (go-zookeeper, 5 s sessions like KiteQ), waits for a
// session and creates /kiteq. The layout (kiteq-protocol.md §7.2), every
// node with the world/all ACL and parents created level by level:
//
//	/kiteq                                persistent
//	/kiteq/server/{topic}/{host:port}     ephemeral, one per served topic (PublishServer)
//	/kiteq/alive_servers/{host:port}      ephemeral (PublishServer)
//	/kiteq/all_servers/{host:port}        persistent, never removed
//	/kiteq/pub/{topic}                    persistent, created for served topics
//	/kiteq/sub/{topic}/{group}-bind       persistent, KiteQ's JSON array of the
//	                                      group's bindings on topic (PublishBindings,
//	                                      or a KiteQ client's SetBindings)
//
// PublishServer deletes an existing server node before creating it, as
// KiteQ does, so clients watching the topic see a change. PublishBindings
// replaces a group's bindings everywhere: it writes one node per topic and
// deletes the group's nodes under every other topic. Watch(topic) sends the
// full group → bindings map of the topic, at once and after every change.
// ParseURI reads KiteQ's zk://h1:2181,h2:2181 form.
//
// Beside KiteQ's tree, kitenats keeps its own nodes, which KiteQ clients
// never read (docs/CLUSTERING.md §1.2):
//
//	/kitenats/routes/{cluster}/{broker name}   ephemeral, the broker's NATS route URL
//	                                            (PublishRoute, UnpublishRoute; read
//	                                            with Routes, followed with WatchRoutes)
//
// A route node is written again after a session expiry, like the server
// nodes.
//
// # Differences from KiteQ
//
//   - Every change re-reads the whole topic: deleting one group's node
//     never makes the broker forget the other groups of the topic, and no
//     watch event can be lost to a full channel.
//   - A broker address without a routable host (":13800", "0.0.0.0:13800")
//     is refused instead of being advertised verbatim (§12 item 13).
//   - A group node whose JSON does not parse is skipped with a Warn log;
//     the other groups are still delivered.
//   - A slow Watch reader gets the latest full state (after an unread
//     lost-session Err), never a stale backlog (WatchBuffer).
//
// # Sessions
//
// The session loop follows go-zookeeper's session events. When the session
// expires, or the connection has been down for longer than the session
// timeout, every watch sends an Event whose Err wraps ErrSessionLost. When
// a new session is established the loop re-creates every ephemeral node
// PublishServer made (retrying every RetryInterval until it succeeds), and
// every watch re-arms its watches and sends the full state again. A short
// disconnection that keeps the session is invisible: go-zookeeper re-arms
// the watches itself.
//
// # Concurrency
//
// A Registry is safe for concurrent use. It owns one session-loop
// goroutine and one goroutine per Watch; Close closes the ZooKeeper
// session (ephemeral nodes vanish at once), stops them all, closes every
// Watch channel and waits for every goroutine, go-zookeeper's included. A
// Watch also ends when its ctx does. Locks: pubMu serialises the server
// nodes' (re)publication and is held across ZooKeeper requests; evMu and
// sessMu are leaf locks, never held with another lock and never across a
// request. go-zookeeper's event callback only records and signals.
//
// # Caveats
//
// ZooKeeper requests cannot be cancelled: ctx is checked between requests,
// and a request fails on its own when the connection is lost. Bindings
// written by PublishBindings stay after Close, as KiteQ's do (bind nodes
// are persistent). Because PublishBindings deletes the group's nodes under
// every topic it does not name, a NATS group must not share its name with
// a KiteQ consumer group whose bindings it does not publish.
package zk
