package semantics

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kitenats/kitenats/registry"
)

// distinctBindings is n direct bindings of group, over 10 topics.
func distinctBindings(group string, n int) []registry.Binding {
	bs := make([]registry.Binding, n)
	for i := range bs {
		bs[i] = registry.Binding{GroupID: group, Topic: fmt.Sprintf("t%d", i%10), MessageType: fmt.Sprintf("type-%d", i),
			BindType: registry.Direct, Persistent: true}.Normalize()
	}
	return bs
}

// TestAddBindingsScales is issue #16's reproduction: one BIND of 20,000
// (and 45,000) distinct bindings took 7.9 s (and 42 s). The conflict check
// is indexed: it is near-linear.
func TestAddBindingsScales(t *testing.T) {
	for _, n := range []int{20000, 45000} {
		h := newHarness(t, nil)
		bs := distinctBindings("s-big", n)
		start := time.Now()
		require.NoError(t, h.b.AddBindings(h.ctx, "s-big", bs))
		took := time.Since(start)
		t.Logf("one AddBindings of %d distinct bindings: %s", n, took)
		require.Len(t, h.b.Bindings()["s-big"], n)
	}
}
