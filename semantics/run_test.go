package semantics

import (
	"context"
	"errors"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/kitenats/kitenats/store"
	"github.com/kitenats/kitenats/store/memory"
)

// orderIntake records the calls Run makes on its Intake.
type orderIntake struct {
	fakeIntake
	mu       sync.Mutex
	calls    []string
	startErr error
}

func (in *orderIntake) record(c string) {
	in.mu.Lock()
	defer in.mu.Unlock()
	in.calls = append(in.calls, c)
}

func (in *orderIntake) Start(*Broker) error { in.record("start"); return in.startErr }
func (in *orderIntake) StopPublishes()      { in.record("stop publishes") }
func (in *orderIntake) Stop()               { in.record("stop") }

// TestRunStartsAndStopsIntake: Run starts its Intake before it serves,
// stops the publishes when shutdown begins (acks still come in during the
// drain) and stops the rest last; an Intake that fails to start stops Run.
func TestRunStartsAndStopsIntake(t *testing.T) {
	run := func(in *orderIntake) (*Broker, chan error, context.CancelFunc) {
		st := memory.New(memory.Config{})
		w := store.NewBatcher(st, store.BatcherConfig{})
		wctx, stopW := context.WithCancel(context.Background())
		wdone := make(chan struct{})
		go func() { _ = w.Run(wctx); close(wdone) }()
		t.Cleanup(func() { stopW(); <-wdone })
		b, err := New(Config{Intake: in}, st, w, &fakeKeeper{}, nil)
		require.NoError(t, err)
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- b.Run(ctx) }()
		return b, done, cancel
	}

	in := &orderIntake{}
	b, done, cancel := run(in)
	<-b.Ready()
	in.mu.Lock()
	require.Equal(t, []string{"start"}, in.calls, "started before Ready")
	in.mu.Unlock()
	cancel()
	require.NoError(t, <-done)
	require.Equal(t, []string{"start", "stop publishes", "stop"}, in.calls)

	in = &orderIntake{startErr: errors.New("no connection")}
	b, done, cancel = run(in)
	defer cancel()
	require.ErrorContains(t, <-done, "no connection")
	require.Equal(t, []string{"start"}, in.calls, "nothing to stop")
	select {
	case <-b.Ready():
		t.Fatal("Ready though the intake never started")
	default:
	}
}
