package semantics

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestAckWithoutCallback: an ack nobody waits for (done nil, a NATS ack
// with no reply subject) is applied like any other, whatever its kind.
func TestAckWithoutCallback(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.AckWait = time.Second })
	id, r := h.join("s-trade", "k1", 1, 10, direct("trade", "pay", true))
	for _, body := range []string{"ok", "nak", "progress", "term"} {
		h.publish("trade", "pay", body)
	}
	ds := r.take()
	require.Len(t, ds, 4)
	byBody := map[string]*Delivery{}
	for _, d := range ds {
		byBody[string(d.Message.Body)] = d
	}
	h.b.Ack("s-trade", id, byBody["ok"].ID, Ack{Kind: AckOK}, nil)
	h.b.Ack("s-trade", id, byBody["nak"].ID, Ack{Kind: AckNak}, nil)
	h.b.Ack("s-trade", id, byBody["progress"].ID, Ack{Kind: AckProgress}, nil)
	h.b.Ack("s-trade", id, byBody["term"].ID, Ack{Kind: AckTerm}, nil)
	h.b.Ack("s-trade", id, "no-such-delivery", Ack{Kind: AckOK}, nil)
	h.b.Ack("s-trade", id, byBody["ok"].ID, Ack{Kind: AckUnknown}, nil)
	h.settle()
	st := h.stat()
	require.Equal(t, int64(1), st.Acked)
	require.Equal(t, int64(1), st.Nacked)
	g := h.groupStat("trade", "s-trade")
	require.Equal(t, int64(1), g.Dead, "the terminated one")
	require.Equal(t, int64(2), g.Pending, "the nak'ed one waits for its redelivery, the one in progress for its ack")
}

// A warmup longer than MaxWarmup (a KiteQ ConnMeta may say 2^31-1 s) is
// clamped to it: STAT shows the clamped ramp.
func TestJoinClampsWarmup(t *testing.T) {
	h := newHarness(t, nil)
	id, err := h.b.Join(ConsumerSpec{Group: "s-trade", Key: "w", Conn: 1, Warmup: time.Duration(1<<31-1) * time.Second, Endpoint: &recorder{}})
	require.NoError(t, err)
	for _, c := range h.stat().Consumers {
		if c.ID == id {
			require.Equal(t, int(MaxWarmup/time.Second), c.WarmingupSec)
			return
		}
	}
	t.Fatal("the consumer is not in STAT")
}
