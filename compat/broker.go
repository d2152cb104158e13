package compat

import (
	"context"
	"fmt"
	"time"

	"github.com/kitenats/kitenats/store"
)

// Broker is what the adapter needs from the broker (main satisfies it with a
// thin adapter over semantics). Every method must be safe for concurrent use
// and must not block on I/O: sessions call them from their reader goroutine,
// and a slow call would stall that connection's heartbeats.
type Broker interface {
	// Publish takes a validated, normalised message whose body is raw
	// (never compressed). The broker owns m from the call on. done is
	// called exactly once, on any goroutine, possibly before Publish
	// returns: with the result once the message is durable (accepted, for
	// ModeFly), or with the refusal, a *kqerr.Error whose Description the
	// publisher gets as feedback. done must not block.
	Publish(m *store.Message, mode Mode, done func(Result, error))
	// Join makes ep a consumer of group and returns its id. key identifies
	// the connection (its remote address); warmup is the ramp of
	// kiteq-protocol.md §8.1, 0 for none. The broker may call ep.Deliver
	// before Join returns.
	Join(group, key string, warmup time.Duration, ep Endpoint) (consumerID string)
	// Leave removes the consumer; its unacknowledged deliveries go to
	// other consumers of the group at once.
	Leave(group, consumerID string)
	// Ack applies a DeliverAck. done is called exactly once with nil or the
	// reason the ack changed nothing (unknown or stale delivery); it must
	// not block.
	Ack(a Ack, done func(error))
	// ResolveTx commits or rolls back a prepared message, for a producer's
	// TxAck on a connection of group. A message that another group
	// published must be refused with a 403 *kqerr.Error (kqerr.Forbidden)
	// and left as it is. It may block on the store; the adapter calls it
	// from one goroutine of its own, never from a connection's reader.
	ResolveTx(ctx context.Context, group, topic, id string, commit bool) error
}

// Mode says how a published message is handled.
type Mode uint8

// The publish modes, from the header's commit and fly flags.
const (
	// ModeStore (commit=true, fly=false): store durably, then deliver.
	ModeStore Mode = iota
	// ModeFly (commit=true, fly=true): deliver without storing, at most
	// three attempts.
	ModeFly
	// ModePrepare (commit=false): store, deliver nothing until a commit
	// (two-phase message).
	ModePrepare
)

// String names the mode for logs.
func (m Mode) String() string {
	switch m {
	case ModeStore:
		return "store"
	case ModeFly:
		return "fly"
	case ModePrepare:
		return "prepare"
	default:
		return fmt.Sprintf("Mode(%d)", uint8(m))
	}
}

// Result is the broker's answer to an accepted publish.
type Result struct {
	// Duplicate is set when the message id was already published within
	// the dedup window: nothing new was stored.
	Duplicate bool
	// Seq is the broker's publish sequence of the message.
	Seq uint64
	// Groups is how many groups took the message (0 for a duplicate). A
	// KiteQ MessageStoreAck has no room for it: the adapter only logs a
	// message no group took, at debug level.
	Groups int
}

// Ack is a consumer's answer to one delivery.
type Ack struct {
	Group    string // the consuming group: the connection's
	Consumer string // Delivery.Consumer of the acknowledged delivery
	Delivery string // Delivery.ID of the acknowledged delivery
	OK       bool   // DeliverAck.status: true done, false redeliver
}

// Endpoint receives the deliveries of one consumer: a KiteQ connection.
type Endpoint interface {
	// Deliver queues d for writing and returns at once: nil once the
	// frame is queued, ErrQueueFull or ErrTooLarge otherwise (the send is
	// refused; the broker offers the message again after a pause, without
	// counting an attempt). On a connection that is closing it drops d and
	// returns nil, as if the frame were lost with the connection: Leave
	// follows at once and hands the consumer's unacknowledged deliveries
	// to the group's other consumers at once. d.Message is read, never
	// modified. Safe for concurrent use.
	Deliver(d Delivery) error
	// Full reports that the connection has Config.DeliveryWindow bytes
	// of deliveries unacknowledged: the broker should choose another
	// member for now. The DeliverAck that frees room reaches the broker
	// through Ack. It takes the session's lock only, never calls the
	// Broker, and may be called with the broker's locks held.
	Full() bool
}

// Delivery is one attempt to deliver a message to one consumer.
type Delivery struct {
	ID       string // unique per attempt; Ack.Delivery refers to it
	Consumer string // the consumer it goes to, as Join returned it
	Attempt  int    // this group's attempt number, from 1 (logs only: KiteQ has no field for it)
	Message  *store.Message
}
