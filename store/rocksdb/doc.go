// Package rocksdb is the RocksDB store.Store (and store.BindingStore): the
// standalone broker's durable backend, local to one broker.
//
// It owns one RocksDB directory (Config.Dir), opened by one process at a
// time (RocksDB's LOCK file refuses a second one), and the journal in its
// "journal" subdirectory. It does not own the
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
//	v                     → format version ("3"); Open migrates "1"
//	                             (dedup entries were "u topic id" with an
//	                             "x tk topic id" expiry index) and "2"
//	                             (the same keys, no journal), and refuses
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
// next to each other. Keys a Write puts that were absent before it and
// that it also deletes (a message saved and acked in one group-committed
// batch) are written nowhere, not even to the journal (batch.go). The
// first Write in each new minute drops the dedup buckets that ended with
// one range delete.
//
// # Journal
//
// The store keeps its own write-ahead log, the journal (journal.go), and
// writes to RocksDB without RocksDB's WAL. A Write appends all its writes
// to the journal as one checksummed record, then applies the "m" writes
// (message records) to an in-memory map (hot.go) and the rest to RocksDB
// in one WriteBatch. Reads look in the map before RocksDB. In the broker's
// steady state a message is acked tens of milliseconds after it is saved:
// its record is put and deleted in the map and never reaches a memtable,
// which was a third of the CPU of a message (two skip-list inserts and
// their cgo calls, and RocksDB's WAL copy of the record).
//
// When the current segment reaches Config.JournalSegmentSize (64 MiB), the
// Write that crossed it starts a new segment and writes the records still
// in the map to RocksDB; a goroutine owned by the Store then flushes
// RocksDB's memtables to tables and deletes the old segments. A Write after
// which the map holds a quarter segment of records (records nobody acks: a
// backlog) moves them too, without a new segment. Open replays the segments left (a
// crash loses RocksDB's memtables, which only the journal then has), then
// flushes and deletes them. Replay is safe over state that already has
// part of it: a record is plain puts, deletes and range deletes, so it
// ends each key it touches as the original Write did (this is why due
// keys are deleted with Delete, not SingleDelete: a replay may put a key a
// second time). A record cut short or failing its checksum at the end of
// the last segment is what a crash leaves of an append whose Write never
// returned: Open drops it. Anywhere else, Open fails rather than skip
// acknowledged writes. An append that fails (a full disk) fails its Write
// alone: the segment is cut back to where the record began. If that cut
// fails, or a sync, or the WriteBatch after a good append, the store
// refuses every later Write until it is reopened (the journal may hold a
// record the map and RocksDB do not).
//
// # Durability
//
// Every Write is one journal record: all of it or none of it is applied,
// before and after a crash (replay applies whole records only).
//
//   - Sync: Write returns after the record is fdatasynced: one sync per
//     Write, that is per group-committed batch. An acknowledged Write
//     survives a power loss.
//   - Async (default): Write returns once the record is written to the OS
//     (not synced). A goroutine owned by the Store syncs the journal every
//     SyncInterval when something was written. An acknowledged Write
//     survives a crash of the process (kill -9: the OS has the pages), not
//     a power loss or a kernel crash, which may lose up to SyncInterval of
//     acknowledged writes (never part of a Write).
//
// A segment is synced before the next one starts, and its directory after
// it is created or deleted; Open creates the store's directory and the
// journal's with each new directory's parent synced (so a power cut
// cannot take a fresh store's directory, synced files and all, with it).
// TestStoreRocksDBPowerCut checks this on a powerfs disk, which keeps only
// what was synced. SaveBindings writes
// through RocksDB's WAL, with the same promise. Close syncs the journal and
// the WAL in both modes; a clean Close then also moves the held records to
// RocksDB, flushes it and deletes the journal, so that the next Open has
// nothing to replay (if that fails, the journal stays and Open replays it).
//
// # Deferred due keys
//
// A state not due yet when written (a delivery's lease, a retry window) is
// nearly always written again before it is due, so its due key goes to an
// in-memory index (deferred.go, at most 65,536 keys) instead of the "d"
// range, and its record gets a flag in the same Write. Due reads both.
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
// range), and the records held in the map (under a quarter of
// JournalSegmentSize bytes, plus one Write's). The rest is bounded
// by the number of (topic, group) pairs, except the hints (one per group
// ever asked for).
//
// # Caveats
//
//   - A message naming a group twice is stored with the first state only.
//   - Deletes are ordinary tombstones that compaction drops; a record put
//     and deleted within one journal segment leaves none.
//   - Open replays up to about two segments (128 MiB by default) of
//     journal, and flushes RocksDB once.
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
// concurrently with them, each at one snapshot of RocksDB (the records in
// the map are read at their latest state; each query checks a record
// against the index key that led to it). Lock order:
//
//	life (shared by every method, exclusive in Close)
//	  → writeMu (Write only)
//	    → counters.mu, hints.mu, hot.mu, journal.mu (leaves, never held
//	      together)
//
// The Store starts two goroutines in Open, the retirer (flushes RocksDB
// and deletes old journal segments) and, in Async mode, the syncer; Close
// stops them and waits for them, then waits for calls in progress, syncs
// and closes the journal (and, clean, retires it), and frees every RocksDB
// object.
package rocksdb
