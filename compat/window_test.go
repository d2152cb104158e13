package compat_test

import (
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kitenats/kitenats/compat"
	"github.com/kitenats/kitenats/compat/compattest"
	"github.com/kitenats/kitenats/store"
)

// fakeClock is a settable clock for Config.Now.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// TestCompatDeliveryWindow: a connection is Full once DeliveryWindow bytes
// of deliveries wait for their DeliverAck, and not after an ack frees room.
func TestCompatDeliveryWindow(t *testing.T) {
	b := newFakeBroker()
	const window = 8 << 10
	addr := startServer(t, b, func(c *compat.Config) { c.DeliveryWindow = window })
	c, j := joinedClient(t, b, addr, "s-trade")
	require.False(t, j.ep.Full(), "nothing sent yet")

	m := storedMessage(store.BodyBytes, strings.Repeat("x", 2<<10)) // a frame of about 2.1 KiB
	sent := 0
	for !j.ep.Full() {
		require.NoError(t, j.ep.Deliver(compat.Delivery{ID: "d", Consumer: j.id, Attempt: 1, Message: m}))
		sent++
		require.LessOrEqual(t, sent, 4, "full after window/frame deliveries")
	}
	require.Equal(t, 4, sent, "8 KiB of 2.1 KiB frames: full at the fourth")

	ds := make([]compattest.Delivery, sent)
	for i := range ds {
		ds[i] = c.ExpectDelivery()
	}
	c.DeliverAck(ds[0], true)
	next(t, b.acks) // the session handled the ack
	require.False(t, j.ep.Full(), "an ack frees room")

	// An unknown opaque frees nothing.
	require.NoError(t, j.ep.Deliver(compat.Delivery{ID: "d", Consumer: j.id, Attempt: 1, Message: m}))
	require.True(t, j.ep.Full())
	d := c.ExpectDelivery()
	d.Opaque ^= 0x7fff
	c.DeliverAck(d, true)
	c.Heartbeat(1) // a round trip: the ack was read
	require.True(t, j.ep.Full())
}

// TestCompatDeliveryWindowLargeMessage: a delivery larger than the whole
// window still goes when the window is empty, and fills it.
func TestCompatDeliveryWindowLargeMessage(t *testing.T) {
	b := newFakeBroker()
	addr := startServer(t, b, func(c *compat.Config) { c.DeliveryWindow = 1 << 10 })
	c, j := joinedClient(t, b, addr, "s-trade")
	m := storedMessage(store.BodyBytes, strings.Repeat("x", 4<<10))
	require.False(t, j.ep.Full())
	require.NoError(t, j.ep.Deliver(compat.Delivery{ID: "d", Consumer: j.id, Attempt: 1, Message: m}))
	require.True(t, j.ep.Full())
	c.DeliverAck(c.ExpectDelivery(), false)
	next(t, b.acks)
	require.False(t, j.ep.Full())
}

// TestCompatDeliveryWindowStale: deliveries never acknowledged stop
// counting after StaleDelivery, so a client that lost acks is not starved
// for good; a late ack is still passed to the broker.
func TestCompatDeliveryWindowStale(t *testing.T) {
	b := newFakeBroker()
	clock := &fakeClock{now: time.Unix(1_700_000_000, 0)}
	addr := startServer(t, b, func(c *compat.Config) {
		c.DeliveryWindow = 4 << 10
		c.StaleDelivery = 8 * time.Second
		c.Now = clock.Now
	})
	c, j := joinedClient(t, b, addr, "s-trade")
	m := storedMessage(store.BodyBytes, strings.Repeat("x", 3<<10))
	require.NoError(t, j.ep.Deliver(compat.Delivery{ID: "d1", Consumer: j.id, Attempt: 1, Message: m}))
	require.NoError(t, j.ep.Deliver(compat.Delivery{ID: "d2", Consumer: j.id, Attempt: 1, Message: m}))
	require.True(t, j.ep.Full())
	clock.Add(7 * time.Second)
	require.True(t, j.ep.Full(), "not stale yet")
	clock.Add(2 * time.Second)
	require.False(t, j.ep.Full(), "stale deliveries no longer count")

	d := c.ExpectDelivery()
	c.DeliverAck(d, true)
	a := next(t, b.acks)
	require.Equal(t, "d1", a.Delivery, "a late ack still reaches the broker")
	require.False(t, j.ep.Full())
}
