// Package natsproto is the NATS adapter of the broker: it owns
// docs/NATS-PROTOCOL.md, the contract NATS clients use, and turns NATS
// messages into calls on the protocol-free core (package semantics) and
// the results back into NATS messages, as compat does for KiteQ clients.
//
// It owns the subject mapping (kq.<topic>.<messageType>, canonical %XX
// token escaping), the publish headers and their validation (the
// Nats-Msg-Id dedup id included), the ack grammar (+ACK, -NAK [delay],
// +WPI, +TERM [reason]), a group's own $KQ.API calls (BIND,
// CONSUMER.DELETE, BINDINGS.DELETE, TX) and the admin's $KQ.ADMIN calls
// (STAT, BINDINGS.LIST, DLQ.LIST and REPLAY, TX.LIST, TX) with their typed
// JSON replies, the JSON of error replies, deliveries as NATS
// messages with headers (the ack subject as reply), taps on $KQ.TAP, the
// $KQ.TXCHECK request of a transaction check-back (TxCheck) and the
// per-group permission template with its inbox prefixes. It holds no broker rule: what to store,
// whom to deliver to, when to redeliver are semantics'.
//
// It imports semantics, store, registry and kqerr, never nats.go or
// nats-server: the broker's NATS connections are the Transport and the
// Locator (and, for TxCheck, the Requester) that the root package
// satisfies with bridge and nats.go.
//
// # Flow
//
// A publish on kq.<topic>.<messageType> is parsed (subject, size, headers)
// into a semantics.Publication and handed to Broker.Publish; its PubAck or
// error becomes the reply. A BIND joins the connection holding the deliver
// subscription to the group with an endpoint that publishes each
// semantics.Delivery on the deliver subject, with
// $KQ.ACK.<group>.<broker>.<consumer>.<delivery> as reply; the consumer's
// reply there is parsed (ParseAck) into Broker.Ack, whose outcome is the
// answer to an AckSync.
//
// # Concurrency
//
// Server is the broker's semantics.Intake: the broker's Run calls Start,
// which subscribes (each subscription's handler runs on its own goroutine,
// the transport's), StopPublishes when shutdown begins and Stop last. The
// handlers call the broker's exported methods and nothing else; the Server
// has no lock of its own on the message path. Deliveries and ack answers
// may be published with the broker's lock held, so a Transport's Publish
// must never call back into the broker synchronously.
package natsproto
