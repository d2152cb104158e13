package mysql

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/kitenats/kitenats/store"
)

// FuzzDecodeProperties: any bytes in the header column (KiteQ wrote them,
// or someone did) decode or fail with errHeader, never panic; the
// properties of a header this package encoded come back as they were.
func FuzzDecodeProperties(f *testing.F) {
	f.Add([]byte{0x4a, 0x05, 0x0a}, "k", "v")
	f.Add(encodeHeader(&store.Message{ID: "x", Topic: "t", Properties: []store.Property{{Key: "a", Value: "b"}}}), "", "\x00")
	f.Fuzz(func(t *testing.T, raw []byte, k, v string) {
		if _, err := decodeProperties(raw); err != nil {
			require.ErrorIs(t, err, errHeader)
		}
		props := []store.Property{{Key: k, Value: v}, {Key: v, Value: k}}
		got, err := decodeProperties(encodeHeader(&store.Message{ID: "id", Topic: "t", Properties: props}))
		require.NoError(t, err)
		require.Equal(t, props, got)
	})
}
