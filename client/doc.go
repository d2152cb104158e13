// Package client is a small Go helper over nats.go for kitenats, the broker
// with KiteQ semantics over NATS: a [Producer] with store acknowledgements, a
// [TxProducer] for two-phase commit with a check-back callback, and a
// [Consumer] that runs a handler for every delivery of a group. It is the
// kiteq-client-go experience over a plain *nats.Conn, following the contract
// of docs/NATS-PROTOCOL.md; it imports nothing of kitenats, only nats.go.
//
// # Basics
//
// A message is addressed by a topic and a messageType; [Subject] writes the
// NATS subject kq.<topic>.<messageType> with the canonical %XX escaping.
// [Producer.Publish] returns once the broker has made the message durable
// (an [Ack]) or refused it (an [*Error] with the broker's code, usable with
// errors.As). Duplicates are recognised per topic by message id: publish
// again with the same [MessageID] or [DedupID] and the Ack says Duplicate.
//
// A [Consumer] subscribes to a deliver subject of its own, binds the group
// to its [Binding]s and calls the handler for every delivery: a nil error
// acknowledges it, [Retry] asks for a redelivery not before a delay,
// [Terminate] makes it a dead letter for the group, and any other error
// asks for a redelivery on KiteQ's schedule. Deliveries are at least once
// and unordered. After every reconnect the consumer binds again (BIND is
// idempotent), so a consumer survives a broker restart.
//
// A [TxProducer] publishes transactional messages: [TxProducer.PublishTx]
// prepares the message, runs the local transaction and commits or rolls
// back; [TxProducer.HandleChecks] answers the broker's check-backs for
// messages whose producer died before deciding.
//
// Every type is safe for concurrent use. The package starts goroutines only
// in [Consumer] (handler workers and the re-bind loop), and
// [Consumer.Close] stops and waits for all of them.
//
// # Caveats
//
// One NATS connection belongs to one group, as a KiteQ process joins one
// group: connect with [Connect] (nats.UserInfo(group, secret) and the
// group's [InboxPrefix]) and give the same group to the constructors. An
// application that publishes as p-trade and consumes as s-trade opens two
// connections. With group secrets configured the broker's permissions
// refuse anything else, replies on nats.go's default _INBOX prefix
// included.
//
// Requests without a context deadline are bounded by [DefaultTimeout].
// Properties are NATS headers: names starting with Kq- or Nats- are
// reserved. A consumer's handler runs on a worker goroutine; with
// [Concurrency] above 1, handlers run in parallel and must be safe for that.
// A handler that runs longer than the ack wait should call
// [Delivery.InProgress], or the broker redelivers the message elsewhere.
// [Consumer.Close] waits for running handlers.
//
// A panic in a transaction's doTx leaves the message prepared: nothing is
// resolved, and the broker's check-back decides, exactly as if the process
// had died. A panic in a consumer's handler is not recovered.
package client
