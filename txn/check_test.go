package txn_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kitenats/kitenats/store"
	"github.com/kitenats/kitenats/txn"
)

func TestTxnCheckSchedule(t *testing.T) {
	e := newEnv(t, testConfig()) // first check after 5s, then every 10s, 3 checks
	e.prepare("a")
	e.requirePrepared("a", 0, t0.Add(5*time.Second))

	e.tickAt(5*time.Second - time.Millisecond)
	require.Empty(t, e.chk.callsOf("a"), "no check before FirstCheck")

	e.tickAt(5 * time.Second)
	require.Len(t, e.chk.callsOf("a"), 1)
	e.requirePrepared("a", 1, t0.Add(15*time.Second))

	e.tick()
	e.tickAt(15*time.Second - time.Millisecond)
	require.Len(t, e.chk.callsOf("a"), 1, "no check before Interval")

	e.tickAt(15 * time.Second)
	e.tickAt(25 * time.Second)
	calls := e.chk.callsOf("a")
	require.Len(t, calls, 3)
	for i, want := range []time.Duration{5 * time.Second, 15 * time.Second, 25 * time.Second} {
		require.Equal(t, since(t0.Add(want)), since(calls[i].At))
		require.Equal(t, i, calls[i].Checks, "the checker sees the checks made before")
	}
	e.requirePrepared("a", 3, t0.Add(35*time.Second))
}

func TestTxnLateTickChecksOnceAndReschedulesFromNow(t *testing.T) {
	e := newEnv(t, testConfig())
	e.prepare("a")
	e.tickAt(time.Minute) // a broker that was down: one check, not a burst
	require.Len(t, e.chk.callsOf("a"), 1)
	e.requirePrepared("a", 1, t0.Add(time.Minute+10*time.Second))
}

func TestTxnFinalAction(t *testing.T) {
	for _, final := range []txn.FinalAction{txn.FinalRollback, txn.FinalDeadLetter} {
		t.Run(final.String(), func(t *testing.T) {
			cfg := testConfig()
			cfg.FinalAction = final
			e := newEnv(t, cfg)
			e.prepare("a")
			// Checks at 5s, 15s, 25s; the final action one Interval later.
			for _, at := range []time.Duration{5, 15, 25} {
				e.tickAt(at * time.Second)
			}
			require.Len(t, e.chk.callsOf("a"), 3)
			e.requirePrepared("a", 3, t0.Add(35*time.Second))

			e.tickAt(35 * time.Second)
			require.Len(t, e.chk.callsOf("a"), 3, "no check beyond MaxChecks")
			e.requireGone("a")
			require.Zero(t, e.prepared())
			require.Zero(t, e.rel.count("a"))

			dls, n, err := e.st.DeadLetters(context.Background(), topic, producer, 0, 10)
			require.NoError(t, err)
			if final == txn.FinalRollback {
				require.Zero(t, n)
			} else {
				require.Equal(t, 1, n)
				require.Equal(t, "a", dls[0].Message.ID)
				require.False(t, dls[0].Message.Prepared)
				require.Equal(t, "txn: no commit or rollback after 3 checks", dls[0].Reason)
				require.Equal(t, since(t0.Add(35*time.Second)), since(dls[0].At))
				st, err := e.st.Stats(context.Background())
				require.NoError(t, err)
				require.Equal(t, []store.GroupStat{{Topic: topic, Group: producer, Dead: 1}}, st.Groups)
			}

			// The final action is an outcome like a rollback.
			require.ErrorIs(t, e.resolve("a", true), txn.ErrConflict)
			require.NoError(t, e.resolve("a", false))
			e.tickAt(time.Hour)
			require.Len(t, e.chk.callsOf("a"), 3)
		})
	}
}

