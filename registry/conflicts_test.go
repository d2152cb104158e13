package registry_test

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kitenats/kitenats/registry"
)

// randomBinding draws from small alphabets, so that sets repeat, overlap
// and conflict often; it includes invalid patterns and an unknown kind, as
// a registry may hold them.
func randomBinding(r *rand.Rand) registry.Binding {
	types := []string{"a", "b", "ab", "pay-1", "pay-2", "x", "*"}
	patterns := []string{"a", "^a$", `pay-\d`, "b.*", "(", "x|a", "z"}
	b := registry.Binding{
		GroupID:    []string{"g1", "g2"}[r.IntN(2)],
		Topic:      []string{"t1", "t2"}[r.IntN(2)],
		BindType:   registry.BindType(r.IntN(4)),
		Persistent: r.IntN(2) == 0,
		Watermark:  []int32{0, 5}[r.IntN(2)],
		Version:    []string{"", registry.Version}[r.IntN(2)],
	}
	switch b.BindType {
	case registry.Regx:
		b.MessageType = patterns[r.IntN(len(patterns))]
	default:
		b.MessageType = types[r.IntN(len(types))]
	}
	return b
}

// TestConflictIndexEquivalence pins ConflictIndex to Conflict: on random
// sets (conflict-free or not, as a registry may hold anything) and random
// new bindings, the same dup and the same error, text included; and the
// same when the set grows as AddBindings grows it.
func TestConflictIndexEquivalence(t *testing.T) {
	seed := uint64(time.Now().UnixNano())
	r := rand.New(rand.NewPCG(seed, 16))
	for round := range 800 {
		var existing []registry.Binding
		for range r.IntN(12) {
			existing = append(existing, randomBinding(r))
		}
		x := registry.NewConflictIndex(existing)
		for range 20 {
			b := randomBinding(r)
			wantDup, wantErr := registry.Conflict(existing, b)
			gotDup, gotErr := x.Conflict(b)
			msg := fmt.Sprintf("seed %d round %d: existing %+v, new %+v", seed, round, existing, b)
			require.Equal(t, wantDup, gotDup, msg)
			if wantErr == nil {
				require.NoError(t, gotErr, msg)
			} else {
				require.ErrorIs(t, gotErr, registry.ErrConflict, msg)
				require.Equal(t, wantErr.Error(), gotErr.Error(), msg)
			}
			if !wantDup && wantErr == nil {
				existing = append(existing, b)
				x.Add(b)
			}
		}
		require.Equal(t, len(existing), x.Len())
	}
}

// BenchmarkConflictIndex adds 20,000 distinct directs to one group's set.
func BenchmarkConflictIndex(b *testing.B) {
	bs := make([]registry.Binding, 20000)
	for i := range bs {
		bs[i] = registry.Binding{GroupID: "g", Topic: "t", MessageType: fmt.Sprint("type-", i), Persistent: true}
	}
	for b.Loop() {
		x := registry.NewConflictIndex(nil)
		for _, bd := range bs {
			if _, err := x.Conflict(bd); err != nil {
				b.Fatal(err)
			}
			x.Add(bd)
		}
	}
}
