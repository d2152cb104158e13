package semantics

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// answer sends kind for d and waits for the outcome.
func (h *harness) answer(consumer string, d *Delivery, kind AckKind) {
	h.t.Helper()
	done := make(chan error, 1)
	h.b.Ack(d.Group, consumer, d.ID, Ack{Kind: kind, Reason: "bad"}, func(err error) { done <- err })
	h.settle()
	require.NoError(h.t, <-done)
}

// TestDeadLetterReplayAndDelete: Replay re-queues a dead letter for its
// group, DeleteDead discards one for good; both change STAT's dead count.
func TestDeadLetterReplayAndDelete(t *testing.T) {
	h := newHarness(t, nil)
	c, r := h.join("s-trade", "a", 1, 10, direct("trade", "pay", true))
	h.publish("trade", "pay", "one")
	h.publish("trade", "pay", "two")
	ds := r.take()
	require.Len(t, ds, 2)
	for _, d := range ds {
		h.answer(c, d, AckTerm)
	}
	require.Equal(t, int64(2), h.groupStat("trade", "s-trade").Dead)
	dls, total, err := h.b.DeadLetters(context.Background(), "trade", "s-trade", 0, 10)
	require.NoError(t, err)
	require.Equal(t, 2, total)

	require.NoError(t, h.b.Replay("trade", dls[0].Message.ID, "s-trade"))
	h.tick()
	again := r.take()
	require.Len(t, again, 1, "the replayed letter is delivered again")
	require.Equal(t, dls[0].Message.ID, again[0].Message.ID)
	h.answer(c, again[0], AckOK)
	require.Equal(t, int64(1), h.groupStat("trade", "s-trade").Dead)

	require.NoError(t, h.b.DeleteDead("trade", dls[1].Message.ID, "s-trade"))
	h.clk.Advance(time.Hour)
	h.tick()
	require.Empty(t, r.take(), "a deleted letter is not delivered")
	require.Zero(t, h.groupStat("trade", "s-trade").Dead)
	_, total, err = h.b.DeadLetters(context.Background(), "trade", "s-trade", 0, 10)
	require.NoError(t, err)
	require.Zero(t, total)
	require.NoError(t, h.b.DeleteDead("trade", dls[1].Message.ID, "s-trade"), "deleting again is a no-op")
}

// TestStatConsumerWarmup: STAT reports when a consumer joined and its
// warmup ramp's rate now.
func TestStatConsumerWarmup(t *testing.T) {
	h := newHarness(t, nil)
	id, err := h.b.Join(ConsumerSpec{Group: "s-trade", Key: "w", Conn: 1, Warmup: 100 * time.Second, Endpoint: &recorder{}})
	require.NoError(t, err)
	cold, err := h.b.Join(ConsumerSpec{Group: "s-trade", Key: "c", Conn: 2, Endpoint: &recorder{}})
	require.NoError(t, err)
	h.clk.Advance(42 * time.Second)
	got := map[string]ConsumerStat{}
	for _, c := range h.stat().Consumers {
		got[c.ID] = c
	}
	require.Equal(t, ConsumerStat{ID: id, Group: "s-trade", Conn: 1, MaxInflight: got[id].MaxInflight, WarmingupSec: 100,
		Joined: t0.Unix(), WarmupPct: 42}, got[id])
	require.Equal(t, 100, got[cold].WarmupPct, "no warmup")
	h.clk.Advance(time.Hour)
	for _, c := range h.stat().Consumers {
		require.Equal(t, 100, c.WarmupPct)
	}
}
