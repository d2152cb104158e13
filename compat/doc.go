// Package compat is the native KiteQ TCP adapter: it lets the unmodified
// kiteq-client-go (and any peer speaking kiteq-protocol.md) publish to and
// consume from the broker.
//
// # What it owns, and what not
//
// It owns KiteQ connections: the listener, one session per connection, the
// handshake (ConnMeta, with optional per-group secrets), heartbeats, the
// publish path up to the broker (message id, expiry and fly checks, header
// normalisation, Snappy decompression, the MessageStoreAck), pushing
// deliveries with per-connection opaques and matching their DeliverAcks,
// and the mapping of refusals to KiteQ feedback (asRefusal, the one place).
// It does not own broker rules (topics served, sizes, dedup, dispatch,
// redelivery, warmup): those are the Broker's, a small interface declared
// here that the daemon satisfies over semantics (daemon/kiteq.go). It imports compat/wire and the
// store types only. A commit=false publish goes to the broker as
// ModePrepare; a producer's TxAck is handed to Broker.ResolveTx by one
// goroutine of the server's.
//
// # Session lifecycle
//
//  1. Accept: over Config.MaxConns, or Config.MaxConnsPerHost from its IP
//     address, the connection is closed at once and counted (Stats).
//     Otherwise the server registers a session and starts its reader and
//     writer goroutines. The connection has Config.HandshakeTimeout to send
//     a valid ConnMeta; until then it reads with a 1 KiB buffer and takes
//     frames of at most 64 KiB (a larger one closes it), so that idle or
//     hostile connections cost a few KiB each.
//  2. Handshake: ConnMeta is answered with a ConnAuthAck carrying the
//     same opaque; then the connection Joins its group (key: the remote
//     address) with its warmingupSec. A refused ConnMeta gets status=false
//     and the connection is closed once the refusal is written. Before it,
//     what a reconnecting kiteq-client-go leaves in its write queue is
//     tolerated: heartbeats are echoed, publishes refused (401), DeliverAcks
//     and TxAcks dropped. A broker-to-client command, an unknown command, a
//     malformed frame or a bad length closes that connection alone.
//  3. Serving: heartbeats are echoed; publishes go to Broker.Publish and
//     their store ack is sent from the broker's callback, so the reader
//     never waits for the store; deliveries arrive through the session's
//     Endpoint.Deliver and DeliverAcks go to Broker.Ack; a TxAck (the
//     producer's answer to Check, or its own commit or rollback) goes to
//     Broker.ResolveTx with the connection's group, unless its header names
//     another group: a connection decides only for its own group, and a
//     refusal is logged and counted, never answered. Check asks one warmed-up connection of the
//     publishing group about a prepared message (ErrNoProducer when none
//     can take it).
//  4. Close (client gone, a fatal frame, a write failure or timeout, a full
//     write queue on a reply, or server shutdown): the connection and the
//     writer stop, then the reader Leaves the group, so the broker sends
//     the connection's unacknowledged deliveries elsewhere.
//
// # Pacing
//
// A connection keeps at most Config.DeliveryWindow bytes of deliveries
// unacknowledged; at the window it reports Full and the broker chooses
// other members (semantics.Throttler) until DeliverAcks free room. The
// listener sets TCP_MAXSEG (Config.MaxSegment) so that a client's small
// receive buffer never leaves the kernel waiting on the zero-window probe
// timer (docs/DESIGN.md, "KiteQ connections on loopback").
//
// # TLS
//
// With Config.TLS the listener is crypto/tls over the TCP listener (which
// keeps TCP_MAXSEG). The handshake runs on the reader's first read, under
// the ConnMeta's HandshakeTimeout; crypto/tls serialises the reader's
// handshake writes with the writer's, and a batch of frames is copied into
// writes of up to one TLS record (16 KiB) instead of one vectored write.
//
// # Goroutines
//
// The Server owns every goroutine: Run's watcher (which stops the server
// when Run's context ends) and, per connection, one reader (decodes and
// handles frames, owns the handshake state, Leaves the group on exit) and
// one writer (the only writer of the socket, draining the write queue: a
// slice that grows with what is queued, up to Config.WriteQueue frames,
// written with one vectored write per batch, and dropped when the burst is
// over).
// Run and Close return only after all of them have ended. Broker callbacks
// and Endpoint.Deliver run on the broker's goroutines; they only queue
// frames and never block.
//
// # Locks
//
// Server.mu guards the session set; session.mu guards a connection's
// delivery opaques and window. Neither is held while taking the other, nor
// across I/O or any Broker call, so the broker may call Deliver and Full
// while holding its own locks (its lock, then session.mu: never the
// reverse).
//
// # Caveats
//
//   - Frames of one connection are read in order and handled by the reader;
//     only the broker's answers (store acks) come back out of order, as
//     with the original broker's worker pool.
//   - Bodies are stored raw: a Snappy publish is decompressed, and the
//     decompressed size counts against Config.MaxBody. Deliveries go out
//     with snappy=false unless only compression makes them fit a frame.
//   - A delivery that does not fit in the write queue fails at once and the
//     broker redelivers it; a reply that does not fit closes the connection.
//     A delivery to a closing connection is dropped without an error, like
//     a frame lost with the connection: the Leave that follows hands it back
//     to the broker.
package compat
