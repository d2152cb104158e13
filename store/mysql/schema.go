package mysql

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"sync"
)

// Partition h (0..15) of a message is the last character of its id read as
// hex, exactly as KiteQ hashes it; a non-hex character (or an empty id) is 0.
func partitionOf(id string) int {
	if id == "" {
		return 0
	}
	switch c := id[len(id)-1]; {
	case c >= '0' && c <= '9':
		return int(c - '0')
	case c >= 'a' && c <= 'f':
		return int(c-'a') + 10
	case c >= 'A' && c <= 'F':
		return int(c-'A') + 10
	default:
		return 0
	}
}

// ShardOf returns the database and table number of a message id under
// shardNum shards, as KiteQ computes them: with h = partitionOf(id) and
// hashNum = 16/shardNum, database {db}_{h/hashNum}, table kite_msg_{h%hashNum}.
// shardNum must divide 16.
func ShardOf(id string, shardNum int) (db, table int) {
	h, hashNum := partitionOf(id), shardSeed/shardNum
	return h / hashNum, h % hashNum
}

// names holds the fully qualified, quoted names of every table.
type names struct {
	shardNum int
	dbs      []string // `{db}_n`
	msg      [shardSeed]string
	group    [shardSeed]string
	check    [shardSeed]string
	dedup    []string // per database
	dlq      []string // per database
	binding  string
}

func newNames(prefix string, shardNum int) *names {
	n := &names{shardNum: shardNum}
	hashNum := shardSeed / shardNum
	for d := 0; d < shardNum; d++ {
		db := fmt.Sprintf("`%s_%d`", prefix, d)
		n.dbs = append(n.dbs, db)
		n.dedup = append(n.dedup, db+".`kite_msg_dedup`")
		n.dlq = append(n.dlq, db+".`kite_msg_dlq`")
	}
	for h := 0; h < shardSeed; h++ {
		db := n.dbs[h/hashNum]
		n.msg[h] = fmt.Sprintf("%s.`kite_msg_%d`", db, h%hashNum)
		n.group[h] = fmt.Sprintf("%s.`kite_msg_group_%d`", db, h%hashNum)
		n.check[h] = fmt.Sprintf("%s.`kite_msg_check_%d`", db, h%hashNum)
	}
	n.binding = n.dbs[0] + ".`kite_binding`"
	return n
}

// dbOf returns the database number of partition h.
func (n *names) dbOf(h int) int { return h / (shardSeed / n.shardNum) }

const tableOptions = ` ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin`

// msgColumns are KiteQ's columns (table.sh) followed by ours. The binary
// string types make every comparison exact, byte by byte, with no padding.
const msgColumns = "`header` MEDIUMBLOB NOT NULL," + // KiteQ protobuf Header, see encodeHeader
	"`body` MEDIUMBLOB NOT NULL," +
	"`msg_type` TINYINT(3) UNSIGNED NOT NULL," +
	"`message_id` VARBINARY(64) NOT NULL," +
	"`topic` VARBINARY(255) NOT NULL," +
	"`message_type` VARBINARY(255) NOT NULL," +
	"`publish_group` VARBINARY(255) NOT NULL," +
	"`commit` TINYINT(1) NOT NULL," +
	"`expired_time` BIGINT(13) NOT NULL," +
	"`publish_time` BIGINT(13) NOT NULL," +
	"`deliver_count` INT(11) NOT NULL DEFAULT 0," +
	"`deliver_limit` INT(11) NOT NULL," +
	"`kite_server` VARBINARY(255) NOT NULL," +
	// KiteQ's JSON group lists, never filled: VARCHAR, not TEXT, because a
	// TEXT default costs every INSERT a BLOB per row.
	"`fail_groups` VARCHAR(255) NOT NULL DEFAULT 'null'," +
	"`succ_groups` VARCHAR(255) NOT NULL DEFAULT 'null'," +
	"`next_deliver_time` BIGINT(13) NOT NULL DEFAULT 0," +
	// kitenats
	"`seq` BIGINT UNSIGNED NOT NULL," +
	"`created_ns` BIGINT NOT NULL," +
	"`expires_ns` BIGINT NOT NULL," +
	"`checks` INT NOT NULL DEFAULT 0," +
	"`next_check_ns` BIGINT NOT NULL DEFAULT 0," +
	"`dedup_until_ns` BIGINT NOT NULL DEFAULT 0,"

func msgDDL(table string) string {
	return "CREATE TABLE IF NOT EXISTS " + table + " (" + msgColumns +
		"PRIMARY KEY (`message_id`, `topic`)," +
		// The index KiteQ's recovery scan forces and table.sh forgot.
		"KEY `idx_recover` (`next_deliver_time`, `kite_server`, `expired_time`, `deliver_count`, `deliver_limit`)" +
		")" + tableOptions
}

func groupDDL(table string) string {
	return "CREATE TABLE IF NOT EXISTS " + table + " (" +
		"`message_id` VARBINARY(64) NOT NULL," +
		"`topic` VARBINARY(255) NOT NULL," +
		"`group_id` VARBINARY(255) NOT NULL," +
		"`kite_server` VARBINARY(255) NOT NULL," +
		"`attempts` INT NOT NULL," +
		"`next_attempt_ns` BIGINT NOT NULL," +
		"PRIMARY KEY (`message_id`, `topic`, `group_id`)," +
		"KEY `idx_due` (`kite_server`, `group_id`, `next_attempt_ns`, `message_id`, `topic`)" +
		")" + tableOptions
}

