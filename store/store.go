package store

import (
	"context"
	"fmt"
	"time"
)

// Store persists messages, their per-group delivery state, dead letters and
// the publish dedup window.
//
// Implementations are safe for concurrent use. A method returns ErrClosed
// (wrapped) after Close; any other error is a backend failure after which
// nothing of the failed call is applied, and the caller may retry.
// Cancelling ctx abandons the call; a Write abandoned that way may or may not
// have been applied.
type Store interface {
	// Write applies b atomically: all of it or none of it. When Write returns
	// nil the batch is durable as the backend's durability mode promises. It
	// returns one SaveResult per b.Saves entry, in order. Write must not
	// keep b or its slices once it returns: the Batcher reuses them.
	Write(ctx context.Context, b *Batch) ([]SaveResult, error)

	// Get returns a copy of the stored message, or ErrNotFound.
	Get(ctx context.Context, topic, id string) (*Message, error)

	// Due returns up to limit committed messages that have a pending state
	// for group with NextAttempt <= now, earliest first. The cost is
	// O(returned), whatever the backlog.
	Due(ctx context.Context, group string, now time.Time, limit int) ([]*Message, error)

	// DueChecks returns up to limit prepared messages with NextCheck <= now,
	// earliest first.
	DueChecks(ctx context.Context, now time.Time, limit int) ([]*Message, error)

	// DeadLetters pages through the dead letters of (topic, group), oldest
	// first, and returns the page and the total count.
	DeadLetters(ctx context.Context, topic, group string, offset, limit int) ([]DeadLetter, int, error)

	// HasDeadLetter reports whether message id of topic is a dead letter of
	// group (what OpReplay and OpDiscard act on).
	HasDeadLetter(ctx context.Context, topic, group, id string) (bool, error)

	// Stats returns the current counters.
	Stats(ctx context.Context) (Stats, error)

	// Close releases the backend. It is idempotent and waits for anything
	// the backend started.
	Close() error
}

// BindingStore is implemented by backends that can keep group bindings, used
// while no registry is configured so that a durable store keeps them across
// restarts. A binding document is opaque to the store.
type BindingStore interface {
	// SaveBindings replaces the document of group; an empty doc deletes it.
	SaveBindings(ctx context.Context, group string, doc []byte) error
	// LoadBindings returns every group's document.
	LoadBindings(ctx context.Context) (map[string][]byte, error)
}

// Failer is implemented by backends that can fail for good: after such a
// failure every Write fails until the store is reopened (a restart of the
// broker). Failed returns that failure, or nil.
type Failer interface {
	Failed() error
}

// Batch is one atomic write: new messages first, then updates, in order.
type Batch struct {
	// Now is the time of the batch: dedup entries written now last until
	// Now+DedupWindow, and a save is a duplicate when the same (topic, id) is
	// still stored or its dedup entry lasts beyond Now. Times are kept to at
	// least the millisecond; a zero time stays zero.
	Now         time.Time
	DedupWindow time.Duration
	Saves       []*Message
	Updates     []Update
}

// SaveResult reports the fate of one saved message.
type SaveResult struct {
	// Duplicate is true when the (topic, id) was published within the dedup
	// window; nothing was stored and Seq is the original's.
	Duplicate bool
	Seq       uint64
	// Err is ErrFull when a bounded backend had no room; the rest of the
	// batch is still applied.
	Err error
}

// Op is the kind of an Update.
type Op uint8

// The update operations. Each one is idempotent, and an update whose target
// does not exist (or is not in the state it applies to) is a no-op, so a
// retried or late update never corrupts state.
const (
	// OpRetry sets Attempts and Next (as NextAttempt) of the pending Group.
	OpRetry Op = iota + 1
	// OpAck ends the pending Group; the message is deleted when no group is left.
	OpAck
	// OpDead moves the pending Group to the dead letters with Reason, at the
	// batch's Now; the message is deleted when no group is left.
	OpDead
	// OpCommit commits a prepared message with Groups as its pending states;
	// with no Groups the message is deleted (nobody is to receive it).
	OpCommit
	// OpRollback deletes a prepared message. A committed one is kept.
	OpRollback
	// OpCheck sets Checks (from Attempts) and NextCheck (from Next) of a
	// prepared message.
	OpCheck
	// OpReplay moves the dead letter of (Topic, ID, Group) back to pending
	// with zero attempts and NextAttempt Next, recreating the message when
	// it was deleted.
	OpReplay
	// OpDiscard deletes the dead letter of (Topic, ID, Group) for good (the
	// oldest one, should the group have several of that message).
	OpDiscard
)

// String returns the operation's name.
func (o Op) String() string {
	switch o {
	case OpRetry:
		return "retry"
	case OpAck:
		return "ack"
	case OpDead:
		return "dead"
	case OpCommit:
		return "commit"
	case OpRollback:
		return "rollback"
	case OpCheck:
		return "check"
	case OpReplay:
		return "replay"
	case OpDiscard:
		return "discard"
	default:
		return fmt.Sprintf("Op(%d)", uint8(o))
	}
}

// Update changes the state of one stored message. Which fields matter
// depends on Op.
type Update struct {
	Op       Op
	Topic    string
	ID       string
	Group    string       // OpRetry, OpAck, OpDead, OpReplay, OpDiscard
	Attempts int          // OpRetry: attempts; OpCheck: checks
	Next     time.Time    // OpRetry, OpCheck, OpReplay
	Groups   []GroupState // OpCommit
	Reason   string       // OpDead
}
