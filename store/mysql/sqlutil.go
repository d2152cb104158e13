package mysql

import (
	"context"
	"database/sql"
	"errors"
	"math"
	"math/bits"
	"strings"
	"sync"
	"time"

	driver "github.com/go-sql-driver/mysql"
)

// key identifies a stored message.
type key struct{ topic, id string }

// execer and queryer are what *sql.DB and *sql.Tx have in common.
type execer interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
}

type queryer interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

// bin and blob pass binary values as strings. The connection's character
// set is binary (see driverConfig), so a string argument's bytes are taken
// as they are, whether interpolated as a '…' literal or sent to a prepared
// statement: no conversion, no validation, and no _binary introducer,
// which the driver writes before every interpolated []byte and the
// server's parser pays for.
func bin(s string) string { return s }

func blob(b []byte) string { return string(b) }

// Times are stored as Unix nanoseconds in BIGINT columns. The zero time is
// stored as 0 (so the Unix epoch itself reads back as the zero time), and
// times outside the int64 nanosecond range (years 1678..2262) are clamped.
var (
	minTime = time.Unix(0, math.MinInt64+1)
	maxTime = time.Unix(0, math.MaxInt64)
)

func toNS(t time.Time) int64 {
	switch {
	case t.IsZero():
		return 0
	case t.Before(minTime):
		return minTime.UnixNano()
	case t.After(maxTime):
		return maxTime.UnixNano()
	default:
		return t.UnixNano()
	}
}

func fromNS(ns int64) time.Time {
	if ns == 0 {
		return time.Time{}
	}
	return time.Unix(0, ns).UTC()
}

// marks returns n comma-separated placeholders in parentheses: "(?,?,?)".
func marks(n int) string {
	if n <= 0 {
		return "()"
	}
	return "(" + strings.Repeat("?,", n-1) + "?)"
}

// stmtBudget bounds the bytes of one multi-row statement, well under the
// 16 MiB max_allowed_packet MariaDB ships with. A single bigger row still
// goes alone: the driver then falls back to a prepared statement.
const stmtBudget = 4 << 20

func rowSize(row []any) int {
	n := 4
	for _, v := range row {
		switch v := v.(type) {
		case string:
			n += 2*len(v) + 4
		default:
			n += 21
		}
	}
	return n
}

// execChunks executes rows in statements of at most maxRows rows and about
// stmtBudget bytes; build(n) returns the statement for n rows, whose
// arguments are the rows' values in order. It returns the rows affected.
//
// With a statement cache, chunks run as prepared statements: a multi-row
// statement is then parsed once per connection instead of once per batch
// (parsing the literals was a third of the server's time). To bound the
// shapes, and so the prepared statements, to log2(maxRows)+1 per table and
// kind, a chunk is padded to a power of two rows by repeating its last row:
// the caller passes a cache only for statements that a repeated row does
// not change (DELETE … IN, UPDATE … JOIN, INSERT … ON DUPLICATE KEY UPDATE
// with a no-op or idempotent update), so affected counts stay exact.
func execChunks(ctx context.Context, ex execer, ps *stmtCache, rows [][]any, maxRows int, build func(n int) string) (int64, error) {
	if ps != nil {
		maxRows = 1 << (bits.Len(uint(max(maxRows, 1))) - 1) // padding must not pass maxRows
	}
	var affected int64
	for start := 0; start < len(rows); {
		n, size := chunkLen(rows[start:], maxRows)
		chunk := rows[start : start+n]
		shape, cache := n, ps
		if size > stmtBudget/2 {
			cache = nil // big rows: repeating them is not worth a prepared statement
		}
		if cache != nil {
			shape = 1 << bits.Len(uint(n-1))
		}
		args := make([]any, 0, shape*len(chunk[0]))
		for _, r := range chunk {
			args = append(args, r...)
		}
		for range shape - n {
			args = append(args, chunk[n-1]...)
		}
		res, err := cache.exec(ctx, ex, build(shape), args)
		if err != nil {
			return affected, err
		}
		k, err := res.RowsAffected()
		if err != nil {
			return affected, err
		}
		affected += k
		start += n
	}
	return affected, nil
}

// chunkLen returns how many of rows the next statement takes, at most
// maxRows and about stmtBudget bytes but at least one, and their size.
func chunkLen(rows [][]any, maxRows int) (n, size int) {
	for n < min(len(rows), maxRows) {
		rs := rowSize(rows[n])
		if n > 0 && size+rs > stmtBudget {
			break
		}
		size += rs
		n++
	}
	return n, size
}

