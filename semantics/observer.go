package semantics

import "time"

// Observer is told of the timings and events of messages, for metrics
// (the daemon implements it with Prometheus histograms and counters).
// Its methods are called on the hot path, on whatever goroutine did the
// work, sometimes while Broker.mu is held: they must be cheap, must not
// block and must not call the Broker. Durations are read from Config.Now.
// A nil Config.Observer observes nothing and costs nothing.
type Observer interface {
	// Stored: a publish (or a prepare) of topic was acknowledged to its
	// producer, d after Publish was called: the publish→store-ack latency,
	// group commit included (a duplicate's ack too). Refused and failed
	// publishes are not observed, nor fly messages (never stored).
	Stored(topic string, d time.Duration)
	// Delivered: the first delivery of a message of topic to a group was
	// sent, d after the message was published (for a committed
	// transactional message: after its commit). A message that was read
	// back from the store for its first delivery (its group had no
	// consumer with room when it was published, or the broker restarted)
	// is timed from its Created time, which has second precision.
	Delivered(topic string, d time.Duration)
	// Acked: a delivery of topic was acknowledged (+ACK), d after it was
	// sent.
	Acked(topic string, d time.Duration)
	// Redelivered: a delivery attempt ended without an ack and the message
	// will be offered to the group again (not a dead letter). reason is one
	// of RedeliveryReasons.
	Redelivered(reason string)
}

// Why a message is offered to a group again (Observer.Redelivered).
const (
	// RedeliverNak: the consumer answered -NAK (a KiteQ consumer: a failed
	// delivery).
	RedeliverNak = "nak"
	// RedeliverTimeout: no ack within the ack wait.
	RedeliverTimeout = "timeout"
	// RedeliverConsumerGone: the consumer left (its connection closed)
	// with the delivery unacknowledged.
	RedeliverConsumerGone = "consumer_gone"
	// RedeliverSendFailed: the send itself failed (the consumer's
	// connection gone or too slow); the attempt does not count.
	RedeliverSendFailed = "send_failed"
)

// RedeliveryReasons lists every reason Observer.Redelivered is given, so
// that a metric can show each from zero.
var RedeliveryReasons = []string{RedeliverNak, RedeliverTimeout, RedeliverConsumerGone, RedeliverSendFailed}