func dedupDDL(table string) string {
	return "CREATE TABLE IF NOT EXISTS " + table + " (" +
		"`message_id` VARBINARY(64) NOT NULL," +
		"`topic` VARBINARY(255) NOT NULL," +
		"`seq` BIGINT UNSIGNED NOT NULL," +
		"`until_ns` BIGINT NOT NULL," +
		"PRIMARY KEY (`message_id`, `topic`)," +
		"KEY `idx_until` (`until_ns`)" +
		")" + tableOptions
}

func checkDDL(table string) string {
	return "CREATE TABLE IF NOT EXISTS " + table + " (" +
		"`message_id` VARBINARY(64) NOT NULL," +
		"`topic` VARBINARY(255) NOT NULL," +
		"`kite_server` VARBINARY(255) NOT NULL," +
		"`next_check_ns` BIGINT NOT NULL," +
		"PRIMARY KEY (`message_id`, `topic`)," +
		"KEY `idx_check` (`kite_server`, `next_check_ns`, `message_id`, `topic`)" +
		")" + tableOptions
}

func dlqDDL(table string) string {
	return "CREATE TABLE IF NOT EXISTS " + table + " (" +
		"`id` BIGINT NOT NULL AUTO_INCREMENT," + msgColumns +
		"`group_id` VARBINARY(255) NOT NULL," +
		"`reason` VARBINARY(1024) NOT NULL," +
		"`dead_at_ns` BIGINT NOT NULL," +
		// A message may die for a group more than once (published again
		// after its dedup window): a letter is a row, not a key.
		"PRIMARY KEY (`id`)," +
		"KEY `idx_message_id` (`message_id`, `topic`, `group_id`)," +
		"KEY `idx_dead` (`kite_server`, `topic`, `group_id`, `dead_at_ns`, `message_id`)," +
		"KEY `idx_expired_time` (`expired_time`)" +
		")" + tableOptions
}

func bindingDDL(table string) string {
	return "CREATE TABLE IF NOT EXISTS " + table + " (" +
		"`group_id` VARBINARY(255) NOT NULL," +
		"`doc` MEDIUMBLOB NOT NULL," +
		"PRIMARY KEY (`group_id`)" +
		")" + tableOptions
}

// ddlWorkers is how many tables are created at once: DDL is fsync-bound,
// so a few connections in parallel cut Open's time several-fold.
const ddlWorkers = 8

// createSchema creates the databases and tables that are missing, then
// checks that existing tables have kitenats' columns (a database made by
// KiteQ's table.sh does not, and would fail on the first write).
func createSchema(ctx context.Context, db *sql.DB, n *names) error {
	for _, d := range n.dbs {
		q := "CREATE DATABASE IF NOT EXISTS " + d + " CHARACTER SET utf8mb4 COLLATE utf8mb4_bin"
		if _, err := db.ExecContext(ctx, q); err != nil {
			return fmt.Errorf("mysql: create database %s: %w", d, err)
		}
	}
	var ddl []string
	for h := 0; h < shardSeed; h++ {
		ddl = append(ddl, msgDDL(n.msg[h]), groupDDL(n.group[h]), checkDDL(n.check[h]))
	}
	for d := range n.dbs {
		ddl = append(ddl, dedupDDL(n.dedup[d]), dlqDDL(n.dlq[d]))
	}
	ddl = append(ddl, bindingDDL(n.binding))
	if err := execParallel(ctx, db, ddl); err != nil {
		return err
	}
	return checkSchema(ctx, db, n)
}

// execParallel runs independent statements on up to ddlWorkers connections
// and waits for all of them; it returns the first error.
func execParallel(ctx context.Context, db *sql.DB, stmts []string) error {
	work := make(chan string)
	errs := make(chan error, len(stmts))
	var wg sync.WaitGroup
	for range min(ddlWorkers, len(stmts)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for q := range work {
				if _, err := db.ExecContext(ctx, q); err != nil {
					errs <- fmt.Errorf("mysql: %.60s…: %w", q, err)
				}
			}
		}()
	}
	for _, q := range stmts {
		work <- q
	}
	close(work)
	wg.Wait()
	close(errs)
	return <-errs // nil when the channel is empty
}

// checkSchema verifies that every message and dead-letter table has the
// columns kitenats adds.
func checkSchema(ctx context.Context, db *sql.DB, n *names) error {
	var schemas []any
	var marks []string
	for _, d := range n.dbs {
		schemas = append(schemas, strings.Trim(d, "`"))
		marks = append(marks, "?")
	}
	q := "SELECT CONCAT(table_schema, '.', table_name) FROM information_schema.columns" +
		" WHERE table_schema IN (" + strings.Join(marks, ",") + ")" +
		" AND (table_name LIKE 'kite\\_msg\\_%' OR table_name = 'kite_msg_dlq')" +
		" AND table_name NOT LIKE 'kite\\_msg\\_group\\_%' AND table_name NOT LIKE 'kite\\_msg\\_check\\_%'" +
		" AND table_name <> 'kite_msg_dedup'" +
		" GROUP BY table_schema, table_name HAVING SUM(column_name = 'dedup_until_ns') = 0"
	rows, err := db.QueryContext(ctx, q, schemas...)
	if err != nil {
		return fmt.Errorf("mysql: check schema: %w", err)
	}
	defer func() { _ = rows.Close() }()
	var bad []string
	for rows.Next() {
		var t string
		if err := rows.Scan(&t); err != nil {
			return fmt.Errorf("mysql: check schema: %w", err)
		}
		bad = append(bad, t)
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("mysql: check schema: %w", err)
	}
	if len(bad) > 0 {
		return fmt.Errorf("mysql: tables %s lack kitenats' columns (created by KiteQ's table.sh?): migrate or use another db prefix", strings.Join(bad, ", "))
	}
	return nil
}
