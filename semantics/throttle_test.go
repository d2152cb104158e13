package semantics

import (
	"sync"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/require"
)

// windowEndpoint is a Throttler that takes at most max deliveries until
// they are acked (taken from it), like a KiteQ connection's byte window.
type windowEndpoint struct {
	max  int
	full atomic.Bool
	mu   sync.Mutex
	got  []*Delivery
}

func (e *windowEndpoint) Deliver(d *Delivery) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.got = append(e.got, d)
	e.full.Store(len(e.got) >= e.max)
	return nil
}

func (e *windowEndpoint) Full() bool { return e.full.Load() }

// take returns the deliveries received so far and empties the window.
func (e *windowEndpoint) take() []*Delivery {
	e.mu.Lock()
	defer e.mu.Unlock()
	got := e.got
	e.got = nil
	e.full.Store(false)
	return got
}

// TestThrottlerFullConsumerIsPassedOver: a member whose endpoint is Full
// gets nothing more; the group's messages go to the other member, and the
// full one is offered messages again once its acks free room.
func TestThrottlerFullConsumerIsPassedOver(t *testing.T) {
	h := newHarness(t, nil)
	natsID, other := h.join("s-trade", "nats", 1, 0, direct("trade", "pay", true))
	slow := &windowEndpoint{max: 2}
	slowID, err := h.b.Join(ConsumerSpec{Group: "s-trade", Key: "kiteq", Endpoint: slow})
	require.NoError(t, err)

	for range 40 {
		h.publish("trade", "pay", "x") // fails the test unless acked
	}
	held := slow.take()
	require.Len(t, held, 2, "a full member gets nothing past its window")
	require.Len(t, other.take(), 38, "the rest went to the other member")

	// Acks free room. The other member leaves with 38 unacknowledged
	// deliveries: they are reserved for the remaining member in one batch,
	// but only its window's worth is sent; the rest wait as due, attempts
	// untouched, and go out as acks free room.
	ackAll(t, h, slowID, held)
	require.True(t, h.b.Leave("s-trade", natsID))
	h.settle()
	got := slow.take()
	require.Len(t, got, 2, "a window's worth of the departed member's flights")
	require.Equal(t, int64(38), h.groupStat("trade", "s-trade").Pending)
	for range 18 {
		ackAll(t, h, slowID, got)
		h.tick()
		got = slow.take()
		require.Len(t, got, 2)
		for _, d := range got {
			require.Equal(t, 2, d.Attempt, "a put-back send is not an attempt")
		}
	}
	ackAll(t, h, slowID, got)
	require.Zero(t, h.groupStat("trade", "s-trade").Pending)
	require.Equal(t, int64(38), h.stat().Redelivered, "each of the departed member's messages sent again once")
}

func ackAll(t *testing.T, h *harness, consumer string, ds []*Delivery) {
	t.Helper()
	for _, d := range ds {
		done := make(chan error, 1)
		h.b.Ack("s-trade", consumer, d.ID, Ack{Kind: AckOK}, func(err error) { done <- err })
		require.NoError(t, <-done)
	}
	h.settle()
}

// TestThrottlerFullGroupWaitsForAck: when every member is full the message
// waits as due, and the ack that frees room brings it out at once.
func TestThrottlerFullGroupWaitsForAck(t *testing.T) {
	h := newHarness(t, nil)
	ep := &windowEndpoint{max: 1}
	c, _ := h.join("s-trade", "nats", 1, 0, direct("trade", "pay", true))
	require.True(t, h.b.Leave("s-trade", c))
	id, err := h.b.Join(ConsumerSpec{Group: "s-trade", Key: "kiteq", Endpoint: ep})
	require.NoError(t, err)

	h.publish("trade", "pay", "a")
	h.publish("trade", "pay", "b")
	h.tick()
	first := ep.take()
	require.Len(t, first, 1, "the second message waits: the window is full")
	require.Equal(t, int64(2), h.groupStat("trade", "s-trade").Pending)

	done := make(chan error, 1)
	h.b.Ack("s-trade", id, first[0].ID, Ack{Kind: AckOK}, func(err error) { done <- err })
	require.NoError(t, <-done)
	h.tick()
	second := ep.take()
	require.Len(t, second, 1, "the ack freed room")
	require.NotEqual(t, string(first[0].Message.Body), string(second[0].Message.Body))
}
