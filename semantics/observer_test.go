package semantics

import (
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kitenats/kitenats/registry"
	"github.com/kitenats/kitenats/store"
)

// obsEvent is one call of an Observer method.
type obsEvent struct {
	kind, topic string // kind: stored, delivered, acked, or redelivered (topic: the reason)
	d           time.Duration
}

// recordingObserver keeps every call.
type recordingObserver struct {
	mu     sync.Mutex
	events []obsEvent
}

func (o *recordingObserver) add(e obsEvent) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.events = append(o.events, e)
}

func (o *recordingObserver) Stored(topic string, d time.Duration) {
	o.add(obsEvent{"stored", topic, d})
}

func (o *recordingObserver) Delivered(topic string, d time.Duration) {
	o.add(obsEvent{"delivered", topic, d})
}
func (o *recordingObserver) Acked(topic string, d time.Duration) { o.add(obsEvent{"acked", topic, d}) }
func (o *recordingObserver) Redelivered(reason string)           { o.add(obsEvent{"redelivered", reason, 0}) }

// take returns and forgets the calls so far.
func (o *recordingObserver) take() []obsEvent {
	o.mu.Lock()
	defer o.mu.Unlock()
	es := o.events
	o.events = nil
	return es
}

// slowWriter's saves take took on the fake clock: it advances the clock
// before it calls the save's done.
type slowWriter struct {
	Writer
	clk  *fakeClock
	took time.Duration
}

func (w slowWriter) Save(m *store.Message, done func(store.SaveResult, error)) error {
	return w.Writer.Save(m, func(res store.SaveResult, err error) {
		w.clk.Advance(w.took)
		done(res, err)
	})
}

// TestObserverLatencies: the store ack is timed from Publish to the save's
// durability; the first delivery from the publish (a broker-made id's
// delivery goes out before the save is durable, a producer's id's after);
// the ack from the send; redeliveries are counted by reason; all on
// Config.Now.
func TestObserverLatencies(t *testing.T) {
	obs := &recordingObserver{}
	h := newHarness(t, func(c *Config) { c.Observer = obs })
	h.b.w = slowWriter{Writer: h.w, clk: h.clk, took: 7 * time.Millisecond}
	ca, a := h.join("s-trade", "a", 1, 0, direct("trade", "pay", true))

	// Sent right after its save is queued, so before or just after the
	// group commit makes it durable at t0+7ms (the writer's goroutine may
	// be quicker than Publish's send): delivered at t0, or at t0+7ms.
	h.publish("trade", "pay", "early")
	early := obs.take()
	require.Len(t, early, 2)
	require.Contains(t, early, obsEvent{"stored", "trade", 7 * time.Millisecond})
	sentAt := time.Duration(-1) // when the early delivery went, after t0
	for _, e := range early {
		if e.kind == "delivered" && e.topic == "trade" {
			sentAt = e.d
		}
	}
	require.Contains(t, []time.Duration{0, 7 * time.Millisecond}, sentAt, "delivered at t0 or t0+7ms: %v", early)
	m := h.message("trade", "pay", "after", h.clk.Now())
	m.ID = "producer-id-1"
	h.publishMessage(&Publication{Message: m}) // published at t0+7ms, durable and sent at t0+14ms
	require.Equal(t, []obsEvent{{"stored", "trade", 7 * time.Millisecond}, {"delivered", "trade", 7 * time.Millisecond}}, obs.take())

	ds := a.take()
	require.Len(t, ds, 2)
	h.clk.Advance(3 * time.Second)
	ack := func(d *Delivery, kind AckKind) {
		done := make(chan error, 1)
		h.b.Ack("s-trade", ca, d.ID, Ack{Kind: kind}, func(err error) { done <- err })
		h.settle()
		require.NoError(t, <-done)
	}
	ack(ds[0], AckOK)
	ack(ds[1], AckNak)
	// Acked at t0+14ms+3s, timed from the early delivery's send.
	require.Equal(t, []obsEvent{{"acked", "trade", 3*time.Second + 14*time.Millisecond - sentAt}, {"redelivered", RedeliverNak, 0}}, obs.take())

	// The first attempts are redelivered at once (KiteQ's schedule).
	again := a.take()
	require.Len(t, again, 1, "the nacked message again, at once")
	require.Equal(t, 2, again[0].Attempt)
	require.Empty(t, obs.take(), "a redelivery is not a first delivery")
	h.clk.Advance(h.b.cfg.AckWait)
	h.tick()
	require.Equal(t, []obsEvent{{"redelivered", RedeliverTimeout, 0}}, obs.take())
	require.Len(t, a.take(), 1, "attempt 3, at once")
	h.connClosed(1)
	require.Equal(t, []obsEvent{{"redelivered", RedeliverConsumerGone, 0}}, obs.take())
}

// TestObserverFirstDeliveryFromStore: a message its group could not take
// when it was published is timed, at its first delivery, from its Created
// time.
func TestObserverFirstDeliveryFromStore(t *testing.T) {
	obs := &recordingObserver{}
	h := newHarness(t, func(c *Config) { c.Observer = obs })
	bd := direct("trade", "pay", true)
	bd.GroupID = "s-trade"
	require.NoError(t, h.b.AddBindings(h.ctx, "s-trade", []registry.Binding{bd.Normalize()}))
	h.publish("trade", "pay", "waits")
	require.Equal(t, []obsEvent{{"stored", "trade", 0}}, obs.take(), "stored, delivered to nobody yet")

	h.clk.Advance(10 * time.Second)
	_, a := h.join("s-trade", "a", 1, 0)
	h.tick()
	require.Len(t, a.take(), 1)
	require.Equal(t, []obsEvent{{"delivered", "trade", 10 * time.Second}}, obs.take())

	// A producer's clock: none (a KiteQ creation time of 0), or ahead of
	// ours. Not observed, and no negative latency.
	require.True(t, h.b.Leave("s-trade", h.stat().Consumers[0].ID))
	require.Equal(t, []obsEvent{{"redelivered", RedeliverConsumerGone, 0}}, obs.take(), "its delivery left unacked")
	for _, created := range []time.Time{time.Unix(0, 0), h.clk.Now().Add(time.Hour)} {
		m := h.message("trade", "pay", "clock", h.clk.Now())
		m.Created = created
		h.publishMessage(&Publication{Message: m, NewID: true})
	}
	require.Equal(t, []obsEvent{{"stored", "trade", 0}, {"stored", "trade", 0}}, obs.take())
	_, a = h.join("s-trade", "b", 2, 0)
	h.tick()
	require.Len(t, a.take(), 3, "the first message again, and the two")
	require.Equal(t, []obsEvent{{"delivered", "trade", 0}}, obs.take())
}

// TestObserverSendFailed: a send that fails is offered again, counted as
// send_failed.
func TestObserverSendFailed(t *testing.T) {
	obs := &recordingObserver{}
	h := newHarness(t, func(c *Config) { c.Observer = obs })
	bd := direct("trade", "pay", true)
	bd.GroupID = "s-trade"
	require.NoError(t, h.b.AddBindings(h.ctx, "s-trade", []registry.Binding{bd.Normalize()}))
	_, err := h.b.Join(ConsumerSpec{Group: "s-trade", Key: "kiteq", Endpoint: &failingEndpoint{}})
	require.NoError(t, err)
	h.publish("trade", "pay", "x")
	es := obs.take()
	require.Contains(t, es, obsEvent{"redelivered", RedeliverSendFailed, 0})
	require.ElementsMatch(t, RedeliveryReasons, []string{RedeliverNak, RedeliverTimeout, RedeliverConsumerGone, RedeliverSendFailed})
}
