// Package mysql is the MySQL/MariaDB store.Store: KiteQ's sharded mysql://
// schema, so KiteQ's tooling still reads the rows, plus the per-group
// delivery state, dedup window and dead letters that kitenats needs.
//
// It owns the shard databases it creates and everything in them. It does
// not start a server (scripts/mariadb.sh starts a private one for tests),
// never reads delivery state from the slave, and does not decide when a
// broker is dead: Adopt moves a dead broker's messages when told to
// (`kitenats adopt`, by an operator).
//
// # Sharding
//
// Exactly as KiteQ (kiteq-protocol.md §9.7): h is the last character of
// the message id read as hex (a non-hex character is 0); with
// hashNum = 16/shardnum, a message lives in database {db}_{h/hashNum},
// table kite_msg_{h%hashNum}; with shardnum=4 an id ending in f is in
// kite_3.kite_msg_3 and one ending in 5 in kite_1.kite_msg_1. Its group
// states and check row sit in the same database under the same number.
// All shard databases are on one server; statements name tables fully.
// Never change shardnum for existing data.
//
// # Schema
//
// Open creates what is missing (CREATE … IF NOT EXISTS). Tables are InnoDB,
// utf8mb4 with binary collation, and every name column is VARBINARY: topics,
// ids and groups compare byte by byte (':', '/', NUL, any UTF-8, trailing
// spaces), never by a collation. In each database {db}_n:
//
//   - kite_msg_{t}: one row per stored message. KiteQ's columns header,
//     body, msg_type, message_id, topic, message_type, publish_group,
//     commit (0 = prepared), expired_time, publish_time, deliver_count,
//     deliver_limit, kite_server (the owning broker, Config.Broker),
//     fail_groups, succ_groups and next_deliver_time, plus seq, created_ns,
//     expires_ns, checks, next_check_ns and dedup_until_ns. The primary key
//     is (message_id, topic): one id may be published on two topics, so
//     KiteQ's unique message_id (and its unused auto-increment id) is not
//     kept. idx_recover is the index KiteQ's recovery scan forces but its
//     table.sh never created (§12 item 10).
//   - kite_msg_group_{t}: one row per pending (message, group): attempts,
//     next_attempt_ns and kite_server, indexed by idx_due (kite_server,
//     group_id, next_attempt_ns, message_id, topic), so Due is an index
//     range scan, O(returned) whatever the backlog.
//   - kite_msg_check_{t}: one row per prepared message: kite_server,
//     next_check_ns, indexed by idx_check for DueChecks. Committed messages
//     have none, so they pay for no check index.
//   - kite_msg_dedup: (message_id, topic) → seq, until_ns, indexed by
//     until_ns for the purge.
//   - kite_msg_dlq: KiteQ's dead-letter table: an auto-increment id, the
//     columns of kite_msg_{t}, and group_id, reason, dead_at_ns. A message
//     may die for one group more than once (published again after its
//     window), so letters are rows, not keys; Replay takes the oldest.
//
// and {db}_0.kite_binding (group_id → doc) for store.BindingStore, shared
// by every broker on the databases.
//
// The header column holds a KiteQ protobuf Header with every required
// field (times in Unix seconds, commit as at publish), so KiteQ's tools can
// decode it; kitenats reads back only its properties, which keep their
// order. Every other value comes from its column, times at nanosecond
// precision in the *_ns columns (0 is the zero time). KiteQ's
// deliver_count, fail_groups, succ_groups and next_deliver_time are written
// as KiteQ writes a fresh message and are not kept up to date: delivery
// state lives in kite_msg_group_{t}.
//
// A stored message is its own dedup entry. Its dedup row is written only
// when it is deleted (acknowledged, dead, rolled back) while its window is
// still open, so a publish writes two rows (message and group state), not
// three. A publish that stores nothing (no group bound) writes its dedup
// row at once. Expired dedup rows are purged every flushSeconds, by the
// latest Batch.Now written, never by the wall clock.
//
// # Durability
//
// Write is one InnoDB transaction over every table it touches, across the
// shard databases, so a Batch is atomic. It is durable when COMMIT returns
// if the server runs with innodb_flush_log_at_trx_commit=1 (and
// sync_binlog=1 when binary logging is on), as scripts/mariadb.sh sets it
// up; with laxer settings a server crash may lose the last second of
// commits. The backend has no durability modes of its own.
//
// # Performance
//
// A Write is a handful of statements per table touched, not one per row:
// multi-row INSERTs, DELETE … IN and upserts, at most batchUpdateSize (or
// batchDelSize) rows each. They run as prepared statements, padded to a
// power of two rows with a repeat of their last row (a no-op), so parsing
// costs nothing per batch and each connection holds at most
// log2(batchUpdateSize)+1 statements per table and kind. Saves do not read
// the message tables first: the primary key finds a duplicate, and the
// Write is then run again, carefully. Updates lock and read all the rows
// they name in one query, apply the operations in order in memory, and
// write the difference.
//
// # Concurrency
//
// A Store is safe for concurrent use. Each Write runs at READ COMMITTED and
// locks the message rows its updates name first, so Writes that touch one
// message are serialised. A deadlock, a lock-wait timeout or a lost insert
// race rolls the transaction back and runs it again, up to 10 times.
// Several brokers may share the databases: Due, DueChecks, DeadLetters and
// Stats see only this broker's rows (kite_server); Get and updates act on
// any message by key. Close waits for the calls in progress and for the
// purge loop, the one goroutine a Store runs.
//
// # Caveats
//
//   - Names longer than their column (id 64 bytes; topic, message type and
//     groups 255) and bodies over 16 MiB are refused per message, with
//     ErrTooLarge in SaveResult.Err; dead-letter reasons are cut to 1 KiB.
//   - If the connection breaks during COMMIT the outcome is unknown: the
//     Write fails, yet may have been applied. Updates are idempotent; a
//     retried save is then reported as a duplicate.
//   - Stats and DeadLetters read from the slave when one is configured, so
//     they may lag; everything else reads the master.
//   - Stats counts with full scans of this broker's rows: for /stat, not
//     for a hot path.
//   - Times are int64 nanoseconds: years 1678 to 2262.
//   - Tables made by KiteQ's table.sh lack kitenats' columns; Open refuses
//     them rather than fail on the first write.
package mysql
