package client

import (
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestClientPublishAckAndDuplicate(t *testing.T) {
	b := startBroker(t)
	p := NewProducer(connect(t, b.url(), "p-trade"), "p-trade")
	ctx := t.Context()

	id := NewMessageID()
	a1, err := p.Publish(ctx, "trade", "pay-succ", []byte("one"), MessageID(id))
	require.NoError(t, err)
	require.Equal(t, Ack{Stream: "trade", Seq: a1.Seq, ID: id}, a1)
	require.NotZero(t, a1.Seq)
	a2, err := p.Publish(ctx, "trade", "pay-succ", []byte("one again"), MessageID(id))
	require.NoError(t, err)
	require.True(t, a2.Duplicate)
	require.Equal(t, a1.Seq, a2.Seq, "a duplicate repeats the original's seq")

	// A dedup key of any form: the id is derived from it.
	d1, err := p.Publish(ctx, "pay.succ 200", "x", nil, DedupID("order-42"))
	require.NoError(t, err)
	require.Equal(t, "pay%2Esucc%20200", d1.Stream)
	require.Regexp(t, "^[0-9a-f]{32}$", d1.ID)
	d2, err := p.Publish(ctx, "pay.succ 200", "x", nil, DedupID("order-42"))
	require.NoError(t, err)
	require.True(t, d2.Duplicate)
	require.Equal(t, d1.ID, d2.ID)

	// Without an id the broker makes one: never a duplicate.
	g1, err := p.Publish(ctx, "trade", "pay-succ", nil)
	require.NoError(t, err)
	g2, err := p.Publish(ctx, "trade", "pay-succ", nil)
	require.NoError(t, err)
	require.NotEqual(t, g1.ID, g2.ID)
	require.Greater(t, g2.Seq, g1.Seq)

	// A fly message is acknowledged when accepted.
	f, err := p.Publish(ctx, "trade", "pay-succ", nil, Fly(), Expires(time.Now().Add(time.Minute)))
	require.NoError(t, err)
	require.NotEmpty(t, f.ID)
}

func TestClientPublishErrors(t *testing.T) {
	b := startBroker(t, writeConfig(t, `topics = ["trade"]`)...)
	p := NewProducer(connect(t, b.url(), "p-trade"), "p-trade")
	ctx := t.Context()

	_, err := p.Publish(ctx, "trade", "pay", nil, DeliverLimit(101))
	var e *Error
	require.ErrorAs(t, err, &e)
	require.Equal(t, 400, e.Code)
	require.Equal(t, 14001, e.ErrCode)
	require.Contains(t, e.Description, "Kq-Deliver-Limit")

	_, err = p.Publish(ctx, "user", "pay", nil)
	require.ErrorAs(t, err, &e)
	require.Equal(t, 404, e.Code)
	require.Equal(t, 14004, e.ErrCode)
	require.Contains(t, err.Error(), "topic not served")

	_, err = p.Publish(ctx, "trade", "pay", nil, TTL(0))
	require.ErrorAs(t, err, &e)
	require.Equal(t, 400, e.Code, "a TTL under 1s")
	_, err = p.Publish(ctx, "trade", "pay", nil, Expires(time.Now().Add(-time.Hour)))
	require.ErrorAs(t, err, &e)
	require.Equal(t, 400, e.Code, "an expiry already past")
	_, err = p.Publish(ctx, "trade", "pay", nil, BodyType("json"))
	require.ErrorAs(t, err, &e)
	require.Equal(t, 400, e.Code)

	// Refused before sending: not broker errors.
	_, err = p.Publish(ctx, "trade", "pay", nil, Properties(map[string]string{"Kq-Tx": "prepare"}))
	require.Error(t, err)
	require.False(t, errors.As(err, &e))
	_, err = p.Publish(ctx, "", "pay", nil)
	require.Error(t, err)
	require.False(t, errors.As(err, &e))
}

func TestClientPublishAckCountsGroups(t *testing.T) {
	b := startBroker(t)
	p := NewProducer(connect(t, b.url(), "p-trade"), "p-trade")
	ctx := t.Context()

	a, err := p.Publish(ctx, "trade", "refund", []byte("nobody binds it"))
	require.NoError(t, err)
	require.Zero(t, a.Groups)

	_, ch := startConsumer(t, connect(t, b.url(), "s-trade"), "s-trade", []Binding{Direct("trade", "refund")}, nil)
	a, err = p.Publish(ctx, "trade", "refund", []byte("one group"))
	require.NoError(t, err)
	require.Equal(t, 1, a.Groups)
	require.Equal(t, "one group", string(recv(t, ch).Body), "the earlier publish is not delivered")
}
