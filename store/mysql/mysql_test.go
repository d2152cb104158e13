package mysql

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	driver "github.com/go-sql-driver/mysql"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/kitenats/kitenats/store"
	"github.com/kitenats/kitenats/store/storetest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// addrEnv names the server the tests use: host:port, user root, empty
// password. Start one with `scripts/mariadb.sh start /tmp/kn-mysql`.
const addrEnv = "KITENATS_MYSQL_ADDR"

// testAddr returns the server address, skips the test when none is set,
// and fails it in CI, where the MySQL tests must never be skipped.
func testAddr(t testing.TB) string {
	t.Helper()
	addr := os.Getenv(addrEnv)
	if addr == "" {
		if os.Getenv("CI") != "" {
			t.Fatalf("%s is not set: CI must run the MySQL store tests (scripts/mariadb.sh start DIR 13306; %s=127.0.0.1:13306)", addrEnv, addrEnv)
		}
		t.Skipf("%s is not set: start a server with `scripts/mariadb.sh start /tmp/kn-mysql` and export %s=127.0.0.1:13306", addrEnv, addrEnv)
	}
	return addr
}

var dbCounter atomic.Int64

// testConfig returns a Config with a database prefix no other test uses and
// registers the removal of its databases.
func testConfig(t testing.TB, broker string) Config {
	t.Helper()
	addr := testAddr(t)
	cfg := Config{
		Addr:   addr,
		DB:     fmt.Sprintf("kntest%d_%d", os.Getpid(), dbCounter.Add(1)),
		Broker: broker,
	}
	cfg.setDefaults()
	t.Cleanup(func() { dropAll(t, cfg) })
	return cfg
}

// dropAll drops the databases of cfg, tables first and in parallel: DROP
// DATABASE alone does them one by one, several times slower.
func dropAll(t testing.TB, cfg Config) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	db := adminDB(t, cfg.Addr)
	defer func() { _ = db.Close() }()
	n := newNames(cfg.DB, cfg.ShardNum)
	var drops []string
	for h := range shardSeed {
		drops = append(drops, "DROP TABLE IF EXISTS "+n.msg[h], "DROP TABLE IF EXISTS "+n.group[h])
	}
	for d := range n.dbs {
		drops = append(drops, "DROP TABLE IF EXISTS "+n.dedup[d], "DROP TABLE IF EXISTS "+n.dlq[d])
	}
	drops = append(drops, "DROP TABLE IF EXISTS "+n.binding)
	if err := execParallel(ctx, db, drops); err != nil {
		t.Errorf("drop tables: %v", err)
	}
	for _, d := range n.dbs {
		if _, err := db.ExecContext(ctx, "DROP DATABASE IF EXISTS "+d); err != nil {
			t.Errorf("drop database %s: %v", d, err)
		}
	}
}

// adminDB opens a plain connection pool to addr as root.
func adminDB(t testing.TB, addr string) *sql.DB {
	t.Helper()
	c := Config{Addr: addr, Username: "root", MaxConn: ddlWorkers}
	conn, err := driver.NewConnector(c.driverConfig(addr))
	require.NoError(t, err)
	return sql.OpenDB(conn)
}

