package mysql

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	driver "github.com/go-sql-driver/mysql"

	"github.com/kitenats/kitenats/store"
)

var (
	_ store.Store        = (*Store)(nil)
	_ store.BindingStore = (*Store)(nil)
)

// Store is the MySQL/MariaDB backend. It is safe for concurrent use.
type Store struct {
	cfg     Config
	n       *names
	db      *sql.DB    // master: every write and every delivery-state read
	replica *sql.DB    // Stats and DeadLetters: the slave, or db
	stmts   *stmtCache // prepared bulk statements on db

	// lastNow is the latest Batch.Now written (Unix ns): the dedup purge
	// deletes entries that expired by then, never by the wall clock.
	lastNow atomic.Int64

	mu     sync.RWMutex // held shared by every call, exclusively by Close
	closed bool         // guarded by mu

	stop context.CancelFunc // stops the purge loop
	wg   sync.WaitGroup     // the purge loop
}

// Open connects to the master (and slave), creates the shard databases and
// tables that are missing and starts the dedup purge loop, which Close
// stops.
func Open(ctx context.Context, cfg Config) (*Store, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	db, err := openDB(ctx, &cfg, cfg.Addr)
	if err != nil {
		return nil, err
	}
	s := &Store{cfg: cfg, n: newNames(cfg.DB, cfg.ShardNum), db: db, replica: db, stmts: newStmtCache(db)}
	if err := createSchema(ctx, db, s.n); err != nil {
		_ = db.Close()
		return nil, err
	}
	if cfg.Slave != "" {
		if s.replica, err = openDB(ctx, &cfg, cfg.Slave); err != nil {
			_ = db.Close()
			return nil, err
		}
	}
	runCtx, stop := context.WithCancel(context.Background())
	s.stop = stop
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		s.purgeLoop(runCtx)
	}()
	return s, nil
}

func openDB(ctx context.Context, cfg *Config, addr string) (*sql.DB, error) {
	conn, err := driver.NewConnector(cfg.driverConfig(addr))
	if err != nil {
		return nil, fmt.Errorf("mysql: %s: %w", addr, err)
	}
	db := sql.OpenDB(conn)
	db.SetMaxOpenConns(cfg.MaxConn)
	db.SetMaxIdleConns(max(1, cfg.MaxConn/2))
	db.SetConnMaxLifetime(time.Hour)
	if err := db.PingContext(ctx); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("mysql: connect %s: %w", addr, err)
	}
	return db, nil
}

// Broker returns the name this store writes to kite_server.
func (s *Store) Broker() string { return s.cfg.Broker }

// begin marks the start of a call; it fails after Close. The caller must
// call s.mu.RUnlock when done.
func (s *Store) begin(op string) error {
	s.mu.RLock()
	if s.closed {
		s.mu.RUnlock()
		return fmt.Errorf("mysql: %s: %w", op, store.ErrClosed)
	}
	return nil
}

// Close waits for the calls in progress, stops the purge loop and closes
// the connection pools. It is idempotent.
func (s *Store) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	s.mu.Unlock()
	s.stop()
	s.wg.Wait()
	err := errors.Join(s.stmts.close(), s.db.Close())
	if s.replica != s.db {
		if rerr := s.replica.Close(); err == nil {
			err = rerr
		}
	}
	if err != nil {
		return fmt.Errorf("mysql: close: %w", err)
	}
	return nil
}

// Get implements store.Store.
func (s *Store) Get(ctx context.Context, topic, id string) (*store.Message, error) {
	if err := s.begin("get"); err != nil {
		return nil, err
	}
	defer s.mu.RUnlock()
	k := key{topic, id}
	ms, err := s.loadMessages(ctx, s.db, []key{k})
	if err != nil {
		return nil, fmt.Errorf("mysql: get %s/%s: %w", topic, id, err)
	}
	m := ms[k]
	if m == nil {
		return nil, fmt.Errorf("mysql: get %s/%s: %w", topic, id, store.ErrNotFound)
	}
	return m, nil
}