func TestTxnCheckFailuresCountAsUnknown(t *testing.T) {
	answers := map[string]func(context.Context, *store.Message) (txn.Action, error){
		"unknown": answerAll(txn.Unknown, nil),
		"error":   answerAll(txn.Commit, errors.New("no responders")),
		"timeout": func(ctx context.Context, _ *store.Message) (txn.Action, error) {
			<-ctx.Done()
			return txn.Commit, ctx.Err()
		},
		"garbage": answerAll(txn.Action(42), nil),
	}
	for name, answer := range answers {
		t.Run(name, func(t *testing.T) {
			cfg := testConfig()
			cfg.CheckTimeout = 10 * time.Millisecond
			e := newEnv(t, cfg)
			e.chk.setAnswer(answer)
			e.prepare("a")
			e.tickAt(5 * time.Second)
			e.requirePrepared("a", 1, t0.Add(15*time.Second))
			e.tickAt(15 * time.Second)
			e.tickAt(25 * time.Second)
			e.tickAt(35 * time.Second)
			e.requireGone("a")
			require.Len(t, e.chk.callsOf("a"), 3)
			require.Zero(t, e.rel.count("a"))
		})
	}
}

func TestTxnCheckAnswerDecides(t *testing.T) {
	e := newEnv(t, testConfig())
	e.chk.setAnswer(func(_ context.Context, m *store.Message) (txn.Action, error) {
		switch {
		case m.ID == "c" && m.Checks == 1:
			return txn.Commit, nil // commits at the second check
		case m.ID == "r":
			return txn.Rollback, nil
		}
		return txn.Unknown, nil
	})
	e.prepare("c")
	e.prepare("r")
	e.tickAt(5 * time.Second)
	e.requirePrepared("c", 1, t0.Add(15*time.Second))
	e.requireGone("r")
	require.ErrorIs(t, e.resolve("r", true), txn.ErrConflict)

	e.tickAt(15 * time.Second)
	require.Equal(t, 1, e.rel.count("c"))
	e.requireCommitted("c")
	require.NoError(t, e.resolve("c", true))

	e.tickAt(time.Hour)
	require.Len(t, e.chk.callsOf("c"), 2)
	require.Len(t, e.chk.callsOf("r"), 1)
	require.Equal(t, 1, e.rel.count("c"))
	require.Zero(t, e.rel.count("r"))
}

func TestTxnAsyncResolveStopsChecks(t *testing.T) {
	for _, commit := range []bool{true, false} {
		t.Run(fmt.Sprint("commit=", commit), func(t *testing.T) {
			e := newEnv(t, testConfig())
			e.prepare("a")
			e.tickAt(5 * time.Second) // unknown: KiteQ's check request, answered later
			e.clk.Advance(3 * time.Second)
			require.NoError(t, e.resolve("a", commit)) // the TxAck arrives between checks
			for _, at := range []time.Duration{15, 25, 35, 3600} {
				e.tickAt(at * time.Second)
			}
			require.Len(t, e.chk.callsOf("a"), 1)
			if commit {
				require.Equal(t, 1, e.rel.count("a"))
				e.requireCommitted("a")
			} else {
				require.Zero(t, e.rel.count("a"))
				e.requireGone("a")
			}
		})
	}
}

func TestTxnResolveDuringCheck(t *testing.T) {
	// The Checker's answer arrives through Resolve before Check returns
	// (a fast asynchronous TxAck), then Check returns Unknown: the OpCheck
	// that follows must not revive anything.
	e := newEnv(t, testConfig())
	e.chk.setAnswer(func(ctx context.Context, m *store.Message) (txn.Action, error) {
		require.NoError(t, e.c.Resolve(ctx, m.Topic, m.ID, true))
		return txn.Unknown, nil
	})
	e.prepare("a")
	e.tickAt(5 * time.Second)
	require.Equal(t, 1, e.rel.count("a"))
	e.requireCommitted("a")
	e.tickAt(time.Hour)
	require.Len(t, e.chk.callsOf("a"), 1)
}

