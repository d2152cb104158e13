package semantics

import (
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestNewMessageIDsSortByTime: broker-made ids are valid message ids,
// distinct, and sort in the order they were made (given the clock moved).
func TestNewMessageIDsSortByTime(t *testing.T) {
	var ids []string
	seen := map[string]bool{}
	for range 50 {
		id := NewMessageID()
		require.True(t, ValidMessageID(id), id)
		require.Equal(t, 32, len(id))
		require.False(t, seen[id])
		seen[id] = true
		ids = append(ids, id)
		time.Sleep(100 * time.Microsecond)
	}
	require.True(t, slices.IsSorted(ids), "%v", ids)
}