// valuesRows returns "head (?,…),(?,…)… tail" for n rows of width columns.
func valuesRows(head string, width int, tail string) func(n int) string {
	row := marks(width)
	return func(n int) string {
		var sb strings.Builder
		sb.Grow(len(head) + len(tail) + n*(len(row)+1))
		sb.WriteString(head)
		for i := range n {
			if i > 0 {
				sb.WriteByte(',')
			}
			sb.WriteString(row)
		}
		sb.WriteString(tail)
		return sb.String()
	}
}

// derived returns a derived table of n rows with the given column names,
// "(SELECT ? AS `a`, ? AS `b` UNION ALL SELECT ?, ? …)", for joins that
// update or copy many rows in one statement.
func derived(cols []string, n int) string {
	var sb strings.Builder
	sb.WriteString("(SELECT ")
	for i, c := range cols {
		if i > 0 {
			sb.WriteByte(',')
		}
		sb.WriteString("? AS `" + c + "`")
	}
	rest := " UNION ALL SELECT " + strings.Repeat("?,", len(cols)-1) + "?"
	for i := 1; i < n; i++ {
		sb.WriteString(rest)
	}
	sb.WriteByte(')')
	return sb.String()
}

// errConflict is a write that lost a race with a concurrent one; the
// whole transaction is retried.
var errConflict = errors.New("concurrent write conflict")

// MySQL error numbers we act on.
const (
	erLockWaitTimeout  = 1205
	erLockDeadlock     = 1213
	erDupEntry         = 1062
	erMaxPreparedStmts = 1461
)

// retryable reports whether a failed transaction may simply be run again.
// Deadlocks and lock-wait timeouts are InnoDB's normal answer to
// concurrent writers. errConflict and a duplicate key mean a concurrent
// Write inserted a row between our read and our write: run again, the
// fresh read sees it (a save is then reported as a duplicate). Anything
// else is a real failure.
func retryable(err error) bool {
	if errors.Is(err, errConflict) {
		return true
	}
	var me *driver.MySQLError
	if errors.As(err, &me) {
		switch me.Number {
		case erLockWaitTimeout, erLockDeadlock, erDupEntry:
			return true
		}
	}
	return false
}

// stmtCache holds the prepared statements of the bulk write paths, keyed
// by their text. database/sql prepares each on a connection the first time
// a transaction on that connection runs it, and closes them with the pool.
//
// A statement that cannot be prepared (the server's
// max_prepared_stmt_count is reached, say) is remembered as failed and run
// with interpolated arguments instead: slower, never wrong.
type stmtCache struct {
	db *sql.DB

	mu     sync.Mutex           // guards the fields below
	stmts  map[string]*sql.Stmt // nil value: preparing failed
	closed bool
}

func newStmtCache(db *sql.DB) *stmtCache {
	return &stmtCache{db: db, stmts: make(map[string]*sql.Stmt)}
}

// get returns the prepared statement for q, or nil when it has none. The
// statement is prepared outside the lock: two callers may both prepare
// it, and the loser closes its copy.
func (c *stmtCache) get(ctx context.Context, q string) *sql.Stmt {
	c.mu.Lock()
	st, ok := c.stmts[q]
	closed := c.closed
	c.mu.Unlock()
	if ok || closed {
		return st
	}
	st, err := c.db.PrepareContext(ctx, q)
	var me *driver.MySQLError
	if err != nil && !errors.As(err, &me) {
		return nil // the connection or ctx failed, not the statement: try again next time
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if old, ok := c.stmts[q]; ok || c.closed {
		if st != nil {
			_ = st.Close()
		}
		return old
	}
	c.stmts[q] = st // nil when the server refused it: never try again
	return st
}

// exec runs q with args on ex: as a prepared statement when ex is a
// transaction and q could be prepared, otherwise as a plain statement. A
// nil cache always runs plain statements.
func (c *stmtCache) exec(ctx context.Context, ex execer, q string, args []any) (sql.Result, error) {
	tx, ok := ex.(*sql.Tx)
	if c == nil || !ok {
		return ex.ExecContext(ctx, q, args...)
	}
	st := c.get(ctx, q)
	if st == nil {
		return ex.ExecContext(ctx, q, args...)
	}
	ts := tx.StmtContext(ctx, st)
	defer func() { _ = ts.Close() }()
	res, err := ts.ExecContext(ctx, args...)
	var me *driver.MySQLError
	if errors.As(err, &me) && me.Number == erMaxPreparedStmts {
		// This connection could not prepare it; the transaction is intact.
		return ex.ExecContext(ctx, q, args...)
	}
	return res, err
}

// close closes every prepared statement; later calls run plain statements.
func (c *stmtCache) close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closed = true
	var errs []error
	for _, st := range c.stmts {
		if st != nil {
			errs = append(errs, st.Close())
		}
	}
	c.stmts = nil
	return errors.Join(errs...)
}
