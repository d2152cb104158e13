package mysql

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/kitenats/kitenats/store"
)

// DeadLetters implements store.Store for this broker's dead letters,
// oldest first (by time of death, then message id), read from the slave
// when one is set.
func (s *Store) DeadLetters(ctx context.Context, topic, group string, offset, limit int) ([]store.DeadLetter, int, error) {
	if err := s.begin("dead letters"); err != nil {
		return nil, 0, err
	}
	defer s.mu.RUnlock()
	offset = max(offset, 0)
	where := " WHERE `kite_server`=? AND `topic`=? AND `group_id`=?"
	filter := []any{bin(s.cfg.Broker), bin(topic), bin(group)}
	var counts, pages []string
	var countArgs, pageArgs []any
	for d := range s.cfg.ShardNum {
		counts = append(counts, "SELECT COUNT(*) AS c FROM "+s.n.dlq[d]+where)
		countArgs = append(countArgs, filter...)
		pages = append(pages, "(SELECT "+colList("", selectCols)+",`reason`,`dead_at_ns`,`id` FROM "+s.n.dlq[d]+where+
			" ORDER BY `dead_at_ns`,`message_id`,`topic`,`id` LIMIT ?)")
		pageArgs = append(pageArgs, append(filter, offset+limit)...)
	}
	var total int
	q := "SELECT COALESCE(SUM(c),0) FROM (" + strings.Join(counts, " UNION ALL ") + ") x"
	if err := s.replica.QueryRowContext(ctx, q, countArgs...).Scan(&total); err != nil {
		return nil, 0, fmt.Errorf("mysql: dead letters %s/%s: %w", topic, group, err)
	}
	if limit <= 0 || offset >= total {
		return nil, total, nil
	}
	q = strings.Join(pages, " UNION ALL ") + " ORDER BY `dead_at_ns`,`message_id`,`topic`,`id` LIMIT ? OFFSET ?"
	var out []store.DeadLetter
	err := scanRows(ctx, s.replica, q, append(pageArgs, limit, offset), func(sc scanner) error {
		var reason []byte
		var at, id int64
		m, err := scanMessage(sc, &reason, &at, &id)
		if err != nil {
			return err
		}
		out = append(out, store.DeadLetter{Message: m, Group: group, Reason: string(reason), At: fromNS(at)})
		return nil
	})
	if err != nil {
		return nil, 0, fmt.Errorf("mysql: dead letters %s/%s: %w", topic, group, err)
	}
	return out, total, nil
}

// HasDeadLetter implements store.Store: one EXISTS over the dead letter
// tables of every shard, read from the slave when one is set.
func (s *Store) HasDeadLetter(ctx context.Context, topic, group, id string) (bool, error) {
	if err := s.begin("dead letter"); err != nil {
		return false, err
	}
	defer s.mu.RUnlock()
	var parts []string
	var args []any
	for d := range s.cfg.ShardNum {
		parts = append(parts, "SELECT 1 FROM "+s.n.dlq[d]+" WHERE `kite_server`=? AND `topic`=? AND `group_id`=? AND `message_id`=?")
		args = append(args, bin(s.cfg.Broker), bin(topic), bin(group), bin(id))
	}
	var found bool
	q := "SELECT EXISTS(" + strings.Join(parts, " UNION ALL ") + ")"
	if err := s.replica.QueryRowContext(ctx, q, args...).Scan(&found); err != nil {
		return false, fmt.Errorf("mysql: dead letter %s/%s of %s: %w", topic, id, group, err)
	}
	return found, nil
}

