package mysql

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/kitenats/kitenats/store"
)

// maxAttempts bounds how often one Write is run again after a deadlock, a
// lock-wait timeout or a lost insert race.
const maxAttempts = 10

// Write implements store.Store. The whole batch is one InnoDB transaction
// across the shard databases (one server, fully qualified table names), so
// it is atomic, and durable once COMMIT returns under
// innodb_flush_log_at_trx_commit=1. A transaction that InnoDB aborts
// (deadlock, lock wait timeout) or that lost an insert race is rolled back
// and run again, up to maxAttempts times.
func (s *Store) Write(ctx context.Context, b *store.Batch) ([]store.SaveResult, error) {
	if err := s.begin("write"); err != nil {
		return nil, err
	}
	defer s.mu.RUnlock()
	if len(b.Saves) == 0 && len(b.Updates) == 0 {
		return []store.SaveResult{}, nil
	}
	var err error
	for attempt := range maxAttempts {
		var res []store.SaveResult
		res, err = s.writeOnce(ctx, b, attempt > 0)
		if err == nil {
			s.noteNow(b.Now)
			return res, nil
		}
		if !retryable(err) || ctx.Err() != nil {
			break
		}
		backoff := time.Duration(1<<min(attempt, 6)) * time.Millisecond
		select {
		case <-ctx.Done():
		case <-time.After(backoff):
		}
	}
	return nil, fmt.Errorf("mysql: write: %w", err)
}

// noteNow records the latest batch time for the dedup purge.
func (s *Store) noteNow(now time.Time) {
	ns := toNS(now)
	for {
		old := s.lastNow.Load()
		if ns <= old || s.lastNow.CompareAndSwap(old, ns) {
			return
		}
	}
}

// writeOnce runs the batch in one transaction; careful makes saves read
// the message tables before inserting (see saveAll).
func (s *Store) writeOnce(ctx context.Context, b *store.Batch, careful bool) ([]store.SaveResult, error) {
	tx, err := s.db.BeginTx(ctx, &sql.TxOptions{Isolation: sql.LevelReadCommitted})
	if err != nil {
		return nil, err
	}
	defer func() { _ = tx.Rollback() }() // a no-op after Commit
	res, err := s.saveAll(ctx, tx, b, careful)
	if err != nil {
		return nil, err
	}
	if err := s.applyUpdates(ctx, tx, b.Now, b.Updates); err != nil {
		return nil, err
	}
	if err := tx.Commit(); err != nil {
		return nil, err
	}
	return res, nil
}

// existing is what the store already holds for a key being saved.
type existing struct {
	stored   bool // a message row exists
	seq      uint64
	hasDedup bool // a dedup row exists, live or expired
	dedupSeq uint64
	until    int64
}

// saveAll inserts the batch's saves with multi-row INSERTs: the messages,
// their group states and, for prepared ones, their check rows. A stored
// message is its own dedup entry: its dedup row is written only when it is
// deleted within the window (flush.go), so a save costs two rows, not
// three. A save that stores nothing (no groups) writes its dedup row now.
//
// Duplicates are decided from one read of the dedup tables (and, for saves
// that store nothing or when careful, of the message tables). A message
// INSERT that adds fewer rows than planned met a stored message, or lost a
// race with a concurrent Write: the transaction is then rolled back and run
// again with careful set, which reports the duplicate. Duplicates are rare
// (a producer's retry), so the common batch skips reading the message
// tables, whose primary key checks the same thing anyway.
func (s *Store) saveAll(ctx context.Context, tx *sql.Tx, b *store.Batch, careful bool) ([]store.SaveResult, error) {
	res := make([]store.SaveResult, len(b.Saves))
	if len(b.Saves) == 0 {
		return res, nil
	}
	now, until := toNS(b.Now), toNS(b.Now.Add(b.DedupWindow))
	ex, err := s.existing(ctx, tx, b.Saves, now, careful)
	if err != nil {
		return nil, err
	}
	var w saveRows
	w.dedup = make([][][]any, s.cfg.ShardNum)
	w.expired = make([][]key, s.cfg.ShardNum)
	decided := make(map[key]uint64, len(b.Saves))
	for i, m := range b.Saves {
		if err := checkMessage(m); err != nil {
			res[i].Err = err
			continue
		}
		k := key{m.Topic, m.ID}
		if seq, ok := decided[k]; ok {
			res[i] = store.SaveResult{Duplicate: true, Seq: seq}
			continue
		}
		if seq, dup := ex[k].duplicate(now); dup {
			decided[k] = seq
			res[i] = store.SaveResult{Duplicate: true, Seq: seq}
			continue
		}
		decided[k] = m.Seq
		res[i] = store.SaveResult{Seq: m.Seq}
		w.add(s, m, b.Now, until, ex[k].hasDedup)
	}
	return res, s.insertSaves(ctx, tx, now, &w)
}

