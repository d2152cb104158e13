package txn_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kitenats/kitenats/kqerr"
	"github.com/kitenats/kitenats/store"
	"github.com/kitenats/kitenats/txn"
)

func TestTxnCommitReleasesOnce(t *testing.T) {
	e := newEnv(t, testConfig())
	e.prepare("a")
	require.Equal(t, 0, e.rel.count("a"), "a prepare is never released by itself")

	require.NoError(t, e.resolve("a", true))
	require.Equal(t, 1, e.rel.count("a"))
	e.requireCommitted("a")

	require.NoError(t, e.resolve("a", true), "twice the same way is a no-op")
	require.Equal(t, 1, e.rel.count("a"))
	require.ErrorIs(t, e.resolve("a", false), txn.ErrConflict)
	e.requireCommitted("a")

	// Delivered and acknowledged: gone from the store, still remembered.
	e.ack("a")
	e.requireGone("a")
	require.ErrorIs(t, e.resolve("a", false), txn.ErrConflict)
	require.NoError(t, e.resolve("a", true))
	require.Equal(t, 1, e.rel.count("a"))

	// No check-back for a committed message.
	e.tickAt(time.Minute)
	require.Empty(t, e.chk.callsOf("a"))
}

func TestTxnRollbackDeletesAndNeverReleases(t *testing.T) {
	e := newEnv(t, testConfig())
	e.prepare("a")
	require.NoError(t, e.resolve("a", false))
	e.requireGone("a")
	require.Zero(t, e.prepared())

	require.NoError(t, e.resolve("a", false), "twice the same way is a no-op")
	require.ErrorIs(t, e.resolve("a", true), txn.ErrConflict, "after the message is gone")
	require.Equal(t, 0, e.rel.count("a"))

	e.tickAt(time.Minute)
	require.Empty(t, e.chk.callsOf("a"))
}

func TestTxnResolveUnknownID(t *testing.T) {
	e := newEnv(t, testConfig())
	require.ErrorIs(t, e.resolve("nope", true), txn.ErrNotFound)
	require.ErrorIs(t, e.resolve("nope", false), txn.ErrNotFound)
}

func TestTxnCommittedMessageCountsAsCommitted(t *testing.T) {
	// A message that was never prepared (or was committed before a
	// restart) is deliverable: commit is a no-op, rollback a conflict.
	e := newEnv(t, testConfig())
	e.prepare("a")
	require.NoError(t, e.resolve("a", true))
	e.restart()
	require.NoError(t, e.resolve("a", true))
	require.ErrorIs(t, e.resolve("a", false), txn.ErrConflict)
	require.Equal(t, 1, e.rel.count("a"))
}

func TestTxnOutcomesForgottenAfterRestartOrEviction(t *testing.T) {
	cfg := testConfig()
	cfg.Remember = 2
	e := newEnv(t, cfg)
	for _, id := range []string{"a", "b", "c"} {
		e.prepare(id)
		require.NoError(t, e.resolve(id, false))
	}
	require.ErrorIs(t, e.resolve("a", true), txn.ErrNotFound, "a is the oldest, evicted")
	require.ErrorIs(t, e.resolve("b", true), txn.ErrConflict)
	require.ErrorIs(t, e.resolve("c", true), txn.ErrConflict)
	e.restart()
	require.ErrorIs(t, e.resolve("c", true), txn.ErrNotFound, "outcomes are not durable")
}

func TestTxnReprepareAfterOutcomeIsDecidedAgain(t *testing.T) {
	// The same id prepared again after its dedup window is a new message:
	// a remembered outcome of the old one must not decide it.
	e := newEnv(t, testConfig())
	e.prepare("a")
	require.NoError(t, e.resolve("a", false))
	e.clk.Advance(time.Hour) // past the dedup window
	e.prepare("a")
	require.NoError(t, e.resolve("a", true))
	require.Equal(t, 1, e.rel.count("a"))
	e.requireCommitted("a")
}

func TestTxnReleaseFailureDecidesNothing(t *testing.T) {
	e := newEnv(t, testConfig())
	e.prepare("a")
	boom := errors.New("store busy")
	e.rel.setBefore(func(*store.Message) error { return boom })
	err := e.resolve("a", true)
	require.ErrorIs(t, err, boom)
	require.NotErrorIs(t, err, txn.ErrConflict)
	e.requirePrepared("a", 0, t0.Add(5*time.Second))

	// A failed release is not an outcome: rollback is still possible.
	require.NoError(t, e.resolve("a", false))
	require.Equal(t, 0, e.rel.count("a"))
	e.requireGone("a")
}

func TestTxnSecondResolveWaitsForTheFirst(t *testing.T) {
	e := newEnv(t, testConfig())
	e.prepare("a")
	entered, unblock := make(chan struct{}), make(chan struct{})
	e.rel.setBefore(func(*store.Message) error {
		close(entered)
		<-unblock
		return nil
	})
	first := make(chan error, 1)
	go func() { first <- e.resolve("a", true) }()
	<-entered

	second := make(chan error, 1)
	go func() { second <- e.resolve("a", true) }()
	third := make(chan error, 1)
	go func() { third <- e.resolve("a", false) }()
	select {
	case err := <-second:
		t.Fatalf("second resolve returned %v before the first decision ended", err)
	case <-time.After(20 * time.Millisecond):
	}
	close(unblock)
	require.NoError(t, <-first)
	require.NoError(t, <-second)
	require.ErrorIs(t, <-third, txn.ErrConflict)
	require.Equal(t, 1, e.rel.count("a"))
}

