// Package semantics applies KiteQ's delivery semantics to messages that
// arrive over NATS (and, through Publish, Join and Ack, over any adapter).
//
// It owns the subject mapping (kq.<topic>.<messageType>, canonical %XX
// escaping), publish validation and headers, bindings and their matching,
// dispatch (one random eligible consumer per matching group), ack tracking
// with JetStream's ack grammar, KiteQ's redelivery schedule, the deliver
// limit, expiry and dead letters, the warmup ramp, the per-(topic, group)
// watermark, the per-consumer in-flight limit, the broker-wide accept limit,
// taps, and the $KQ.API calls of NATS-PROTOCOL.md. It imports only store and
// registry; the group-commit writer, the NATS connection, the connection
// lookup, the binding keeper and the transaction coordinator are small
// interfaces that main satisfies.
//
// # Basics
//
// A publish is validated, its groups are planned (a consumer is reserved for
// each group that can take it now), and it is saved through the
// group-commit Writer (a store.Batcher that main builds, runs and shares
// with the transaction coordinator); the publish ack and the deliveries go
// out once the batch is durable. A group that cannot take the message now gets a stored
// state due at once, and the recover loop (Tick) feeds it later at the pace
// of the group's free capacity. Every attempt is persisted with its count
// and a lease, so after a crash a delivery is retried once its lease ends
// and deliver limits survive restarts.
//
// # Time
//
// Every delivery timing decision (leases, ack waits, redelivery, expiry,
// warmup, the limiters) reads Config.Now, and the timed work happens in
// Tick, so tests drive them with a fake clock and explicit ticks. Only the
// shutdown drain waits on the wall clock.
//
// # Concurrency
//
// Broker.mu guards groups, consumers, deliveries in flight and the writes
// still settling. It is never held across store I/O or Endpoint.Deliver;
// replies to acks may be published while it is held, so a Transport must
// never call back into the Broker synchronously. The id generator and the
// per-topic unmatched counts have their own leaf locks. Store callbacks run
// on the Writer's callback goroutine. Run owns every goroutine the broker
// starts and returns after they ended; the Writer is not one of them: its
// owner runs it from before Run until after Run returned. ConnClosed only queues the
// connection: Run's closer removes its consumers after Transport.Sync, so
// that the acks the connection sent before closing are handled first.
package semantics
