package semantics

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestRedeliveryScheduleKiteQ pins the table of kiteq-protocol.md §5.4.
func TestRedeliveryScheduleKiteQ(t *testing.T) {
	s, err := NewSchedule(KiteQWindows)
	require.NoError(t, err)
	want := map[int]time.Duration{
		1: 0, 2: 0, 3: 0,
		4: 5 * time.Second, 9: 5 * time.Second,
		10: 10 * time.Second, 19: 10 * time.Second,
		20: 20 * time.Second, 29: 20 * time.Second,
		30: 40 * time.Second, 39: 40 * time.Second,
		40: 80 * time.Second, 49: 80 * time.Second,
		50: 160 * time.Second, 100: 160 * time.Second,
	}
	for n, d := range want {
		require.Equal(t, d, s.Delay(n), "attempts %d", n)
	}
}

func TestRedeliveryScheduleValidate(t *testing.T) {
	_, err := NewSchedule(nil)
	require.Error(t, err)
	_, err = NewSchedule([]Window{{Min: 5, Max: 3}})
	require.Error(t, err)
	_, err = NewSchedule([]Window{{Min: 0, Max: 3, Delay: -1}})
	require.Error(t, err)
	_, err = NewSchedule([]Window{{Min: 5, Max: 9}, {Min: 1, Max: 2}})
	require.Error(t, err)
}