func TestTxnResolveWaitHonoursContext(t *testing.T) {
	e := newEnv(t, testConfig())
	e.prepare("a")
	entered, unblock := make(chan struct{}), make(chan struct{})
	e.rel.setBefore(func(*store.Message) error {
		close(entered)
		<-unblock
		return nil
	})
	first := make(chan error, 1)
	go func() { first <- e.resolve("a", true) }()
	<-entered
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel()
	require.ErrorIs(t, e.c.Resolve(ctx, topic, "a", false), context.DeadlineExceeded)
	close(unblock)
	require.NoError(t, <-first)
}

// TestTxnConcurrentResolves races many producers resolving one message
// both ways with ticks whose checks answer too: exactly one outcome wins.
func TestTxnConcurrentResolves(t *testing.T) {
	for round := range 20 {
		e := newEnv(t, txn.Config{FirstCheck: time.Second, Interval: time.Second, MaxChecks: 100})
		e.prepare("a")
		e.clk.Advance(time.Second)
		e.chk.setAnswer(func(context.Context, *store.Message) (txn.Action, error) {
			if round%2 == 0 {
				return txn.Commit, nil
			}
			return txn.Rollback, nil
		})
		var wg sync.WaitGroup
		results := make([]error, 16)
		for i := range results {
			wg.Go(func() { results[i] = e.resolve("a", i%2 == 0) })
		}
		wg.Go(func() { e.tick() })
		wg.Wait()

		ok := map[bool]int{}
		for i, err := range results {
			if err == nil {
				ok[i%2 == 0]++
			} else {
				require.ErrorIs(t, err, txn.ErrConflict)
			}
		}
		require.False(t, ok[true] > 0 && ok[false] > 0, "both outcomes confirmed: %v", results)
		m, err := e.get("a")
		if e.rel.count("a") == 1 {
			require.NoError(t, err)
			require.False(t, m.Prepared)
			require.Zero(t, ok[false], "rollback confirmed for a released message")
			require.Equal(t, 8, ok[true])
		} else {
			require.Zero(t, e.rel.count("a"))
			require.ErrorIs(t, err, store.ErrNotFound)
			require.Zero(t, ok[true], "commit confirmed for a rolled-back message")
			require.Equal(t, 8, ok[false])
		}
	}
}

// TestTxnResolveAsOnlyTheOwnGroup: a group resolves only the prepared
// messages it published (issue #16): another group's decision is refused
// with ErrForbidden, a 403, and changes nothing, while the message is
// prepared and after its outcome is remembered; Resolve (the admin's)
// decides for any group.
func TestTxnResolveAsOnlyTheOwnGroup(t *testing.T) {
	e := newEnv(t, testConfig())
	ctx := context.Background()
	e.prepare("a")
	for _, commit := range []bool{true, false} {
		verb := map[bool]string{true: "commit", false: "rollback"}[commit]
		err := e.c.ResolveAs(ctx, "intruder", topic, "a", commit)
		require.ErrorIs(t, err, txn.ErrForbidden)
		var ke *kqerr.Error
		require.ErrorAs(t, err, &ke)
		require.Equal(t, kqerr.Forbidden, ke.Code)
		require.Equal(t, 14403, ke.ErrCode())
		require.Equal(t, "kq: txn: "+verb+" "+topic+"/a: txn: the message belongs to another group", ke.Description)
	}
	e.requirePrepared("a", 0, t0.Add(5*time.Second))
	require.Equal(t, 0, e.rel.count("a"))

	require.NoError(t, e.c.ResolveAs(ctx, producer, topic, "a", true), "the publishing group resolves its own")
	e.requireCommitted("a")
	require.ErrorIs(t, e.c.ResolveAs(ctx, "intruder", topic, "a", true), txn.ErrForbidden, "committed: still not theirs")
	e.ack("a")
	e.requireGone("a")
	require.ErrorIs(t, e.c.ResolveAs(ctx, "intruder", topic, "a", false), txn.ErrForbidden, "remembered outcome: still not theirs")
	require.NoError(t, e.c.ResolveAs(ctx, producer, topic, "a", true))
	require.ErrorIs(t, e.c.ResolveAs(ctx, producer, topic, "a", false), txn.ErrConflict)

	e.prepare("b")
	require.NoError(t, e.c.Resolve(ctx, topic, "b", false), "the admin resolves any group's")
	e.requireGone("b")
	require.ErrorIs(t, e.c.ResolveAs(ctx, "intruder", topic, "b", false), txn.ErrForbidden)
	require.ErrorIs(t, e.c.ResolveAs(ctx, "intruder", topic, "nope", true), txn.ErrNotFound)
}
