package txn

import "errors"

// Resolve returns ErrNotFound and ErrConflict inside a *kqerr.Error: both
// are the 409 of NATS-PROTOCOL.md §8 (an unknown id, or a decision the
// other way), and the wire description is "kq: " followed by the text of
// the wrapped error. errors.Is finds the sentinel through it.
var (
	// ErrNotFound is returned by Resolve when no message has that topic and
	// id and the Coordinator remembers no outcome for it: it was never
	// prepared, or it was decided and deleted so long ago (or before a
	// restart) that its outcome was forgotten.
	ErrNotFound = errors.New("txn: message not found")
	// ErrConflict is returned by Resolve when the message was already
	// decided the other way: a rollback of a committed (or delivered)
	// message, or a commit of a rolled-back or finally rolled-back or
	// dead-lettered one. It is the 409 of NATS-PROTOCOL.md §5.
	ErrConflict = errors.New("txn: already resolved the other way")
	// ErrForbidden is returned by ResolveAs when the message was published
	// by another group: a group resolves only its own prepared messages.
	// It is inside a *kqerr.Error with the 403 of NATS-PROTOCOL.md §8.
	ErrForbidden = errors.New("txn: the message belongs to another group")
)
