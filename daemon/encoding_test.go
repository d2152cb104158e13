package daemon

import (
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/kitenats/kitenats/client"
	"github.com/kitenats/kitenats/natsproto"
)

// TestClientSubjectEncodingMatchesBroker pins the copy of the subject
// encoding in client/ (which imports nothing of ours, by ARCHITECTURE.md)
// to the broker's own, so the two cannot drift.
func TestClientSubjectEncodingMatchesBroker(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	cases := []string{"trade", "pay.succ 200", "%", "*", ">", "ü", "a\x00b", "-_~"}
	for i := 0; i < 2000; i++ {
		b := make([]byte, r.IntN(12))
		for j := range b {
			b[j] = byte(r.IntN(256))
		}
		cases = append(cases, string(b))
	}
	for _, s := range cases {
		require.Equal(t, natsproto.EncodeToken(s), client.EncodeToken(s), "%q", s)
		require.Equal(t, natsproto.Subject("t"+s, s+"m"), client.Subject("t"+s, s+"m"), "%q", s)
	}
}
