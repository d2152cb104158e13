package semantics

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/kitenats/kitenats/store"
)

// faultyStore fails every Write while fail is set, in the spirit of
// Pebble's errorfs: the failure is the backend's, not the request's.
type faultyStore struct {
	store.Store
	fail atomic.Bool
}

var errDisk = errors.New("injected: disk I/O error")

func (s *faultyStore) Write(ctx context.Context, b *store.Batch) ([]store.SaveResult, error) {
	if s.fail.Load() {
		return nil, errDisk
	}
	return s.Store.Write(ctx, b)
}

func TestFaultFailedWriteNeverAcks(t *testing.T) {
	var fs *faultyStore
	h := newHarnessOver(t, nil, func(s store.Store) store.Store { fs = &faultyStore{Store: s}; return fs })

	h.bind("s-trade", dlv, 1, "", direct("trade", "pay", true))
	fs.fail.Store(true)
	reply := h.publish("kq.trade.pay", nil, "x")
	require.Equal(t, 503, errCode(t, reply), "a failed write is an error reply, never a success ack: %s", reply)
	require.Empty(t, h.deliveries(dlv), "nothing is delivered that was not stored")
	require.Zero(t, h.groupStat("trade", "s-trade").Inflight, "the reserved consumer slot is released")

	fs.fail.Store(false)
	require.Zero(t, errCode(t, h.publish("kq.trade.pay", nil, "y")))
	ds := h.deliveries(dlv)
	require.Len(t, ds, 1)
	require.Equal(t, "y", string(ds[0].Data))

	// An ack whose store update fails is answered with an error, and the
	// message stays pending: it will be redelivered.
	fs.fail.Store(true)
	require.Equal(t, 503, errCode(t, h.ack(ds[0], "+ACK")))
	fs.fail.Store(false)
	require.Equal(t, int64(1), h.groupStat("trade", "s-trade").Pending)
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
	h.bind("s-trade", dlv, 1, "", direct("trade", "pay", true))
	require.True(t, h.b.Leave("s-trade", h.stat().Consumers[0].ID))
	ep := &failingEndpoint{}
	h.b.Join(ConsumerSpec{Group: "s-trade", Key: "kiteq", Endpoint: ep})
	h.publish("kq.trade.pay", map[string][]string{HdrDeliverLimit: {"3"}}, "x")
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

// gatedStore holds every Write while closed, so a test can look at the
// broker while its writes are queued but not yet durable.
type gatedStore struct {
	store.Store
	gate atomic.Pointer[chan struct{}] // nil: open
}

func (s *gatedStore) Write(ctx context.Context, b *store.Batch) ([]store.SaveResult, error) {
	if g := s.gate.Load(); g != nil {
		<-*g
	}
	return s.Store.Write(ctx, b)
}

func (s *gatedStore) hold() { g := make(chan struct{}); s.gate.Store(&g) }

func (s *gatedStore) release() { close(*s.gate.Swap(nil)) }

// TestRecoverTrustsNoStaleDue: a backlog delivered from the store and
// acknowledged at once is not delivered again while the lease and ack
// writes are still on their way to the store (the store then still says
// "due").
func TestRecoverTrustsNoStaleDue(t *testing.T) {
	var gs *gatedStore
	h := newHarnessOver(t, nil, func(s store.Store) store.Store { gs = &gatedStore{Store: s}; return gs })
	c := h.bind("s-trade", "$KQ.DLV.s-trade.a", 1, "", direct("trade", "pay", true))
	require.True(t, h.b.Leave("s-trade", c))
	for i := 0; i < 20; i++ {
		h.publish("kq.trade.pay", nil, "x")
	}
	h.bind("s-trade", "$KQ.DLV.s-trade.b", 2, "")

	gs.hold() // writes from now on wait
	t.Cleanup(func() {
		if gs.gate.Load() != nil {
			gs.release() // a failed assertion must not leave the writer stuck
		}
	})
	h.b.Tick(h.ctx, true)
	ds := h.deliveries("$KQ.DLV.s-trade.b")
	require.Len(t, ds, 20)
	for _, d := range ds {
		h.b.handleAck(&Msg{Subject: d.Reply, Data: []byte("+ACK")})
	}
	h.b.Tick(h.ctx, true)
	h.b.Tick(h.ctx, false)
	require.Empty(t, h.deliveries("$KQ.DLV.s-trade.b"), "the store's due answer is stale while writes are queued")

	gs.release()
	h.tick()
	require.Empty(t, h.deliveries("$KQ.DLV.s-trade.b"))
	require.Zero(t, h.groupStat("trade", "s-trade").Pending)
}
