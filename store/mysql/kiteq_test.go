package mysql

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kitenats/kitenats/store"
)

// TestStoreMySQLKiteQSchema reads the rows back the way KiteQ's mysql store
// does (kiteq-protocol.md §9.7), and checks that the scans this store
// depends on are index range scans.
func TestStoreMySQLKiteQSchema(t *testing.T) {
	t.Parallel()
	s := openTest(t, testConfig(t, "broker-a"))
	ctx := context.Background()
	now := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	m := testMessage("0123456789abcdef0123456789abcdef", "trade", now, "s-a", "s-b")
	_, err := s.Write(ctx, &store.Batch{Now: now, DedupWindow: time.Minute, Saves: []*store.Message{m}})
	require.NoError(t, err)
	table := s.n.msg[partitionOf(m.ID)]
	require.Equal(t, "`"+s.cfg.DB+"_3`.`kite_msg_3`", table)

	var (
		header, body                                         []byte
		msgType, commit, deliverCount, deliverLimit          int
		id, topic, mtype, group, server, failGroups, succGrp string
		expired, published, nextDeliver                      int64
	)
	row := s.db.QueryRowContext(ctx, "SELECT header, body, msg_type, message_id, topic, message_type, publish_group,"+
		" commit, expired_time, publish_time, deliver_count, deliver_limit, kite_server, fail_groups, succ_groups,"+
		" next_deliver_time FROM "+table+" WHERE message_id = ?", m.ID)
	require.NoError(t, row.Scan(&header, &body, &msgType, &id, &topic, &mtype, &group, &commit, &expired, &published,
		&deliverCount, &deliverLimit, &server, &failGroups, &succGrp, &nextDeliver))
	require.Equal(t, []any{"hello", int(store.BodyBytes), m.ID, "trade", "pay-succ", "p-trade", 1, m.Expires.Unix(), now.Unix(),
		0, 100, "broker-a", "null", "null", now.Unix()},
		[]any{string(body), msgType, id, topic, mtype, group, commit, expired, published,
			deliverCount, deliverLimit, server, failGroups, succGrp, nextDeliver})
	require.Equal(t, encodeHeader(m), header)

	// KiteQ's recovery scan, with the index its table.sh forgot.
	recover := "SELECT message_id FROM " + table + " FORCE INDEX(idx_recover) WHERE kite_server = ?" +
		" AND deliver_count < deliver_limit AND expired_time >= ? AND next_deliver_time <= ? ORDER BY next_deliver_time LIMIT 0, 201"
	var got string
	require.NoError(t, s.db.QueryRowContext(ctx, recover, "broker-a", now.Unix(), now.Unix()).Scan(&got))
	require.Equal(t, m.ID, got)

	requirePlan(t, s, "EXPLAIN "+s.dueSQL(3), []any{"broker-a", "s-a", toNS(now), 10}, "idx_due")
	requirePlan(t, s, "EXPLAIN "+s.checkSQL(3), []any{"broker-a", toNS(now), 10}, "idx_check")
	requirePlan(t, s, "EXPLAIN "+recover, []any{"broker-a", now.Unix(), now.Unix()}, "idx_recover")
}

// requirePlan checks that the first table of q's plan is read by a range
// scan of index, without a filesort.
func requirePlan(t *testing.T, s *Store, q string, args []any, index string) {
	t.Helper()
	rows, err := s.db.QueryContext(context.Background(), q, args...)
	require.NoError(t, err)
	defer func() { _ = rows.Close() }()
	cols, err := rows.Columns()
	require.NoError(t, err)
	require.True(t, rows.Next(), "no plan for %s", q)
	vals := make([]any, len(cols))
	ptrs := make([]any, len(cols))
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	require.NoError(t, rows.Scan(ptrs...))
	plan := map[string]string{}
	for i, c := range cols {
		plan[c] = fmt.Sprintf("%s", vals[i])
	}
	require.Equal(t, index, plan["key"], "plan %v", plan)
	require.Equal(t, "range", plan["type"], "plan %v", plan)
	require.False(t, strings.Contains(plan["Extra"], "filesort"), "plan %v", plan)
}

