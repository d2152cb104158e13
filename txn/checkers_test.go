package txn

import (
	"context"
	"errors"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/kitenats/kitenats/store"
)

// checkerFunc is a Checker made of a function.
type checkerFunc func(context.Context, *store.Message) (Action, error)

func (f checkerFunc) Check(ctx context.Context, m *store.Message) (Action, error) { return f(ctx, m) }

func TestCheckersAskTheFirstWithAProducer(t *testing.T) {
	var asked []string
	nobody := func(name string) Checker {
		return checkerFunc(func(context.Context, *store.Message) (Action, error) {
			asked = append(asked, name)
			return Unknown, ErrNoProducer
		})
	}
	answers := func(name string, a Action, err error) Checker {
		return checkerFunc(func(context.Context, *store.Message) (Action, error) {
			asked = append(asked, name)
			return a, err
		})
	}
	m := &store.Message{Topic: "t", ID: "1", Group: "g"}

	a, err := Checkers{nobody("nats"), answers("kiteq", Commit, nil), answers("never", Rollback, nil)}.Check(context.Background(), m)
	require.NoError(t, err)
	require.Equal(t, Commit, a)
	require.Equal(t, []string{"nats", "kiteq"}, asked, "the first with a producer answers; the rest are not asked")

	asked = nil
	a, err = Checkers{answers("nats", Rollback, nil), answers("kiteq", Commit, nil)}.Check(context.Background(), m)
	require.NoError(t, err)
	require.Equal(t, Rollback, a)
	require.Equal(t, []string{"nats"}, asked)

	asked = nil
	failed := errors.New("request timed out")
	_, err = Checkers{answers("nats", Unknown, failed), answers("kiteq", Commit, nil)}.Check(context.Background(), m)
	require.ErrorIs(t, err, failed, "a producer that fails is an answer (Unknown), not a reason to ask another")
	require.Equal(t, []string{"nats"}, asked)

	_, err = Checkers{nobody("nats"), nobody("kiteq")}.Check(context.Background(), m)
	require.ErrorIs(t, err, ErrNoProducer)
	_, err = Checkers(nil).Check(context.Background(), m)
	require.ErrorIs(t, err, ErrNoProducer)
}