// Stats implements store.Store with grouped COUNT queries over this
// broker's rows (a full index scan: meant for /stat, not for a hot path),
// read from the slave when one is set.
func (s *Store) Stats(ctx context.Context) (store.Stats, error) {
	if err := s.begin("stats"); err != nil {
		return store.Stats{}, err
	}
	defer s.mu.RUnlock()
	const where = " WHERE `kite_server`=?"
	var parts []string
	var args []any
	for h := range shardSeed {
		parts = append(parts,
			"SELECT 0 AS k,`topic` AS tp,CAST('' AS BINARY) AS g,COUNT(*) AS a,SUM(`commit`=0) AS b FROM "+s.n.msg[h]+where+" GROUP BY `topic`",
			"SELECT 1,`topic`,`group_id`,COUNT(*),0 FROM "+s.n.group[h]+where+" GROUP BY `topic`,`group_id`")
		args = append(args, bin(s.cfg.Broker), bin(s.cfg.Broker))
	}
	for d := range s.cfg.ShardNum {
		parts = append(parts, "SELECT 2,`topic`,`group_id`,COUNT(*),0 FROM "+s.n.dlq[d]+where+" GROUP BY `topic`,`group_id`")
		args = append(args, bin(s.cfg.Broker))
	}
	q := "SELECT k,tp,g,SUM(a),SUM(b) FROM (" + strings.Join(parts, " UNION ALL ") + ") x GROUP BY k,tp,g"
	groups := make(map[[2]string]*store.GroupStat)
	var st store.Stats
	err := scanRows(ctx, s.replica, q, args, func(sc scanner) error {
		var kind int
		var topic, group []byte
		var a, b int64
		if err := sc.Scan(&kind, &topic, &group, &a, &b); err != nil {
			return err
		}
		if kind == 0 {
			st.Topics = append(st.Topics, store.TopicStat{Topic: string(topic), Messages: a, Prepared: b})
			return nil
		}
		k := [2]string{string(topic), string(group)}
		g := groups[k]
		if g == nil {
			g = &store.GroupStat{Topic: k[0], Group: k[1]}
			groups[k] = g
		}
		if kind == 1 {
			g.Pending += a
		} else {
			g.Dead += a
		}
		return nil
	})
	if err != nil {
		return store.Stats{}, fmt.Errorf("mysql: stats: %w", err)
	}
	for _, g := range groups {
		st.Groups = append(st.Groups, *g)
	}
	sort.Slice(st.Topics, func(i, j int) bool { return st.Topics[i].Topic < st.Topics[j].Topic })
	sort.Slice(st.Groups, func(i, j int) bool {
		a, b := st.Groups[i], st.Groups[j]
		return a.Topic < b.Topic || a.Topic == b.Topic && a.Group < b.Group
	})
	return st, nil
}

// SaveBindings implements store.BindingStore. Bindings are shared by every
// broker using the same databases (table {db}_0.kite_binding).
func (s *Store) SaveBindings(ctx context.Context, group string, doc []byte) error {
	if err := s.begin("save bindings"); err != nil {
		return err
	}
	defer s.mu.RUnlock()
	var err error
	if len(doc) == 0 {
		_, err = s.db.ExecContext(ctx, "DELETE FROM "+s.n.binding+" WHERE `group_id`=?", bin(group))
	} else {
		_, err = s.db.ExecContext(ctx, "INSERT INTO "+s.n.binding+" (`group_id`,`doc`) VALUES (?,?)"+
			" ON DUPLICATE KEY UPDATE `doc`=VALUES(`doc`)", bin(group), blob(doc))
	}
	if err != nil {
		return fmt.Errorf("mysql: save bindings %s: %w", group, err)
	}
	return nil
}