// openTest opens a store for cfg and registers its Close.
func openTest(t testing.TB, cfg Config) *Store {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := Open(ctx, cfg)
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func TestStoreConformanceMySQL(t *testing.T) {
	testAddr(t)
	storetest.Run(t, storetest.Factory{
		New: func(t testing.TB) (store.Store, func() store.Store) {
			cfg := testConfig(t, "broker-a")
			var s store.Store = openTest(t, cfg)
			reopen := func() store.Store {
				require.NoError(t, s.Close())
				s = openTest(t, cfg)
				return s
			}
			return s, reopen
		},
	})
}

// TestStoreMySQLSmallBatches runs the suite with one row per statement, so
// every multi-row statement is split into chunks.
func TestStoreMySQLSmallBatches(t *testing.T) {
	t.Parallel()
	cfg := testConfig(t, "broker-a")
	cfg.BatchUpdateSize, cfg.BatchDelSize, cfg.ShardNum = 1, 1, 2
	s := openTest(t, cfg)
	ctx := context.Background()
	now := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	var saves []*store.Message
	var acks []store.Update
	for i := range 40 {
		m := testMessage(fmt.Sprintf("%032x", i), "trade", now, "s-a", "s-b")
		saves = append(saves, m)
		acks = append(acks, store.Update{Op: store.OpAck, Topic: m.Topic, ID: m.ID, Group: "s-a"})
	}
	_, err := s.Write(ctx, &store.Batch{Now: now, DedupWindow: time.Minute, Saves: saves})
	require.NoError(t, err)
	_, err = s.Write(ctx, &store.Batch{Now: now, Updates: acks})
	require.NoError(t, err)
	due, err := s.Due(ctx, "s-b", now, 100)
	require.NoError(t, err)
	require.Len(t, due, 40)
	due, err = s.Due(ctx, "s-a", now, 100)
	require.NoError(t, err)
	require.Empty(t, due)
}

// TestStoreMySQLTooLarge checks that an oversized message is refused alone.
func TestStoreMySQLTooLarge(t *testing.T) {
	t.Parallel()
	s := openTest(t, testConfig(t, "broker-a"))
	now := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	ok := testMessage(fmt.Sprintf("%032x", 1), "trade", now, "s-a")
	big := testMessage(fmt.Sprintf("%032x", 2), strings.Repeat("t", 256), now, "s-a")
	res, err := s.Write(context.Background(), &store.Batch{Now: now, Saves: []*store.Message{ok, big}})
	require.NoError(t, err)
	require.NoError(t, res[0].Err)
	require.ErrorIs(t, res[1].Err, ErrTooLarge)
	_, err = s.Get(context.Background(), ok.Topic, ok.ID)
	require.NoError(t, err)
}

// TestStoreMySQLBinaryNames checks that names are bytes: invalid UTF-8
// reads back as written, and a trailing space makes another name (a PAD
// SPACE collation would compare "a" and "a " equal).
func TestStoreMySQLBinaryNames(t *testing.T) {
	t.Parallel()
	s := openTest(t, testConfig(t, "broker-a"))
	ctx := context.Background()
	now := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	id := fmt.Sprintf("%032x", 7)
	var saves []*store.Message
	for _, tp := range []string{"a", "a ", "\xff\xfe\x00"} {
		m := testMessage(id, tp, now, "g\xff", "g ")
		m.Properties = []store.Property{{Key: "\xc3", Value: "\x80 "}}
		saves = append(saves, m)
	}
	res, err := s.Write(ctx, &store.Batch{Now: now, DedupWindow: time.Minute, Saves: saves})
	require.NoError(t, err)
	for i, m := range saves {
		require.False(t, res[i].Duplicate, "%q", m.Topic)
		got, err := s.Get(ctx, m.Topic, m.ID)
		require.NoError(t, err)
		require.Equal(t, normalize(m), normalize(got))
	}
	_, err = s.Write(ctx, &store.Batch{Now: now, Updates: []store.Update{{Op: store.OpAck, Topic: "a ", ID: id, Group: "g "}}})
	require.NoError(t, err)
	for group, want := range map[string]int{"g\xff": 3, "g ": 2, "g": 0} {
		due, err := s.Due(ctx, group, now, 10)
		require.NoError(t, err)
		require.Len(t, due, want, "group %q", group)
	}
}

// TestStoreMySQLDedupPurge checks that the purge deletes only entries that
// expired by the latest batch time.
func TestStoreMySQLDedupPurge(t *testing.T) {
	t.Parallel()
	s := openTest(t, testConfig(t, "broker-a"))
	ctx := context.Background()
	now := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	old := testMessage(fmt.Sprintf("%032x", 1), "trade", now)
	_, err := s.Write(ctx, &store.Batch{Now: now, DedupWindow: time.Minute, Saves: []*store.Message{old}})
	require.NoError(t, err)
	fresh := testMessage(fmt.Sprintf("%032x", 2), "trade", now)
	_, err = s.Write(ctx, &store.Batch{Now: now.Add(2 * time.Minute), DedupWindow: time.Minute, Saves: []*store.Message{fresh}})
	require.NoError(t, err)
	require.NoError(t, s.purgeDedup(ctx))
	var n int
	require.NoError(t, s.db.QueryRowContext(ctx, "SELECT COUNT(*) FROM "+s.n.dedup[0]).Scan(&n))
	require.Equal(t, 1, n, "only the live entry is left")
}

func testMessage(id, topic string, now time.Time, groups ...string) *store.Message {
	m := &store.Message{
		Topic: topic, ID: id, MessageType: "pay-succ", Group: "p-trade",
		BodyType: store.BodyBytes, Body: []byte("hello"),
		Properties: []store.Property{{Key: "k", Value: "v"}},
		Created:    now.Add(-time.Second), Expires: now.Add(24 * time.Hour),
		DeliverLimit: 100, Seq: 1,
	}
	for _, g := range groups {
		m.Groups = append(m.Groups, store.GroupState{Group: g, NextAttempt: now})
	}
	return m
}

// benchBatch is the saves per Write: the Batcher's batches under load.
const benchBatch = 1000

// benchSaves returns n messages for one group, with fresh ids.
func benchSaves(n int, next *int, now time.Time) []*store.Message {
	ms := make([]*store.Message, n)
	for i := range ms {
		*next++
		m := testMessage(fmt.Sprintf("%032x", *next), "trade", now, "s-a")
		m.Body = []byte(`{"order":1234567,"user":"u-42","amount":"99.50","state":"paid","ts":1795622400,"note":"benchmark body of 128 bytes..."}`)
		m.Seq = uint64(*next)
		ms[i] = m
	}
	return ms
}

// BenchmarkStoreMySQLWriteSaves writes batches of benchBatch new messages
// (128-byte body, one group) and reports saves/s.
func BenchmarkStoreMySQLWriteSaves(b *testing.B) {
	s := openTest(b, testConfig(b, "bench"))
	ctx := context.Background()
	now := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	next := 0
	start := time.Now()
	for b.Loop() {
		_, err := s.Write(ctx, &store.Batch{Now: now, DedupWindow: 2 * time.Minute, Saves: benchSaves(benchBatch, &next, now)})
		require.NoError(b, err)
	}
	b.ReportMetric(float64(next)/time.Since(start).Seconds(), "saves/s")
}

// BenchmarkStoreMySQLWriteAcks acknowledges batches of benchBatch messages
// (each ack deletes its message) and reports acks/s.
func BenchmarkStoreMySQLWriteAcks(b *testing.B) {
	s := openTest(b, testConfig(b, "bench"))
	ctx := context.Background()
	now := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	next, acked := 0, 0
	var elapsed time.Duration
	for b.Loop() {
		b.StopTimer()
		ms := benchSaves(benchBatch, &next, now)
		_, err := s.Write(ctx, &store.Batch{Now: now, DedupWindow: 2 * time.Minute, Saves: ms})
		require.NoError(b, err)
		ups := make([]store.Update, len(ms))
		for i, m := range ms {
			ups[i] = store.Update{Op: store.OpAck, Topic: m.Topic, ID: m.ID, Group: "s-a"}
		}
		b.StartTimer()
		start := time.Now()
		_, err = s.Write(ctx, &store.Batch{Now: now, Updates: ups})
		require.NoError(b, err)
		elapsed += time.Since(start)
		acked += len(ups)
	}
	b.ReportMetric(float64(acked)/elapsed.Seconds(), "acks/s")
}

// BenchmarkStoreMySQLDue reads 100 due messages out of a backlog.
func BenchmarkStoreMySQLDue(b *testing.B) {
	s := openTest(b, testConfig(b, "bench"))
	ctx := context.Background()
	now := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	next := 0
	for range 20 {
		_, err := s.Write(ctx, &store.Batch{Now: now, DedupWindow: 2 * time.Minute, Saves: benchSaves(benchBatch, &next, now)})
		require.NoError(b, err)
	}
	for b.Loop() {
		ms, err := s.Due(ctx, "s-a", now, 100)
		require.NoError(b, err)
		require.Len(b, ms, 100)
	}
}

// BenchmarkStoreMySQLBaselineInsert is the yardstick: the same messages
// as BenchmarkStoreMySQLWriteSaves inserted as bare (id, topic, body, seq)
// rows, 1000 per statement, in a table with a primary and one secondary
// key. Figures on a shared machine are noisy: compare saves/s with its
// rows/s from the same run, not with absolutes.
func BenchmarkStoreMySQLBaselineInsert(b *testing.B) {
	cfg := testConfig(b, "bench")
	s := openTest(b, cfg)
	ctx := context.Background()
	t := s.n.dbs[0] + ".`baseline`"
	_, err := s.db.ExecContext(ctx, "CREATE TABLE "+t+" (`message_id` VARBINARY(64) NOT NULL, `topic` VARBINARY(255) NOT NULL,"+
		" `body` MEDIUMBLOB NOT NULL, `seq` BIGINT NOT NULL, PRIMARY KEY (`message_id`,`topic`), KEY (`seq`))"+tableOptions)
	require.NoError(b, err)
	b.Cleanup(func() { _, _ = s.db.ExecContext(context.Background(), "DROP TABLE IF EXISTS "+t) })
	now := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	next := 0
	start := time.Now()
	for b.Loop() {
		var rows [][]any
		for _, m := range benchSaves(benchBatch, &next, now) {
			rows = append(rows, []any{bin(m.ID), bin(m.Topic), m.Body, m.Seq})
		}
		tx, err := s.db.BeginTx(ctx, nil)
		require.NoError(b, err)
		_, err = execChunks(ctx, tx, nil, rows, benchBatch, valuesRows("INSERT INTO "+t+" VALUES ", 4, ""))
		require.NoError(b, err)
		require.NoError(b, tx.Commit())
	}
	b.ReportMetric(float64(next)/time.Since(start).Seconds(), "rows/s")
}
