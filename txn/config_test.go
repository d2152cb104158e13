package txn_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kitenats/kitenats/store"
	"github.com/kitenats/kitenats/store/memory"
	"github.com/kitenats/kitenats/txn"
)

func TestTxnConfigDefaults(t *testing.T) {
	c := txn.DefaultConfig()
	require.Equal(t, 5*time.Second, c.FirstCheck)
	require.Equal(t, 10*time.Second, c.Interval)
	require.Equal(t, 10, c.MaxChecks)
	require.Equal(t, txn.FinalRollback, c.FinalAction)
	require.Equal(t, 256, c.Page)
	require.Equal(t, 2*time.Second, c.CheckTimeout)
	require.Equal(t, 65536, c.Remember)
	require.NotNil(t, c.Now)
	require.NotNil(t, c.Logger)
	require.NoError(t, c.Validate())
	require.NoError(t, txn.Config{}.Validate())
}

func TestTxnConfigValidate(t *testing.T) {
	bad := []txn.Config{
		{FirstCheck: -1}, {Interval: -1}, {MaxChecks: -1}, {FinalAction: 9},
		{Page: -1}, {CheckTimeout: -1}, {Remember: -1},
	}
	for _, c := range bad {
		require.Error(t, c.Validate(), "%+v", c)
	}
	err := txn.Config{Interval: -1, Page: -2}.Validate()
	require.ErrorContains(t, err, "Interval")
	require.ErrorContains(t, err, "Page")
}

func TestTxnNewValidates(t *testing.T) {
	st := memory.New(memory.Config{})
	b := store.NewBatcher(st, store.BatcherConfig{})
	chk, rel := &fakeChecker{clk: &clock{}}, &fakeReleaser{}
	_, err := txn.New(txn.Config{MaxChecks: -1}, st, b, chk, rel)
	require.Error(t, err)
	_, err = txn.New(txn.Config{}, nil, b, chk, rel)
	require.Error(t, err)
	_, err = txn.New(txn.Config{}, st, b, nil, rel)
	require.Error(t, err)
	c, err := txn.New(txn.Config{}, st, b, chk, rel)
	require.NoError(t, err)
	require.Equal(t, t0.Add(5*time.Second), c.NextCheck(t0))
}

func TestTxnAction(t *testing.T) {
	for _, a := range []txn.Action{txn.Unknown, txn.Commit, txn.Rollback} {
		got, err := txn.ParseAction(" " + a.String() + "\r\n")
		require.NoError(t, err)
		require.Equal(t, a, got)
	}
	for _, s := range []string{"", "COMMIT", "commit!", "yes"} {
		_, err := txn.ParseAction(s)
		require.Error(t, err, s)
	}
	require.Equal(t, "Action(7)", txn.Action(7).String())
	require.Equal(t, txn.Unknown, txn.Action(0), "the zero answer is unknown")
}

func TestTxnFinalActionText(t *testing.T) {
	var cfg struct {
		Final txn.FinalAction `json:"final"`
	}
	require.NoError(t, json.Unmarshal([]byte(`{"final":"dead-letter"}`), &cfg))
	require.Equal(t, txn.FinalDeadLetter, cfg.Final)
	require.NoError(t, json.Unmarshal([]byte(`{"final":"deadletter"}`), &cfg))
	require.Equal(t, txn.FinalDeadLetter, cfg.Final)
	require.NoError(t, json.Unmarshal([]byte(`{"final":"rollback"}`), &cfg))
	require.Equal(t, txn.FinalRollback, cfg.Final)
	require.Error(t, json.Unmarshal([]byte(`{"final":"commit"}`), &cfg))
	out, err := json.Marshal(struct {
		F txn.FinalAction `json:"f"`
	}{txn.FinalDeadLetter})
	require.NoError(t, err)
	require.JSONEq(t, `{"f":"dead-letter"}`, string(out))
	_, err = txn.FinalAction(9).MarshalText()
	require.Error(t, err)
	require.Equal(t, "FinalAction(9)", txn.FinalAction(9).String())
}

func TestTxnList(t *testing.T) {
	e := newEnv(t, testConfig())
	ctx := context.Background()
	items, total, err := e.c.List(ctx, 0, 10)
	require.NoError(t, err)
	require.Zero(t, total)
	require.Empty(t, items)

	e.prepare("a")
	e.clk.Advance(time.Second)
	e.prepare("b")
	e.clk.Advance(time.Second)
	e.prepare("c")
	e.prepare("gone")
	require.NoError(t, e.resolve("gone", true))
	e.tickAt(5 * time.Second) // checks a, which moves to the end

	items, total, err = e.c.List(ctx, 0, 10)
	require.NoError(t, err)
	require.Equal(t, 3, total)
	require.Equal(t, []txn.Prepared{
		{Topic: topic, ID: "b", MessageType: "order", Group: producer, Created: t0.Add(time.Second),
			Age: 4 * time.Second, NextCheck: t0.Add(6 * time.Second)},
		{Topic: topic, ID: "c", MessageType: "order", Group: producer, Created: t0.Add(2 * time.Second),
			Age: 3 * time.Second, NextCheck: t0.Add(7 * time.Second)},
		{Topic: topic, ID: "a", MessageType: "order", Group: producer, Created: t0,
			Age: 5 * time.Second, Checks: 1, NextCheck: t0.Add(15 * time.Second)},
	}, items)

	items, total, err = e.c.List(ctx, 1, 1)
	require.NoError(t, err)
	require.Equal(t, 3, total)
	require.Len(t, items, 1)
	require.Equal(t, "c", items[0].ID)

	items, _, err = e.c.List(ctx, 5, 10)
	require.NoError(t, err)
	require.Empty(t, items)
	_, _, err = e.c.List(ctx, -1, 10)
	require.Error(t, err)
}
