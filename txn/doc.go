// Package txn will own KiteQ's two-phase commit: prepared messages,
// commit and rollback, and the periodic check-back of undecided messages
// through a Checker interface, with an injected clock.
//
// Until it lands (issue #5), a publish with Kq-Tx: prepare, or a KiteQ
// message with commit=false, is refused with 501 by package semantics, and
// the store already keeps prepared messages (store.Message.Prepared,
// store.OpCommit, store.OpRollback, store.OpCheck, Store.DueChecks).
package txn