// existing reads what the store holds for the keys of saves.
func (s *Store) existing(ctx context.Context, tx *sql.Tx, saves []*store.Message, now int64, careful bool) (map[key]existing, error) {
	keys := make([]key, len(saves))
	readMsg := make([]bool, len(saves))
	for i, m := range saves {
		keys[i] = key{m.Topic, m.ID}
		// Optimistic: a save that stores a message learns that one is
		// stored already from its INSERT adding no row, and the Write is
		// then run again with careful set. One that stores nothing has
		// no INSERT to tell it, so it reads the message table first.
		readMsg[i] = careful || !stores(m)
	}
	ex, err := s.lookupSaves(ctx, tx, keys, readMsg)
	if err != nil {
		return nil, err
	}
	// A live dedup entry makes a duplicate, but of the stored message if
	// there is one (a replay can bring back an older publish of the id),
	// whose seq is then the answer: read those few rows too.
	var recheck []key
	var all []bool
	for i, k := range keys {
		if e := ex[k]; !readMsg[i] && e.hasDedup && e.until > now && !e.stored {
			recheck, all = append(recheck, k), append(all, true)
		}
	}
	if len(recheck) > 0 {
		again, err := s.lookupSaves(ctx, tx, recheck, all)
		if err != nil {
			return nil, err
		}
		for k, e := range again {
			ex[k] = e
		}
	}
	return ex, nil
}

// duplicate reports whether a save of the key is a duplicate at now, and
// the original's seq.
func (e existing) duplicate(now int64) (uint64, bool) {
	switch {
	case e.stored:
		return e.seq, true
	case e.hasDedup && e.until > now:
		return e.dedupSeq, true
	default:
		return 0, false
	}
}

// saveRows are the rows a batch's saves insert, by database or partition.
type saveRows struct {
	dedup   [][][]any // by database
	expired [][]key   // by database: expired dedup rows to delete first
	msg     [shardSeed][][]any
	group   [shardSeed][][]any
	check   [shardSeed][][]any
}

func (w *saveRows) add(s *Store, m *store.Message, now time.Time, until int64, hasDedup bool) {
	h := partitionOf(m.ID)
	if !stores(m) {
		// Nobody is to receive it: only the dedup entry is kept.
		d := s.n.dbOf(h)
		if hasDedup {
			w.expired[d] = append(w.expired[d], key{m.Topic, m.ID})
		}
		w.dedup[d] = append(w.dedup[d], []any{bin(m.ID), bin(m.Topic), m.Seq, until})
		return
	}
	w.msg[h] = append(w.msg[h], messageRow(m, now, until, s.cfg.Broker))
	seen := make(map[string]bool, len(m.Groups))
	for _, g := range m.Groups {
		if !seen[g.Group] {
			seen[g.Group] = true
			w.group[h] = append(w.group[h], groupRow(m.ID, m.Topic, s.cfg.Broker, g))
		}
	}
	if m.Prepared {
		w.check[h] = append(w.check[h], []any{bin(m.ID), bin(m.Topic), bin(s.cfg.Broker), toNS(m.NextCheck)})
	}
}

// stores reports whether saving m stores a message, not just its dedup
// entry: someone is to receive it, or it is prepared.
func stores(m *store.Message) bool { return len(m.Groups) > 0 || m.Prepared }

func groupRow(id, topic, broker string, g store.GroupState) []any {
	return []any{bin(id), bin(topic), bin(g.Group), bin(broker), g.Attempts, toNS(g.NextAttempt)}
}

const (
	groupInsert = " (`message_id`,`topic`,`group_id`,`kite_server`,`attempts`,`next_attempt_ns`) VALUES "
	groupUpsert = " ON DUPLICATE KEY UPDATE `attempts`=VALUES(`attempts`),`next_attempt_ns`=VALUES(`next_attempt_ns`)"
	checkInsert = " (`message_id`,`topic`,`kite_server`,`next_check_ns`) VALUES "
	checkUpsert = " ON DUPLICATE KEY UPDATE `next_check_ns`=VALUES(`next_check_ns`)"
	dedupInsert = " (`message_id`,`topic`,`seq`,`until_ns`) VALUES "
)

func (s *Store) insertSaves(ctx context.Context, tx *sql.Tx, now int64, w *saveRows) error {
	for d, ks := range w.expired {
		if len(ks) == 0 {
			continue
		}
		f, args := idFilter(ks)
		q := "DELETE FROM " + s.n.dedup[d] + " WHERE " + f + " AND `until_ns`<=?"
		if _, err := tx.ExecContext(ctx, q, append(args, now)...); err != nil {
			return fmt.Errorf("purge dedup: %w", err)
		}
	}
	for d, rows := range w.dedup {
		if err := s.insertNew(ctx, tx, "INSERT INTO "+s.n.dedup[d]+dedupInsert, 4, rows); err != nil {
			return fmt.Errorf("insert dedup: %w", err)
		}
	}
	for h := range shardSeed {
		head := "INSERT INTO " + s.n.msg[h] + " (" + colList("", insertCols) + ") VALUES "
		if err := s.insertNew(ctx, tx, head, len(insertCols), w.msg[h]); err != nil {
			return fmt.Errorf("insert messages: %w", err)
		}
		if err := s.insertNew(ctx, tx, "INSERT INTO "+s.n.group[h]+groupInsert, 6, w.group[h]); err != nil {
			return fmt.Errorf("insert groups: %w", err)
		}
		if err := s.insertNew(ctx, tx, "INSERT INTO "+s.n.check[h]+checkInsert, 4, w.check[h]); err != nil {
			return fmt.Errorf("insert checks: %w", err)
		}
	}
	return nil
}

