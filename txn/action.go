package txn

import (
	"fmt"
	"strings"
)

// Action is a producer's answer about a prepared message.
type Action uint8

const (
	// Unknown means "not decided yet": ask again later. It is the zero value,
	// so a Checker that fails without setting an answer counts as unknown.
	Unknown Action = iota
	// Commit makes the message deliverable.
	Commit
	// Rollback deletes the message; it is never delivered.
	Rollback
)

// String returns "unknown", "commit" or "rollback": the words of a
// $KQ.TXCHECK reply and of the action of a $KQ.API.TX request.
func (a Action) String() string {
	switch a {
	case Unknown:
		return "unknown"
	case Commit:
		return "commit"
	case Rollback:
		return "rollback"
	default:
		return fmt.Sprintf("Action(%d)", uint8(a))
	}
}

// ParseAction parses the word of a check reply or a resolve request:
// exactly "commit", "rollback" or "unknown" once surrounding ASCII white
// space is trimmed.
func ParseAction(s string) (Action, error) {
	switch strings.TrimSpace(s) {
	case "commit":
		return Commit, nil
	case "rollback":
		return Rollback, nil
	case "unknown":
		return Unknown, nil
	default:
		return Unknown, fmt.Errorf("txn: action %q is not commit, rollback or unknown", s)
	}
}

// FinalAction is what happens to a prepared message that is still undecided
// after Config.MaxChecks check-backs.
type FinalAction uint8

const (
	// FinalRollback deletes the message, as if the producer had rolled it
	// back (KiteQ has no limit; rollback is the safe default: nothing
	// undecided is ever delivered).
	FinalRollback FinalAction = iota
	// FinalDeadLetter moves the message, never delivered, to the dead
	// letters of its publishing group (store.Message.Group) with a reason
	// saying it was unresolved, so an operator can find it with the DLQ
	// list of (topic, publishing group). It is done with one atomic
	// store.Batch of OpCommit (the publishing group as the only pending
	// group) then OpDead of that group, so no reader ever sees it
	// deliverable. Replaying that dead letter re-queues it for the
	// publishing group only, not for the topic's subscribers: to deliver
	// it to them, publish it again.
	FinalDeadLetter
)

// String returns "rollback" or "dead-letter".
func (f FinalAction) String() string {
	switch f {
	case FinalRollback:
		return "rollback"
	case FinalDeadLetter:
		return "dead-letter"
	default:
		return fmt.Sprintf("FinalAction(%d)", uint8(f))
	}
}

// MarshalText implements encoding.TextMarshaler (for TOML and JSON config).
func (f FinalAction) MarshalText() ([]byte, error) {
	if f > FinalDeadLetter {
		return nil, fmt.Errorf("txn: unknown final action %d", uint8(f))
	}
	return []byte(f.String()), nil
}

// UnmarshalText implements encoding.TextUnmarshaler: "rollback",
// "dead-letter" or "deadletter".
func (f *FinalAction) UnmarshalText(b []byte) error {
	switch strings.TrimSpace(string(b)) {
	case "rollback":
		*f = FinalRollback
	case "dead-letter", "deadletter":
		*f = FinalDeadLetter
	default:
		return fmt.Errorf("txn: final action %q is not rollback or dead-letter", b)
	}
	return nil
}
