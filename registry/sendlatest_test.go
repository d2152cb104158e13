package registry

import (
	"errors"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestSendLatest: the reader finds the latest state, preceded by an unread
// lost-session error, never blocked on and never hidden.
func TestSendLatest(t *testing.T) {
	ch := make(chan Event, 2)
	lost := errors.New("session lost")
	SendLatest(ch, Event{Topic: "a"})
	SendLatest(ch, Event{Topic: "b"})
	SendLatest(ch, Event{Err: lost})
	SendLatest(ch, Event{Topic: "c"})
	SendLatest(ch, Event{Topic: "d"})
	require.Len(t, ch, 2)
	require.ErrorIs(t, (<-ch).Err, lost, "the unread error is kept")
	require.Equal(t, "d", (<-ch).Topic, "then only the latest state")
}
