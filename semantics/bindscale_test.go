package semantics

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kitenats/kitenats/kqerr"
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

// TestAddBindingsDeadline: a call whose context ends while it checks
// answers 503 and changes nothing.
func TestAddBindingsDeadline(t *testing.T) {
	h := newHarness(t, nil)
	require.NoError(t, h.b.AddBindings(h.ctx, "s-big", distinctBindings("s-big", 10)))
	ctx, cancel := context.WithCancel(h.ctx)
	cancel()
	err := h.b.AddBindings(ctx, "s-big", distinctBindings("s-big", 5000))
	var ke *kqerr.Error
	require.ErrorAs(t, err, &ke)
	require.Equal(t, kqerr.Unavailable, ke.Code)
	require.Contains(t, ke.Description, "nothing changed")
	require.Len(t, h.b.Bindings()["s-big"], 10, "all or nothing")
	require.EqualValues(t, 1, h.stat().LimitRefusals.APIDeadline)
}

// TestBindingLimits: past the bindings per group or per topic a BIND is
// refused with 409 naming the limit, changes nothing, and is counted;
// bindings already there are no-ops, refused never.
func TestBindingLimits(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.Limits = Limits{BindingsPerGroup: 150, BindingsPerTopic: 150} })
	code := func(err error) kqerr.Code {
		var ke *kqerr.Error
		require.ErrorAs(t, err, &ke)
		return ke.Code
	}
	bs := distinctBindings("s-a", 150)
	require.NoError(t, h.b.AddBindings(h.ctx, "s-a", bs))
	require.NoError(t, h.b.AddBindings(h.ctx, "s-a", bs), "the same bindings again: no-ops")
	err := h.b.AddBindings(h.ctx, "s-a", distinctBindings("s-a", 151))
	require.Equal(t, kqerr.Conflict, code(err))
	require.Contains(t, err.Error(), "maxBindingsPerGroup")
	require.Contains(t, err.Error(), "150")
	require.Len(t, h.b.Bindings()["s-a"], 150)

	// 10 topics: s-a has 15 on each; 150 per topic leaves room for 135.
	var more []registry.Binding
	for i := range 136 {
		more = append(more, registry.Binding{GroupID: "s-b", Topic: "t0", MessageType: fmt.Sprint("b-", i)}.Normalize())
	}
	err = h.b.AddBindings(h.ctx, "s-b", more)
	require.Equal(t, kqerr.Conflict, code(err))
	require.Contains(t, err.Error(), "maxBindingsPerTopic")
	require.Empty(t, h.b.Bindings()["s-b"])
	require.NoError(t, h.b.AddBindings(h.ctx, "s-b", more[:80]))
	st := h.stat().LimitRefusals
	require.EqualValues(t, 1, st.BindingsPerGroup)
	require.EqualValues(t, 1, st.BindingsPerTopic)
}

// TestConsumerLimits: past the consumers per group, or per connection, a
// new consumer is refused with 429 and counted; joining again (same key
// and connection) or replacing (same key, new connection) is not new.
func TestConsumerLimits(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.Limits = Limits{ConsumersPerGroup: 3, ConsumersPerConn: 2} })
	join := func(group, key string, conn uint64) (string, error) {
		return h.b.Join(ConsumerSpec{Group: group, Key: key, Conn: conn, Endpoint: &recorder{}})
	}
	code := func(err error) kqerr.Code {
		var ke *kqerr.Error
		require.ErrorAs(t, err, &ke)
		return ke.Code
	}
	a, err := join("s-a", "k1", 1)
	require.NoError(t, err)
	_, err = join("s-a", "k2", 1)
	require.NoError(t, err)
	_, err = join("s-a", "k3", 1)
	require.Equal(t, kqerr.TooMany, code(err), "a third on connection 1")
	require.Contains(t, err.Error(), "maxConsumersPerConnection")
	again, err := join("s-a", "k1", 1)
	require.NoError(t, err)
	require.Equal(t, a, again)
	_, err = join("s-a", "k3", 2)
	require.NoError(t, err)
	_, err = join("s-a", "k4", 3)
	require.Equal(t, kqerr.TooMany, code(err), "a fourth in the group")
	require.Contains(t, err.Error(), "maxConsumersPerGroup")
	require.Error(t, h.b.CanJoin(ConsumerSpec{Group: "s-a", Key: "k4", Conn: 3}))
	_, err = join("s-a", "k1", 4)
	require.NoError(t, err, "a reconnect replaces its consumer")
	_, err = join("s-b", "k1", 5)
	require.NoError(t, err, "another group has its own count")
	require.Len(t, h.stat().Consumers, 4)
	st := h.stat().LimitRefusals
	require.EqualValues(t, 1, st.ConsumersPerConn)
	require.EqualValues(t, 2, st.ConsumersPerGroup, "Join once, CanJoin once")
}

// TestSetBindingsRoutesAsRebuilt: SetBindings indexes only the topics a
// group was or is on; after random changes the index is what a full
// rebuild makes, order included.
func TestSetBindingsRoutesAsRebuilt(t *testing.T) {
	h := newHarness(t, nil)
	r := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 5))
	groups := []string{"g-a", "g-b", "g-c", "g-d"}
	for range 300 {
		g := groups[r.IntN(len(groups))]
		var bs []registry.Binding
		for range r.IntN(6) {
			bs = append(bs, registry.Binding{GroupID: g, Topic: fmt.Sprint("t", r.IntN(4)), MessageType: fmt.Sprint("m", r.IntN(5)),
				BindType: registry.BindType(r.IntN(3)), Persistent: r.IntN(2) == 0}.Normalize())
		}
		if r.IntN(5) == 0 {
			topic := fmt.Sprint("t", r.IntN(4))
			h.b.SetTopicBindings(topic, map[string][]registry.Binding{g: {{GroupID: g, Topic: topic, MessageType: "x"}}})
		} else {
			h.b.SetBindings(g, bs)
		}
		h.b.mu.Lock()
		got := h.b.routes
		h.b.rebuildRoutes()
		want := h.b.routes
		h.b.mu.Unlock()
		require.Equal(t, len(want), len(got))
		for topic, rs := range want {
			require.Len(t, got[topic], len(rs), topic)
			for i := range rs {
				require.Same(t, rs[i].g, got[topic][i].g, topic)
				require.Equal(t, rs[i].n, got[topic][i].n, topic)
				require.Equal(t, rs[i].direct, got[topic][i].direct, topic)
				require.Equal(t, len(rs[i].others), len(got[topic][i].others), topic)
			}
		}
		// Matching is what matching each binding in turn was.
		h.b.mu.Lock()
		for _, topic := range []string{"t0", "t1", "t2", "t3"} {
			for _, mt := range []string{"m0", "m1", "m2", "m3", "m4", "x", "*"} {
				var wantGs []string
				var wantPs []bool
				for _, g := range groups {
					hit, pers := false, false
					if h.b.groups[g] == nil {
						continue
					}
					for _, bd := range h.b.groups[g].bindings {
						if registry.Compile(bd).Matches(topic, mt) {
							hit, pers = true, pers || bd.Persistent
						}
					}
					if hit {
						wantGs, wantPs = append(wantGs, g), append(wantPs, pers)
					}
				}
				gs, ps := h.b.match(topic, mt)
				var gotGs []string
				for _, g := range gs {
					gotGs = append(gotGs, g.name)
				}
				require.Equal(t, wantGs, gotGs, "%s/%s", topic, mt)
				require.Equal(t, wantPs, ps, "%s/%s", topic, mt)
			}
		}
		h.b.mu.Unlock()
	}
}
