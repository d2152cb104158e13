package compat_test

import (
	"crypto/rand"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kitenats/kitenats/compat"
	"github.com/kitenats/kitenats/compat/compattest"
	"github.com/kitenats/kitenats/compat/wire"
	"github.com/kitenats/kitenats/store"
)

func storedMessage(bodyType store.BodyType, body string) *store.Message {
	return &store.Message{
		Topic: "trade", ID: compattest.NewID(), MessageType: "pay-succ", Group: "p-trade",
		BodyType: bodyType, Body: []byte(body),
		Properties:   []store.Property{{Key: "orderNo", Value: "42"}, {Key: "amount", Value: "9.90"}},
		Created:      time.Unix(1_700_000_000, 0),
		Expires:      time.Unix(1_700_086_400, 0),
		DeliverLimit: 7,
	}
}

func TestCompatDeliveryFrame(t *testing.T) {
	b := newFakeBroker()
	c, j := joinedClient(t, b, startServer(t, b, nil), "s-trade")

	m := storedMessage(store.BodyString, "hello")
	require.NoError(t, j.ep.Deliver(compat.Delivery{ID: "d1", Consumer: j.id, Attempt: 1, Message: m}))
	d := c.ExpectDelivery()
	require.Equal(t, wire.CmdStringMessage, d.Cmd, "the kind the producer sent")
	require.GreaterOrEqual(t, d.Opaque, uint32(0x80000000))
	h := d.Header
	// Every required field is present (Decode enforces it too), with the
	// stored values.
	for name, present := range map[string]bool{
		"messageId": h.MessageId != nil, "topic": h.Topic != nil, "messageType": h.MessageType != nil,
		"expiredTime": h.ExpiredTime != nil, "deliverLimit": h.DeliverLimit != nil, "groupId": h.GroupId != nil,
		"commit": h.Commit != nil, "fly": h.Fly != nil, "createTime": h.CreateTime != nil, "snappy": h.Snappy != nil,
	} {
		require.True(t, present, name)
	}
	require.Equal(t, m.ID, h.GetMessageId())
	require.Equal(t, "trade", h.GetTopic())
	require.Equal(t, "pay-succ", h.GetMessageType())
	require.Equal(t, int64(1_700_086_400), h.GetExpiredTime())
	require.Equal(t, int32(7), h.GetDeliverLimit())
	require.Equal(t, "p-trade", h.GetGroupId(), "the publisher's group")
	require.True(t, h.GetCommit())
	require.False(t, h.GetFly())
	require.Equal(t, int64(1_700_000_000), h.GetCreateTime())
	require.False(t, h.GetSnappy(), "stored bodies are raw")
	require.Len(t, h.GetProperties(), 2)
	require.Equal(t, "orderNo", h.GetProperties()[0].GetKey())
	require.Equal(t, "9.90", h.GetProperties()[1].GetValue())
	require.Equal(t, "hello", string(d.Body))

	m2 := storedMessage(store.BodyBytes, "\x00\x01")
	m2.Properties = nil
	require.NoError(t, j.ep.Deliver(compat.Delivery{ID: "d2", Consumer: j.id, Attempt: 2, Message: m2}))
	d2 := c.ExpectDelivery()
	require.Equal(t, wire.CmdBytesMessage, d2.Cmd)
	require.Equal(t, d.Opaque+1, d2.Opaque, "a fresh opaque per frame")
	require.Equal(t, []byte("\x00\x01"), d2.Body)

	// DeliverAck status reaches the broker as the ack of that delivery.
	c.DeliverAck(d2, false)
	require.Equal(t, compat.Ack{Group: "s-trade", Consumer: j.id, Delivery: "d2", OK: false}, next(t, b.acks))
	c.DeliverAck(d, true)
	require.Equal(t, compat.Ack{Group: "s-trade", Consumer: j.id, Delivery: "d1", OK: true}, next(t, b.acks))

	// An opaque already acked, or never used, is ignored.
	c.DeliverAck(d, true)
	c.DeliverAck(compattest.Delivery{Opaque: 12345, Header: d.Header}, true)
	c.Heartbeat(1)
	none(t, b.acks)
}

func TestCompatDeliverAckMatchedPerConnection(t *testing.T) {
	b := newFakeBroker()
	addr := startServer(t, b, nil)
	c1, j1 := joinedClient(t, b, addr, "s-trade")
	c2, j2 := joinedClient(t, b, addr, "s-trade")
	require.NoError(t, j1.ep.Deliver(compat.Delivery{ID: "d1", Consumer: j1.id, Message: storedMessage(store.BodyBytes, "x")}))
	require.NoError(t, j2.ep.Deliver(compat.Delivery{ID: "d2", Consumer: j2.id, Message: storedMessage(store.BodyBytes, "y")}))
	d1, d2 := c1.ExpectDelivery(), c2.ExpectDelivery()
	require.Equal(t, d1.Opaque, d2.Opaque, "opaques are per connection")

	c2.DeliverAck(d2, true)
	require.Equal(t, "d2", next(t, b.acks).Delivery, "c2's ack is c2's delivery")
	c2.DeliverAck(d1, true) // same opaque again on c2: already used there
	c2.Heartbeat(1)
	none(t, b.acks)
	c1.DeliverAck(d1, true)
	require.Equal(t, "d1", next(t, b.acks).Delivery)
}

func TestCompatDeliverFullQueueFails(t *testing.T) {
	b := newFakeBroker()
	c, j := joinedClient(t, b, startServer(t, b, func(c *compat.Config) { c.WriteQueue = 1; c.WriteTimeout = time.Minute }), "s-trade")
	big := storedMessage(store.BodyBytes, string(make([]byte, 1<<20)))
	// The client reads nothing: the socket buffers fill, the writer blocks,
	// then the one-frame queue is full.
	var err error
	for i := 0; i < 500 && err == nil; i++ {
		err = j.ep.Deliver(compat.Delivery{ID: "d", Consumer: j.id, Message: big})
	}
	require.ErrorIs(t, err, compat.ErrQueueFull)

	// Once the connection is gone, deliveries are dropped without an
	// error: Leave has handed them back to the broker.
	c.Close()
	next(t, b.left)
	require.NoError(t, j.ep.Deliver(compat.Delivery{ID: "d", Consumer: j.id, Message: big}))
}

func TestCompatDeliverTooLargeForAFrame(t *testing.T) {
	b := newFakeBroker()
	c, j := joinedClient(t, b, startServer(t, b, nil), "s-trade")

	// 3 MiB that compresses: sent Snappy-compressed, flagged, and the
	// client gets the original back.
	zeros := storedMessage(store.BodyString, string(make([]byte, 3<<20)))
	require.NoError(t, j.ep.Deliver(compat.Delivery{ID: "d1", Consumer: j.id, Message: zeros}))
	d := c.ExpectDelivery()
	require.True(t, d.Header.GetSnappy())
	raw, err := wire.DecodeBody(d.Cmd, d.Body, true, 4<<20)
	require.NoError(t, err)
	require.Equal(t, zeros.Body, raw)

	// 3 MiB that does not compress cannot be sent at all.
	noise := make([]byte, 3<<20)
	_, _ = rand.Read(noise)
	err = j.ep.Deliver(compat.Delivery{ID: "d2", Consumer: j.id, Message: storedMessage(store.BodyBytes, string(noise))})
	require.ErrorIs(t, err, compat.ErrTooLarge)
	c.Heartbeat(1)
}
