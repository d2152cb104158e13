package semantics

import (
	"math/rand/v2"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestWarmupRamp(t *testing.T) {
	auth := time.Unix(1000, 0)
	w := 10 * time.Second
	always := func(int) int { return 99 }
	never := func(int) int { return 0 }
	require.True(t, warmedUp(auth, 0, auth, always), "no warmup")
	require.True(t, warmedUp(auth, w, auth, never), "draw 0 <= rate 0: the 1 % chance")
	require.False(t, warmedUp(auth, w, auth, func(int) int { return 1 }))
	require.True(t, warmedUp(auth, w, auth.Add(5*time.Second), func(int) int { return 50 }))
	require.False(t, warmedUp(auth, w, auth.Add(5*time.Second), func(int) int { return 51 }))
	require.True(t, warmedUp(auth, w, auth.Add(10*time.Second), always))

	// Over many draws the share included follows (rate+1)/100.
	r := rand.New(rand.NewPCG(1, 2))
	for _, sec := range []int{0, 2, 5, 8} {
		in := 0
		const n = 20000
		for i := 0; i < n; i++ {
			if warmedUp(auth, w, auth.Add(time.Duration(sec)*time.Second), r.IntN) {
				in++
			}
		}
		want := float64(sec*10+1) / 100
		require.InDelta(t, want, float64(in)/n, 0.02, "at %ds", sec)
	}
}

// TestWarmupRate is the rate STAT reports as warmupPct: 0 at the join, the
// floor of the elapsed fraction, 100 after the warmup and without one.
func TestWarmupRate(t *testing.T) {
	auth := time.Unix(1000, 0)
	w := 10 * time.Second
	require.Equal(t, 0, warmupRate(auth, w, auth))
	require.Equal(t, 0, warmupRate(auth, w, auth.Add(-time.Second)), "a clock step back")
	require.Equal(t, 30, warmupRate(auth, w, auth.Add(3900*time.Millisecond)))
	require.Equal(t, 100, warmupRate(auth, w, auth.Add(10*time.Second)))
	require.Equal(t, 100, warmupRate(auth, w, auth.Add(time.Hour)))
	require.Equal(t, 100, warmupRate(auth, 0, auth))
}