// noopUpsert makes a repeated row, or one a concurrent Write inserted
// first, change nothing and count as no row affected.
const noopUpsert = " ON DUPLICATE KEY UPDATE `message_id`=`message_id`"

// insertNew inserts rows whose keys were absent when the batch was
// planned. If fewer rows went in, a concurrent Write inserted one of the
// keys meanwhile: the Write is then run again, and sees it.
func (s *Store) insertNew(ctx context.Context, tx *sql.Tx, head string, width int, rows [][]any) error {
	n, err := execChunks(ctx, tx, s.stmts, rows, s.cfg.BatchUpdateSize, valuesRows(head, width, noopUpsert))
	if err != nil {
		return err
	}
	if int(n) != len(rows) {
		return fmt.Errorf("%d of %d rows were new: %w", n, len(rows), errConflict)
	}
	return nil
}

// lookupChunk bounds the ids of one lookup statement.
const lookupChunk = 1000

// lookupSaves reads the dedup entries of keys and, for those with readMsg
// set, whether a message is stored.
func (s *Store) lookupSaves(ctx context.Context, tx *sql.Tx, keys []key, readMsg []bool) (map[key]existing, error) {
	out := make(map[key]existing, len(keys))
	for start := 0; start < len(keys); start += lookupChunk {
		end := min(start+lookupChunk, len(keys))
		want := make(map[key]bool, end-start)
		var msgKeys []key
		for i, k := range keys[start:end] {
			want[k] = true
			if readMsg[start+i] {
				msgKeys = append(msgKeys, k)
			}
		}
		byDB := make(map[int][]key)
		for _, k := range keys[start:end] {
			d := s.n.dbOf(partitionOf(k.id))
			byDB[d] = append(byDB[d], k)
		}
		var parts []string
		var args []any
		for d, ks := range byDB {
			f, a := idFilter(ks)
			parts = append(parts, "SELECT 0,`message_id`,`topic`,`seq`,`until_ns` FROM "+s.n.dedup[d]+" WHERE "+f)
			args = append(args, a...)
		}
		for h, ks := range byPartition(msgKeys) {
			f, a := idFilter(ks)
			parts = append(parts, "SELECT 1,`message_id`,`topic`,`seq`,0 FROM "+s.n.msg[h]+" WHERE "+f)
			args = append(args, a...)
		}
		if err := s.scanExisting(ctx, tx, strings.Join(parts, " UNION ALL "), args, want, out); err != nil {
			return nil, err
		}
	}
	return out, nil
}

func (s *Store) scanExisting(ctx context.Context, tx *sql.Tx, q string, args []any, want map[key]bool, out map[key]existing) error {
	rows, err := tx.QueryContext(ctx, q, args...)
	if err != nil {
		return fmt.Errorf("look up saves: %w", err)
	}
	defer func() { _ = rows.Close() }()
	for rows.Next() {
		var stored bool
		var id, topic []byte
		var seq uint64
		var until int64
		if err := rows.Scan(&stored, &id, &topic, &seq, &until); err != nil {
			return fmt.Errorf("look up saves: %w", err)
		}
		k := key{string(topic), string(id)}
		if !want[k] {
			continue
		}
		e := out[k]
		if stored {
			e.stored, e.seq = true, seq
		} else {
			e.hasDedup, e.dedupSeq, e.until = true, seq, until
		}
		out[k] = e
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("look up saves: %w", err)
	}
	return nil
}

// ErrTooLarge is set in SaveResult.Err for a message that does not fit the
// schema: a name longer than its column or a body over 16 MiB. Nothing of
// that message is stored; the rest of the batch is.
var ErrTooLarge = errors.New("mysql: message does not fit the schema")

func checkMessage(m *store.Message) error {
	tooLong := func(what string, n, limit int) error {
		return fmt.Errorf("%w: %s is %d bytes, over %d", ErrTooLarge, what, n, limit)
	}
	switch {
	case len(m.ID) > maxIDLen:
		return tooLong("id", len(m.ID), maxIDLen)
	case len(m.Topic) > maxNameLen:
		return tooLong("topic", len(m.Topic), maxNameLen)
	case len(m.MessageType) > maxNameLen:
		return tooLong("message type", len(m.MessageType), maxNameLen)
	case len(m.Group) > maxNameLen:
		return tooLong("publishing group", len(m.Group), maxNameLen)
	case len(m.Body) > maxBodyLen:
		return tooLong("body", len(m.Body), maxBodyLen)
	}
	for _, g := range m.Groups {
		if len(g.Group) > maxNameLen {
			return tooLong("group "+g.Group[:32]+"…", len(g.Group), maxNameLen)
		}
	}
	return nil
}