// LoadBindings implements store.BindingStore.
func (s *Store) LoadBindings(ctx context.Context) (map[string][]byte, error) {
	if err := s.begin("load bindings"); err != nil {
		return nil, err
	}
	defer s.mu.RUnlock()
	out := make(map[string][]byte)
	err := scanRows(ctx, s.db, "SELECT `group_id`,`doc` FROM "+s.n.binding, nil, func(sc scanner) error {
		var g, doc []byte
		if err := sc.Scan(&g, &doc); err != nil {
			return err
		}
		out[string(g)] = doc
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("mysql: load bindings: %w", err)
	}
	return out, nil
}

// adoptChunk is how many rows one Adopt transaction moves.
const adoptChunk = 5000

// Adopt is the takeover hook for clustering: it makes this broker the
// owner of every message, pending group state, check and dead letter of
// deadBroker, so that this broker's Due, DueChecks, DeadLetters and Stats
// see them. It returns the number of messages moved. progress, when not
// nil, is called after each transaction with the rows moved so far (of
// every table).
//
// The caller must be sure deadBroker is gone (its registry session
// expired): a broker that is still running keeps delivering what it has in
// flight, and both would then deliver. Rows move in transactions of at
// most adoptChunk rows, table by table, delivery state first; a failed
// Adopt leaves some rows moved and can simply be called again. The cost is
// one pass over the dead broker's rows and one over the message tables.
func (s *Store) Adopt(ctx context.Context, deadBroker string, progress func(rows int64)) (int, error) {
	if err := s.begin("adopt"); err != nil {
		return 0, err
	}
	defer s.mu.RUnlock()
	switch deadBroker {
	case "":
		return 0, errors.New("mysql: adopt: empty broker name")
	case s.cfg.Broker:
		return 0, fmt.Errorf("mysql: adopt %q: that is this broker", deadBroker)
	}
	return s.adopt(ctx, deadBroker, adoptChunk, progress)
}

// adopt is Adopt in transactions of chunk rows.
func (s *Store) adopt(ctx context.Context, deadBroker string, chunk int, progress func(int64)) (int, error) {
	var rows int64
	report := func(n int64) {
		rows += n
		if progress != nil && n > 0 {
			progress(rows)
		}
	}
	// These tables have an index that starts with kite_server: each
	// chunk is a range scan, and moved rows leave the range.
	var indexed []string
	for h := range shardSeed {
		indexed = append(indexed, s.n.group[h], s.n.check[h])
	}
	for _, t := range append(indexed, s.n.dlq...) {
		for {
			n, err := s.adoptExec(ctx, "UPDATE "+t+" SET `kite_server`=? WHERE `kite_server`=? LIMIT ?", deadBroker, chunk)
			if err != nil {
				return 0, fmt.Errorf("mysql: adopt %q: %s: %w", deadBroker, t, err)
			}
			report(n)
			if n < int64(chunk) {
				break
			}
		}
	}
	var moved int64
	for _, t := range s.n.msg {
		n, err := s.adoptMessages(ctx, t, deadBroker, chunk, report)
		moved += n
		if err != nil {
			return int(moved), fmt.Errorf("mysql: adopt %q: %s: %w", deadBroker, t, err)
		}
	}
	return int(moved), nil
}

// adoptMessages moves the messages of table t, which has no kite_server
// index: it walks the primary key in ranges of chunk ids.
func (s *Store) adoptMessages(ctx context.Context, t, deadBroker string, chunk int, report func(int64)) (int64, error) {
	var moved int64
	from, op := "", ">=" // the first range includes the empty id
	for {
		var to sql.NullString
		q := "SELECT MAX(`message_id`) FROM (SELECT `message_id` FROM " + t +
			" WHERE `message_id`" + op + "? ORDER BY `message_id` LIMIT ?) x"
		if err := s.db.QueryRowContext(ctx, q, bin(from), chunk).Scan(&to); err != nil {
			return moved, err
		}
		if !to.Valid {
			return moved, nil
		}
		q = "UPDATE " + t + " SET `kite_server`=? WHERE `kite_server`=? AND `message_id`" + op + "? AND `message_id`<=?"
		n, err := s.adoptExec(ctx, q, deadBroker, bin(from), bin(to.String))
		moved += n
		report(n)
		if err != nil {
			return moved, err
		}
		from, op = to.String, ">"
	}
}

// adoptExec runs an UPDATE whose first two arguments are this broker and
// the dead one, and returns the rows it moved.
func (s *Store) adoptExec(ctx context.Context, q, deadBroker string, more ...any) (int64, error) {
	res, err := s.db.ExecContext(ctx, q, append([]any{bin(s.cfg.Broker), bin(deadBroker)}, more...)...)
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}

// purgeRounds bounds the DELETEs of one purge per database, so a huge
// backlog of expired entries is worked off over several intervals.
const purgeRounds = 100

// purgeLoop deletes expired dedup entries every FlushInterval until ctx
// is cancelled. Errors are logged: the next round tries again.
func (s *Store) purgeLoop(ctx context.Context) {
	t := time.NewTicker(s.cfg.FlushInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if err := s.purgeDedup(ctx); err != nil && ctx.Err() == nil {
			s.cfg.Logger.Warn("mysql: purge dedup entries", "store", "mysql", "err", err)
		}
	}
}

// purgeDedup deletes dedup entries that expired by the latest batch time.
func (s *Store) purgeDedup(ctx context.Context) error {
	now := s.lastNow.Load()
	if now == 0 {
		return nil
	}
	for _, t := range s.n.dedup {
		for range purgeRounds {
			res, err := s.db.ExecContext(ctx, "DELETE FROM "+t+" WHERE `until_ns`<=? LIMIT ?", now, s.cfg.BatchDelSize)
			if err != nil {
				return fmt.Errorf("%s: %w", t, err)
			}
			if n, err := res.RowsAffected(); err != nil || n < int64(s.cfg.BatchDelSize) {
				break
			}
		}
	}
	return nil
}
