package rocksdb

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestRecordCacheBounds(t *testing.T) {
	c := newRecordCache(4, 10)
	for i := range 6 {
		c.set(fmt.Sprint(i), []byte{byte(i)})
	}
	_, ok := c.get("1")
	require.False(t, ok, "oldest evicted past the count bound")
	v, ok := c.get("5")
	require.True(t, ok)
	require.Equal(t, []byte{5}, v)

	c.set("5", nil) // deleted: dropped, its ref goes stale
	_, ok = c.get("5")
	require.False(t, ok)
	c.set("big", make([]byte, 9)) // evicts until 9 bytes fit
	require.LessOrEqual(t, c.bytes, 10)
	_, ok = c.get("big")
	require.True(t, ok)
	c.set("huge", make([]byte, 11)) // larger than the cache: not kept
	_, ok = c.get("huge")
	require.False(t, ok)

	c.set("2", []byte("ab"))
	c.set("2", []byte("abc")) // replaced: counted once
	n := 0
	for _, e := range c.m {
		n += len(e.val)
	}
	require.Equal(t, n, c.bytes)
	c.clear()
	require.Empty(t, c.m)
	require.Zero(t, c.bytes)
}
