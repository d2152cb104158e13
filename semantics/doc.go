// Package semantics is the broker's protocol-free core: KiteQ's delivery
// semantics applied to what its adapters hand it. The NATS adapter
// (natsproto) and the KiteQ adapter (compat) drive it the same way:
// Publish a validated Publication, Join a consumer with an Endpoint, Ack a
// delivery, report a closed connection; the results (PubAck, Delivery,
// errors as *kqerr.Error) go back through the adapter they came from.
//
// It owns bindings and their matching, dispatch (one random eligible
// consumer per matching group), ack tracking, KiteQ's redelivery schedule,
// the deliver limit, expiry and dead letters, the warmup ramp, the
// per-(topic, group) watermark, the per-consumer in-flight limit, the
// broker-wide accept limit, the counters of Stat, dead-letter replay and
// the release of committed transactions. It knows no subject, header or
// encoding. It imports only store, registry and kqerr; the group-commit
// writer, the binding keeper, the transaction coordinator and the adapter
// that feeds it (Intake, Tapper) are small interfaces it declares and main
// satisfies.
//
// # Basics
//
// A publish is validated by its adapter, its groups are planned (a
// consumer is reserved for each group that can take it now), and it is
// saved through the group-commit Writer (a store.Batcher that main builds,
// runs and shares with the transaction coordinator); the publish ack and
// the deliveries go out once the batch is durable. A group that cannot take
// the message now gets a stored state due at once, and the recover loop
// (Tick) feeds it later at the pace of the group's free capacity. Every
// attempt is persisted with its count and a lease, so after a crash a
// delivery is retried once its lease ends and deliver limits survive
// restarts.
//
// # Time
//
// Every delivery timing decision (leases, ack waits, redelivery, expiry,
// warmup, the limiters) reads Config.Now, and the timed work happens in
// Tick, so tests drive them with a fake clock and explicit ticks. Only the
// shutdown drain waits on the wall clock. The latencies told to
// Config.Observer (for metrics) are read from Config.Now too.
//
// # Concurrency
//
// Broker.mu guards groups, consumers, deliveries in flight and the writes
// still settling. It is never held across store I/O or Endpoint.Deliver;
// an Ack's done may be called while it is held, so whatever done does (the
// NATS adapter publishes the answer) must never call back into the Broker
// synchronously. The id generator and the per-topic unmatched counts have
// their own leaf locks. Store callbacks run on the Writer's callback
// goroutine. Run owns every goroutine the broker starts and returns after
// they ended; it starts the Intake first (whose handlers run on the
// adapter's goroutines), stops its publishes before the drain and stops it
// last. The Writer is not the broker's: its owner runs it from before Run
// until after Run returned. ConnClosed only queues the connection: Run's
// closer removes its consumers after Intake.Sync, so that the acks the
// connection sent before closing are handled first.
package semantics