func TestTxnCheckAnswerLosesToEarlierResolve(t *testing.T) {
	// A slow check answers commit after the producer rolled back.
	e := newEnv(t, testConfig())
	entered, unblock := make(chan struct{}), make(chan struct{})
	e.chk.setAnswer(func(context.Context, *store.Message) (txn.Action, error) {
		close(entered)
		<-unblock
		return txn.Commit, nil
	})
	e.prepare("a")
	e.clk.Advance(5 * time.Second)
	ticked := make(chan struct{})
	go func() {
		defer close(ticked)
		e.tick()
	}()
	<-entered
	require.NoError(t, e.resolve("a", false))
	close(unblock)
	<-ticked
	require.Zero(t, e.rel.count("a"))
	e.requireGone("a")
}

func TestTxnFailedCheckAnswerCountsAsCheck(t *testing.T) {
	e := newEnv(t, testConfig())
	e.chk.setAnswer(answerAll(txn.Commit, nil))
	boom := errors.New("store busy")
	e.rel.setBefore(func(*store.Message) error { return boom })
	e.prepare("a")
	e.tickAt(5 * time.Second)
	e.requirePrepared("a", 1, t0.Add(15*time.Second))

	e.rel.setBefore(nil)
	e.tickAt(15 * time.Second)
	require.Equal(t, 1, e.rel.count("a"))
	e.requireCommitted("a")
}

func TestTxnRestartKeepsChecking(t *testing.T) {
	e := newEnv(t, testConfig())
	e.prepare("a")
	e.tickAt(5 * time.Second)
	e.restart()
	e.tickAt(10 * time.Second)
	require.Len(t, e.chk.callsOf("a"), 1, "the schedule is in the store")
	e.tickAt(15 * time.Second)
	e.restart()
	e.tickAt(25 * time.Second)
	calls := e.chk.callsOf("a")
	require.Len(t, calls, 3)
	require.Equal(t, 2, calls[2].Checks)
	e.restart()
	e.tickAt(35 * time.Second)
	e.requireGone("a")

	// And a prepare made before a restart is decided after it.
	e.prepare("b")
	e.restart()
	require.NoError(t, e.resolve("b", true))
	require.Equal(t, 1, e.rel.count("b"))
}

func TestTxnZeroNextCheckGetsFirstCheck(t *testing.T) {
	e := newEnv(t, testConfig())
	e.clk.Advance(time.Minute)
	e.prepareAt("a", time.Time{})
	e.tick()
	require.Empty(t, e.chk.callsOf("a"))
	e.requirePrepared("a", 0, t0.Add(time.Minute+5*time.Second))
}

func TestTxnTickPage(t *testing.T) {
	cfg := testConfig()
	cfg.Page = 2
	e := newEnv(t, cfg)
	for _, id := range []string{"a", "b", "c"} {
		e.prepare(id)
	}
	e.tickAt(5 * time.Second)
	require.Len(t, e.chk.all(), 2)
	e.tick()
	require.Len(t, e.chk.all(), 3)
}

func TestTxnTickStoreFailureIsLogged(t *testing.T) {
	e := newEnv(t, testConfig())
	e.prepare("a")
	require.NoError(t, e.st.Close())
	e.tickAt(5 * time.Second) // logs, does not panic
	require.Empty(t, e.chk.all())
	require.ErrorIs(t, e.resolve("a", true), store.ErrClosed)
}

func TestTxnRun(t *testing.T) {
	cfg := testConfig()
	cfg.Interval = time.Second // ticks every 100ms
	e := newEnv(t, cfg)
	e.prepare("a")
	e.clk.Advance(5 * time.Second)
	ctx, cancel := context.WithCancel(context.Background())
	ran := make(chan error, 1)
	go func() { ran <- e.c.Run(ctx) }()
	require.Eventually(t, func() bool { return len(e.chk.callsOf("a")) == 1 }, 5*time.Second, 5*time.Millisecond)
	e.clk.Advance(time.Second)
	require.Eventually(t, func() bool { return len(e.chk.callsOf("a")) == 2 }, 5*time.Second, 5*time.Millisecond)
	cancel()
	require.NoError(t, <-ran)
}
