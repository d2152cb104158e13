package client

import (
	"errors"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/require"
)

// testLogger sends a component's logs to t.Log.
func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(string(p))
	return len(p), nil
}

// startConsumer starts a consumer whose handler sends every delivery to the
// returned channel and returns what result(d) says. Closed when the test
// ends, before its connection.
func startConsumer(t *testing.T, nc *nats.Conn, group string, bs []Binding, result func(Delivery) error, opts ...ConsumerOption) (*Consumer, <-chan Delivery) {
	t.Helper()
	c, err := NewConsumer(nc, group, bs, append([]ConsumerOption{Logger(testLogger(t))}, opts...)...)
	require.NoError(t, err)
	ch := make(chan Delivery, 100)
	require.NoError(t, c.Start(t.Context(), func(d *Delivery) error {
		ch <- *d
		if result == nil {
			return nil
		}
		return result(*d)
	}))
	t.Cleanup(func() { require.NoError(t, c.Close()) })
	return c, ch
}

func TestClientConsumerReceivesAndRedelivers(t *testing.T) {
	b := startBroker(t)
	p := NewProducer(connect(t, b.url(), "p-trade"), "p-trade")
	cc := connect(t, b.url(), "s-trade")
	c, ch := startConsumer(t, cc, "s-trade", []Binding{Direct("trade", "pay-succ")}, func(d Delivery) error {
		if d.Properties["fail"] == "once" && d.DeliverCount == 1 {
			return errors.New("not yet")
		}
		return nil
	}, MaxInflight(10), WarmingUp(1500*time.Millisecond), AckWait(2*time.Second), Concurrency(4))

	var s stat
	api(t, cc, "$KQ.ADMIN.STAT", nil, &s)
	require.Len(t, s.Consumers, 1)
	require.Equal(t, "s-trade", s.Consumers[0].Group)
	require.Equal(t, 10, s.Consumers[0].MaxInflight)
	require.Equal(t, 2, s.Consumers[0].WarmingupSec, "rounded up to whole seconds")

	before := time.Now().Truncate(time.Second)
	ack, err := p.Publish(t.Context(), "trade", "pay-succ", []byte(`{"order":42}`),
		Properties(map[string]string{"order": "42"}), TTL(time.Hour), DeliverLimit(5), BodyType("string"))
	require.NoError(t, err)
	d := recv(t, ch)
	require.Equal(t, ack.ID, d.ID)
	require.Equal(t, "trade", d.Topic)
	require.Equal(t, "pay-succ", d.MessageType)
	require.Equal(t, "p-trade", d.Group)
	require.Equal(t, map[string]string{"order": "42"}, d.Properties)
	require.Equal(t, `{"order":42}`, string(d.Body))
	require.Equal(t, "string", d.BodyType)
	require.Equal(t, 5, d.DeliverLimit)
	require.Equal(t, 1, d.DeliverCount)
	require.False(t, d.Created.Before(before))
	require.WithinDuration(t, time.Now().Add(time.Hour), d.Expires, 5*time.Second)

	// A handler error asks for a redelivery: attempt 2 comes, then no more.
	ack, err = p.Publish(t.Context(), "trade", "pay-succ", nil, Properties(map[string]string{"fail": "once"}))
	require.NoError(t, err)
	d1, d2 := recv(t, ch), recv(t, ch)
	require.Equal(t, ack.ID, d1.ID)
	require.Equal(t, ack.ID, d2.ID)
	require.Equal(t, 1, d1.DeliverCount)
	require.Equal(t, 2, d2.DeliverCount)
	requireNone(t, ch, 500*time.Millisecond)

	require.ErrorIs(t, c.Start(t.Context(), func(*Delivery) error { return nil }), ErrStarted)

	// Close deletes the consumer on the broker (the connection stays open).
	require.NoError(t, c.Close())
	require.NoError(t, c.Close(), "idempotent")
	require.Zero(t, consumersOf(t, cc, "s-trade"))
	require.ErrorIs(t, c.Start(t.Context(), func(*Delivery) error { return nil }), ErrClosed)
}

