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
