// Package store defines what kitenats persists and the contract every storage
// backend fulfils.
//
// It owns the Message (a KiteQ message plus its per-group delivery state), the
// Store interface, the Update operations that change delivery state, the
// sentinel errors, and the Batcher, the group-commit writer that makes many
// concurrent publishes and acknowledgements share one backend write (and one
// sync). It imports nothing else of this module. Backends live in
// sub-packages (store/memory, store/rocksdb, store/mysql) and import only this
// package; store/storetest is the conformance suite they all pass.
//
// # Basics
//
// A message is stored once, with one GroupState per consumer group that still
// has to receive it. Delivery state is per (message, group): acknowledging,
// retrying or dead-lettering one group never touches another. A message is
// deleted when its last group is acknowledged or dead-lettered; its dedup
// entry outlives it for the dedup window.
//
// Every mutation goes through Store.Write, which applies a Batch atomically
// and durably under the backend's durability mode before returning. That one
// entry point is what makes group commit possible: the Batcher collects the
// work of many callers while the previous write is in flight.
//
// # Caveats
//
// Messages returned by a Store are copies owned by the caller. Backends index
// pending states by (group, NextAttempt) so Due costs O(due messages), never
// O(backlog); callers should ask for no more than they can deliver.
package store