// Due implements store.Store. It returns only messages owned by this
// broker (kite_server = Config.Broker), merged from all 16 partitions. Each
// partition contributes at most limit rows, read in order from the index
// (kite_server, group_id, next_attempt_ns), so the cost does not grow with
// the backlog.
func (s *Store) Due(ctx context.Context, group string, now time.Time, limit int) ([]*store.Message, error) {
	if err := s.begin("due"); err != nil {
		return nil, err
	}
	defer s.mu.RUnlock()
	if limit <= 0 {
		return nil, nil
	}
	ms, err := s.dueMessages(ctx, s.dueSQL, limit, bin(s.cfg.Broker), bin(group), toNS(now), limit)
	if err != nil {
		return nil, fmt.Errorf("mysql: due %s: %w", group, err)
	}
	return ms, nil
}

// DueChecks implements store.Store: prepared messages of this broker whose
// next check is due, earliest first, read from the index
// (kite_server, next_check_ns) of the check tables, which hold a row per
// prepared message only.
func (s *Store) DueChecks(ctx context.Context, now time.Time, limit int) ([]*store.Message, error) {
	if err := s.begin("due checks"); err != nil {
		return nil, err
	}
	defer s.mu.RUnlock()
	if limit <= 0 {
		return nil, nil
	}
	ms, err := s.dueMessages(ctx, s.checkSQL, limit, bin(s.cfg.Broker), toNS(now), limit)
	if err != nil {
		return nil, fmt.Errorf("mysql: due checks: %w", err)
	}
	return ms, nil
}

// dueSQL selects, in partition h, the first due states of a group (args:
// broker, group, now, limit), in index order: a range scan of idx_due and a
// primary-key lookup of each message, to skip prepared ones.
func (s *Store) dueSQL(h int) string {
	return "SELECT g.`next_attempt_ns` AS at_ns, g.`message_id` AS mid, g.`topic` AS tp FROM " +
		s.n.group[h] + " g JOIN " + s.n.msg[h] + " m ON m.`message_id`=g.`message_id` AND m.`topic`=g.`topic`" +
		" WHERE g.`kite_server`=? AND g.`group_id`=? AND g.`next_attempt_ns`<=? AND m.`commit`=1" +
		" ORDER BY g.`next_attempt_ns`,g.`message_id`,g.`topic` LIMIT ?"
}

// checkSQL selects, in partition h, the first due checks (args: broker,
// now, limit), in the order of idx_check.
func (s *Store) checkSQL(h int) string {
	return "SELECT `next_check_ns` AS at_ns, `message_id` AS mid, `topic` AS tp FROM " + s.n.check[h] +
		" WHERE `kite_server`=? AND `next_check_ns`<=? ORDER BY `next_check_ns`,`message_id`,`topic` LIMIT ?"
}

// dueMessages runs partSQL (which selects (time, id, topic) rows in order,
// with partArgs) in every partition, takes the first limit rows of their
// union in order, and loads those messages. A message deleted in between
// is left out.
func (s *Store) dueMessages(ctx context.Context, partSQL func(h int) string, limit int, partArgs ...any) ([]*store.Message, error) {
	var parts []string
	var args []any
	for h := range shardSeed {
		parts = append(parts, "("+partSQL(h)+")")
		args = append(args, partArgs...)
	}
	q := strings.Join(parts, " UNION ALL ") + " ORDER BY at_ns, mid, tp LIMIT ?"
	rows, err := s.db.QueryContext(ctx, q, append(args, limit)...)
	if err != nil {
		return nil, err
	}
	defer func() { _ = rows.Close() }()
	var keys []key
	for rows.Next() {
		var at int64
		var id, topic []byte
		if err := rows.Scan(&at, &id, &topic); err != nil {
			return nil, err
		}
		keys = append(keys, key{string(topic), string(id)})
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	if len(keys) == 0 {
		return nil, nil
	}
	got, err := s.loadMessages(ctx, s.db, keys)
	if err != nil {
		return nil, err
	}
	out := make([]*store.Message, 0, len(keys))
	for _, k := range keys {
		if m := got[k]; m != nil {
			out = append(out, m)
		}
	}
	return out, nil
}