func TestClientConsumerRefusals(t *testing.T) {
	b := startBroker(t, writeConfig(t, `topics = ["trade"]`)...)
	nc := connect(t, b.url(), "s-trade")
	_, err := NewConsumer(nc, "s-trade", nil, MaxInflight(-1))
	require.Error(t, err)
	_, err = NewConsumer(nc, "s-trade", nil, Concurrency(0))
	require.Error(t, err)
	_, err = NewConsumer(nc, "s-trade", []Binding{{Topic: "trade", Type: BindType(7)}})
	require.Error(t, err)

	// A refused BIND fails Start with the broker's error and leaves no consumer.
	c, err := NewConsumer(nc, "s-trade", []Binding{Direct("user", "x")})
	require.NoError(t, err)
	err = c.Start(t.Context(), func(*Delivery) error { return nil })
	var e *Error
	require.ErrorAs(t, err, &e)
	require.Equal(t, 404, e.Code, "topic not served")
	require.Zero(t, consumersOf(t, nc, "s-trade"))
	require.NoError(t, c.Close())
}

func TestClientConsumerRetryDelay(t *testing.T) {
	b := startBroker(t)
	p := NewProducer(connect(t, b.url(), "p-trade"), "p-trade")
	_, ch := startConsumer(t, connect(t, b.url(), "s-trade"), "s-trade", []Binding{Fanout("trade")}, func(d Delivery) error {
		if d.DeliverCount == 1 {
			return Retry(800 * time.Millisecond)
		}
		return nil
	})
	_, err := p.Publish(t.Context(), "trade", "any", nil)
	require.NoError(t, err)
	recv(t, ch)
	start := time.Now()
	d := recv(t, ch)
	require.Equal(t, 2, d.DeliverCount)
	require.GreaterOrEqual(t, time.Since(start), 700*time.Millisecond, "not before the NAK's delay")
	requireNone(t, ch, 300*time.Millisecond)
}

func TestClientConsumerTerminateDeadLetters(t *testing.T) {
	b := startBroker(t)
	p := NewProducer(connect(t, b.url(), "p-trade"), "p-trade")
	cc := connect(t, b.url(), "s-trade")
	_, ch := startConsumer(t, cc, "s-trade", []Binding{Regx("trade", "^pay-")}, func(Delivery) error {
		return Terminate("bad order")
	})
	ack, err := p.Publish(t.Context(), "trade", "pay-fail", []byte("x"))
	require.NoError(t, err)
	require.Equal(t, 1, recv(t, ch).DeliverCount)

	type dlq struct {
		Total int `json:"total"`
		Items []struct {
			ID     string `json:"id"`
			Reason string `json:"reason"`
		} `json:"items"`
	}
	var list dlq
	require.Eventually(t, func() bool {
		list = dlq{}
		api(t, cc, "$KQ.ADMIN.DLQ.LIST", map[string]string{"topic": "trade", "groupId": "s-trade"}, &list)
		return list.Total == 1
	}, 5*time.Second, 20*time.Millisecond)
	require.Equal(t, ack.ID, list.Items[0].ID)
	require.Contains(t, list.Items[0].Reason, "bad order")
	requireNone(t, ch, 300*time.Millisecond)
}

// TestClientConsumerRebindAfterRestart kills the broker (SIGKILL) and starts
// it again on the same port and RocksDB store: the group's bindings come back
// from the store, the consumer's connection reconnects and the consumer
// binds again, so it receives what is published afterwards.
func TestClientConsumerRebindAfterRestart(t *testing.T) {
	b := startBroker(t, "-db", "rocksdb://"+t.TempDir())
	opts := []nats.Option{nats.ReconnectWait(50 * time.Millisecond), nats.MaxReconnects(-1)}
	pc := connect(t, b.url(), "p-trade", opts...)
	var reconnects atomic.Int32
	cc := connect(t, b.url(), "s-trade", append(opts, nats.ReconnectHandler(func(*nats.Conn) { reconnects.Add(1) }))...)
	p := NewProducer(pc, "p-trade")
	_, ch := startConsumer(t, cc, "s-trade", []Binding{Direct("trade", "pay")}, nil)

	before, err := p.Publish(t.Context(), "trade", "pay", []byte("before"))
	require.NoError(t, err)
	require.Equal(t, before.ID, recv(t, ch).ID)

	b.kill()
	b.start()
	id := NewMessageID()
	require.Eventually(t, func() bool { // the producer reconnects too
		_, err := p.Publish(t.Context(), "trade", "pay", []byte("after"), MessageID(id))
		return err == nil
	}, 10*time.Second, 50*time.Millisecond)
	d := recv(t, ch)
	for d.ID == before.ID { // its ack may have died with the broker: at least once
		d = recv(t, ch)
	}
	require.Equal(t, id, d.ID)
	require.Equal(t, "after", string(d.Body))
	require.Equal(t, 1, consumersOf(t, cc, "s-trade"))
	require.EqualValues(t, 1, reconnects.Load(), "the user's reconnect handler still runs")
}