// TestStoreMySQLAdopt checks that two brokers on one set of databases see
// only their own messages, and that Adopt hands a dead broker's messages,
// checks and dead letters to the survivor.
func TestStoreMySQLAdopt(t *testing.T) {
	t.Parallel()
	cfgA := testConfig(t, "broker-a")
	cfgB := cfgA
	cfgB.Broker = "broker-b"
	a, b := openTest(t, cfgA), openTest(t, cfgB)
	ctx := context.Background()
	now := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	later := now.Add(time.Hour)

	var pending []string
	var saves []*store.Message
	for i := range 60 { // ids ending in every hex digit: ~4 per partition
		m := testMessage(fmt.Sprintf("%030x%02x", i, i), "trade", now, "s-a")
		saves = append(saves, m)
		pending = append(pending, m.ID)
	}
	prep := testMessage(fmt.Sprintf("%032x", 0xfe), "trade", now)
	prep.Prepared, prep.NextCheck = true, now
	dead := testMessage(fmt.Sprintf("%032x", 0xde), "trade", now, "s-a")
	_, err := a.Write(ctx, &store.Batch{Now: now, DedupWindow: time.Minute, Saves: append(saves, prep, dead)})
	require.NoError(t, err)
	_, err = a.Write(ctx, &store.Batch{Now: now, Updates: []store.Update{
		{Op: store.OpDead, Topic: dead.Topic, ID: dead.ID, Group: "s-a", Reason: "limit"},
	}})
	require.NoError(t, err)
	theirs := b.Broker()
	require.Equal(t, "broker-b", theirs)

	// Before: b sees nothing of a's, though Get works on any message.
	requireOwned(t, b, later, nil, nil, 0)
	requireOwned(t, a, later, pending, []string{prep.ID}, 1)
	_, err = b.Get(ctx, prep.Topic, prep.ID)
	require.NoError(t, err)
	st, err := b.Stats(ctx)
	require.NoError(t, err)
	require.Empty(t, nonZeroStats(st).Topics)

	var reports []int64
	n, err := b.adopt(ctx, "broker-a", 3, func(rows int64) { reports = append(reports, rows) }) // small chunks: several per table
	require.NoError(t, err)
	require.Greater(t, len(reports), 10, "progress after each transaction")
	require.True(t, slices.IsSorted(reports), "rows so far only grow: %v", reports)
	// Rows moved: the messages, their group states, the check row, the letter.
	require.Equal(t, int64(2*len(pending)+1+1+1), reports[len(reports)-1])
	require.Equal(t, len(pending)+1, n, "the messages and the prepared one")
	requireOwned(t, a, later, nil, nil, 0)
	requireOwned(t, b, later, pending, []string{prep.ID}, 1)
	st, err = b.Stats(ctx)
	require.NoError(t, err)
	require.Equal(t, []store.TopicStat{{Topic: "trade", Messages: int64(len(pending) + 1), Prepared: 1}}, nonZeroStats(st).Topics)

	// Again: nothing left to move. Nonsense names are refused.
	n, err = b.Adopt(ctx, "broker-a", nil)
	require.NoError(t, err)
	require.Zero(t, n)
	_, err = b.Adopt(ctx, "broker-b", nil)
	require.ErrorContains(t, err, "this broker")
	_, err = b.Adopt(ctx, "", nil)
	require.ErrorContains(t, err, "empty")

	// The survivor acknowledges and commits what it adopted.
	ups := []store.Update{{Op: store.OpCommit, Topic: prep.Topic, ID: prep.ID, Groups: []store.GroupState{{Group: "s-a", NextAttempt: now}}}}
	for _, id := range pending {
		ups = append(ups, store.Update{Op: store.OpAck, Topic: "trade", ID: id, Group: "s-a"})
	}
	_, err = b.Write(ctx, &store.Batch{Now: now, Updates: ups})
	require.NoError(t, err)
	requireOwned(t, b, later, []string{prep.ID}, nil, 1)

	require.NoError(t, b.Close())
	_, err = b.Adopt(ctx, "broker-a", nil)
	require.ErrorIs(t, err, store.ErrClosed)
}

// requireOwned checks what s's broker sees: the ids due for s-a, the
// prepared ids due for a check, and the dead letters of trade/s-a.
func requireOwned(t *testing.T, s *Store, now time.Time, due, checks []string, dead int) {
	t.Helper()
	ctx := context.Background()
	ms, err := s.Due(ctx, "s-a", now, 100)
	require.NoError(t, err)
	require.ElementsMatch(t, due, ids(ms), "due at %s", s.Broker())
	ms, err = s.DueChecks(ctx, now, 100)
	require.NoError(t, err)
	require.ElementsMatch(t, checks, ids(ms), "checks at %s", s.Broker())
	_, total, err := s.DeadLetters(ctx, "trade", "s-a", 0, 10)
	require.NoError(t, err)
	require.Equal(t, dead, total, "dead letters at %s", s.Broker())
}

func ids(ms []*store.Message) []string {
	out := []string{}
	for _, m := range ms {
		out = append(out, m.ID)
	}
	return out
}
