package semantics

import (
	"errors"
	"strconv"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestDispatchConsumerGoneRedeliversAtOnce(t *testing.T) {
	h := newHarness(t, nil)
	_, a := h.join("s-trade", "a", 1, 1, direct("trade", "pay", true))
	h.publish("trade", "pay", "x")
	require.Len(t, a.take(), 1)
	_, b := h.join("s-trade", "b", 2, 0)
	h.connClosed(1)
	ds := b.take()
	require.Len(t, ds, 1, "the killed consumer's delivery goes to the other member")
	require.Equal(t, 2, ds[0].Attempt)
}

// TestDispatchAckBeforeCloseCounts: acks a consumer sent just before its
// connection closed, still on their way through the adapter when the close
// is reported, count: the close waits for them (Intake.Sync). Only the
// delivery left unacknowledged goes to the other member.
func TestDispatchAckBeforeCloseCounts(t *testing.T) {
	h := newHarness(t, nil)
	ca, a := h.join("s-trade", "a", 1, 3, direct("trade", "pay", true))
	for _, body := range []string{"ack", "acksync", "none"} {
		h.publish("trade", "pay", body)
	}
	ds := a.take()
	require.Len(t, ds, 3)
	_, b := h.join("s-trade", "b", 2, 0)
	byBody := map[string]*Delivery{}
	for _, d := range ds {
		byBody[string(d.Message.Body)] = d
	}
	h.in.route(func() { h.b.Ack("s-trade", ca, byBody["ack"].ID, Ack{Kind: AckOK}, func(error) {}) })
	synced := make(chan error, 1)
	h.in.route(func() {
		h.b.Ack("s-trade", ca, byBody["acksync"].ID, Ack{Kind: AckOK}, func(err error) { synced <- err })
	})
	h.connClosed(1)

	again := b.take()
	require.Len(t, again, 1, "only the unacknowledged delivery goes to the other member")
	require.Equal(t, "none", string(again[0].Message.Body))
	require.Len(t, synced, 1)
	require.NoError(t, <-synced, "the AckSync succeeded")
	st := h.stat()
	require.Equal(t, int64(2), st.Acked)
	require.Equal(t, int64(1), st.Redelivered)
}

// TestDispatchClosesShareOneSync: connections reported closed while the
// closer was busy are closed together, after one Sync.
func TestDispatchClosesShareOneSync(t *testing.T) {
	h := newHarness(t, nil)
	for conn := uint64(1); conn <= 3; conn++ {
		h.join("s-trade", "c"+strconv.FormatUint(conn, 10), conn, 0, direct("trade", "pay", true))
	}
	require.Len(t, h.stat().Consumers, 3)
	h.connClosed(1, 2, 3)
	require.Equal(t, 1, h.in.syncs)
	require.Empty(t, h.stat().Consumers)
	h.connClosed()
	require.Equal(t, 1, h.in.syncs, "nothing to close, no Sync")
}

// failingEndpoint refuses every delivery, like a KiteQ connection whose
// write queue is full.
type failingEndpoint struct{ n atomic.Int64 }

func (e *failingEndpoint) Deliver(*Delivery) error {
	e.n.Add(1)
	return errors.New("write queue full")
}

func TestFaultRefusingEndpointBurnsNoAttempts(t *testing.T) {
	h := newHarness(t, nil)
	c, _ := h.join("s-trade", "nats", 1, 0, direct("trade", "pay", true))
	require.True(t, h.b.Leave("s-trade", c))
	ep := &failingEndpoint{}
	_, err := h.b.Join(ConsumerSpec{Group: "s-trade", Key: "kiteq", Endpoint: ep})
	require.NoError(t, err)
	now := h.clk.Now()
	m := h.message("trade", "pay", "x", now)
	m.DeliverLimit = 3
	h.publishMessage(&Publication{Message: m, NewID: true})
	require.Equal(t, int64(1), ep.n.Load(), "one send, no tight retry loop")
	for i := 0; i < 5; i++ {
		h.clk.Advance(undeliverPause)
		h.tick()
	}
	require.Equal(t, int64(6), ep.n.Load(), "offered again after each pause")
	gs := h.groupStat("trade", "s-trade")
	require.Equal(t, int64(1), gs.Pending)
	require.Zero(t, gs.Dead, "refused sends are not attempts: the deliver limit of 3 is untouched")
}
