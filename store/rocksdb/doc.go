// Package rocksdb is the RocksDB store.Store (and store.BindingStore): the
// standalone broker's durable backend, local to one broker.
//
// It owns one RocksDB directory (Config.Dir), opened by one process at a
// time (RocksDB's LOCK file refuses a second one). It does not own the
// group commit (store.Batcher calls Write), retries, or the redelivery
// schedule: it stores what it is told, atomically, and answers the queries
// of store.Store from range scans.
//
// # Key layout
//
// One column family. Every key starts with a one-byte prefix. A string
// component (topic, id, group) is escaped so that any bytes are allowed: a
// 0x00 byte is written 0x00 0xFF and the component ends with 0x00 0x01.
// Escaped components are self-delimiting, no one is a prefix of another,
// and they sort as the strings do. A time, tk below, is 8 bytes big-endian:
// UnixNano with the sign bit flipped (clamped to the years 1678–2262; the
// zero time sorts as the Unix epoch). A seq is 8 bytes big-endian.
//
//	m topic id            → message record (state of every pending group)
//	d group tk topic id   → ""   due index: one key per pending group of a
//	                             committed message, tk = its NextAttempt,
//	                             unless deferred (below)
//	c tk topic id         → ""   check index: one key per prepared message,
//	                             tk = its NextCheck
//	w bk topic id         → until tk, seq    dedup entry, bk = until
//	                             rounded down to its one-minute bucket
//	l topic group seq     → dead letter record (group, reason, at, message)
//	r topic group id      → seq…  the letters of (topic, group, id)
//	b group               → binding document
//	v                     → format version ("2"); Open migrates "1"
//	                             (dedup entries were "u topic id" with an
//	                             "x tk topic id" expiry index) and refuses
//	                             any other
//
// Records are a version byte then varints and length-prefixed bytes
// (record.go); record times are exact (seconds and nanoseconds).
//
// Due(group, now, limit) seeks to "d group" and scans while tk <= now,
// reading one record per key: O(returned). DueChecks does the same on "c".
// A save reads "m" and those of the "w" buckets its window spans that an
// in-memory Bloom filter per bucket says may hold its id (filter.go: almost
// never); a save of an id the broker made (store.Message.NewID) reads
// nothing. Dead letters of (topic, group) are one range,
// oldest first by a store-wide sequence; OpReplay finds a letter through
// "r" with a point read. A Write buffers its keys and adds them to the
// WriteBatch sorted by key (batch.go), so that its memtable inserts land
// next to each other; the record reads of its updates are served from an
// in-memory cache of the records the last Writes put, when it has them
// (cache.go). Keys a Write puts that were absent before it and that it
// also deletes (a message saved and acked in one group-committed batch)
// never reach RocksDB (batch.go). The first Write in each new minute drops
// the dedup buckets that ended with one range delete.
//
// # Durability
//
// Every Write is one RocksDB WriteBatch: all of it or none of it is
// applied, before and after a crash. The WAL is never disabled.
//
//   - Sync: the WriteBatch is written with sync set, so Write returns after
//     the WAL is fsynced: one fsync per Write, that is per group-committed
//     batch. An acknowledged Write survives a power loss.
//   - Async (default): Write returns once the WAL is written to the OS (not
//     synced). A goroutine owned by the Store syncs the WAL every
//     SyncInterval when something was written. An acknowledged Write
//     survives a crash of the process (kill -9: the OS has the pages), not
//     a power loss or a kernel crash, which may lose up to SyncInterval of
//     acknowledged writes (never part of a Write).
//
// SaveBindings has the same promise. Close syncs the WAL in both modes.
//
// # Deferred due keys
//
// A state not due yet when written (a delivery's lease, a retry window) is
// nearly always written again before it is due, so its due key goes to an
// in-memory index (deferred.go, at most 65,536 keys) instead of the "d"
// range, and its record gets a flag in the same WriteBatch. Due reads both.
// Open writes the "d" key of every flagged record and clears the flag, so
// a crash loses no due state. An acked delivery then costs no due key
// write at all.
//
// # In-memory state
//
// The counters of Stats (pending and dead per (topic, group), messages and
// prepared per topic) live in memory: Open rebuilds them with one scan of
// the "m" and "l" ranges (O(stored messages + dead letters)); each Write
// updates them after its batch is written. Per group, a due hint remembers
// a time below which the group's due index holds no key, so that Due seeks
// past the tombstones acked messages leave until compaction (see
// dueHints). Also kept: the last dead letter sequence (from the scan) and
// the last dedup bucket dropped, a Bloom filter per dedup bucket in force
// (1.25 to 2.5 bytes per entry, rebuilt by Open with a scan of the "w"
// range), and the record cache (at most 65,536
// records and 32 MiB, guarded by writeMu, filled only after a successful
// Write, so a cached record is always the stored one). The rest is bounded
// by the number of (topic, group) pairs, except the hints (one per group
// ever asked for).
//
// # Caveats
//
//   - A message naming a group twice is stored with the first state only.
//   - Due key deletes are SingleDeletes (each due key is put once and deleted
//     once), so a save and its ack that meet in one memtable leave nothing
//     on disk; record and dedup deletes are ordinary tombstones that
//     compaction drops.
//   - DeadLetters costs O(offset + limit): paging skips, it does not seek.
//   - A save looks for entries in the buckets its own window spans: an
//     entry written under a longer window (since shortened) that expires
//     past them is not found. It never causes a false duplicate: a save
//     compares the entry's expiry with the batch time.
//   - Open costs one scan of the stored messages, dead letters and dedup
//     entries.
//   - Times in index keys are clamped to 1678–2262, so a NextAttempt past
//     2262 sorts as 2262; records keep the exact time.
//
// # Concurrency
//
// Every method is safe for concurrent use. Write calls are serialized by
// writeMu; reads (Get, Due, DueChecks, DeadLetters, LoadBindings) run
// concurrently with them, each at one snapshot. Lock order:
//
//	life (shared by every method, exclusive in Close)
//	  → writeMu (Write only)
//	    → counters.mu, hints.mu (leaves, never held together)
//
// The Store starts one goroutine (the Async WAL syncer) in Open; Close
// stops it and waits for it, then waits for calls in progress, and frees
// every RocksDB object.
package rocksdb
