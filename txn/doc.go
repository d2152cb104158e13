// Package txn owns KiteQ's two-phase commit: it decides prepared messages by
// the producer's commit or rollback (Coordinator.ResolveAs, which decides
// only the messages the caller's group published, or Coordinator.Resolve,
// the admin's, for any group), by the periodic
// check-back of undecided ones through a Checker (Coordinator.Tick and Run),
// and by a final action after Config.MaxChecks unanswered checks. It keeps
// no message state of its own: the store holds prepared messages
// (store.Message.Prepared, Checks, NextCheck) and the Coordinator only
// writes store.OpRollback, store.OpCheck and, for FinalDeadLetter, an atomic
// OpCommit+OpDead; a commit goes through the Releaser, which writes
// store.OpCommit with the matching groups and dispatches. It does not know
// the wire (NATS $KQ.TXCHECK requests, KiteQ TxAck frames): the Checker and
// the callers of Resolve do.
//
// # Basics
//
// A producer publishes a message with Prepared set and NextCheck set to
// Coordinator.NextCheck(now); it is stored and never delivered. Then:
//
//	prepared ──Resolve(commit) / check answers commit──► Releaser (OpCommit, deliverable)
//	prepared ──Resolve(rollback) / check answers rollback──► OpRollback (deleted)
//	prepared ──check unknown, error, timeout──► OpCheck{Checks+1, NextCheck=now+Interval}
//	prepared, Checks ≥ MaxChecks, due ──► FinalRollback (OpRollback) or FinalDeadLetter
//
// The first check comes FirstCheck after the prepare, the next ones every
// Interval; the final action one Interval after the last check, so a late
// asynchronous answer to the last check still counts. Resolving twice the
// same way is a no-op; the other way is ErrConflict, also after the message
// is gone, for the last Config.Remember decisions.
//
// Tick is deterministic given the clock (Config.Now), the store and the
// Checker's answers; tests drive it with a fake clock and interaction
// scripts (testdata/*.txt). Run only paces Ticks with a ticker and starts no
// goroutine.
//
// # Concurrency and invariants
//
// Every method is safe for concurrent use; Resolve typically runs on many
// goroutines while Run ticks on one. One mutex, Coordinator.mu, guards the
// in-memory "deciding" slots and the bounded memory of outcomes; it is a
// leaf lock, never held across store, Writer, Checker, Releaser or logger
// calls, so it has no place in a lock order. A decision (from Resolve, a
// check answer or the final action) first claims the message's slot, then
// reads the message from the store and acts only if it is still prepared;
// a concurrent decision waits for the slot and then finds it decided. The
// first decision wins, the second is a no-op or ErrConflict. Hence:
//
//   - never delivered before commit: only the Releaser makes a message
//     deliverable, and it is called only under a commit decision's slot
//     for a message the store holds prepared;
//   - never delivered after rollback: a rollback is written under the same
//     slot, after which the store no longer holds the message prepared, so
//     no later decision releases it;
//   - released once: a second commit finds it no longer prepared.
//
// Checks run outside any slot, so Resolve never waits for a slow producer;
// a check of a message decided meanwhile is harmless (its OpCheck is a no-op
// on a message no longer prepared, and its answer meets a conflict or a
// no-op).
//
// # Caveats
//
// The exclusion is in memory: run one Coordinator per store (per broker on
// a shared MySQL store, where each broker checks its own messages). The
// Releaser should dispatch what the store holds after its OpCommit, so a
// rollback by another broker wins there too. Checks are made one at a time
// within a Tick, each bounded by CheckTimeout: a producer that takes the
// whole timeout for every check slows check-backs down to one per timeout
// (a NATS request to a group with no producer fails at once). Remembered
// outcomes are lost on restart: then resolving a deleted message is
// ErrNotFound. With FinalDeadLetter the dead letter belongs to the
// publishing group (see FinalDeadLetter).
package txn
