package compat_test

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/proto"

	"github.com/kitenats/kitenats/compat"
	"github.com/kitenats/kitenats/compat/compattest"
	"github.com/kitenats/kitenats/compat/wire"
	"github.com/kitenats/kitenats/kqerr"
	"github.com/kitenats/kitenats/store"
)

// clock is the fixed time of publish tests.
var clock = time.Unix(1_700_000_000, 0)

func TestCompatPublishStoreAck(t *testing.T) {
	for _, tc := range []struct {
		name     string
		edit     func(h *wire.Header)
		answer   func(done func(compat.Result, error)) // nil: the broker must not be called
		mode     compat.Mode
		status   bool
		feedback string // prefix
	}{
		{
			name:   "stored",
			answer: func(done func(compat.Result, error)) { done(compat.Result{Seq: 9}, nil) },
			status: true, feedback: "Store Result true",
		},
		{
			name:   "duplicate",
			answer: func(done func(compat.Result, error)) { done(compat.Result{Seq: 9, Duplicate: true}, nil) },
			status: true, feedback: "Store Result true Cost:0 Duplicate",
		},
		{
			name:   "fly",
			edit:   func(h *wire.Header) { h.Fly = proto.Bool(true) },
			answer: func(done func(compat.Result, error)) { done(compat.Result{Seq: 9}, nil) },
			mode:   compat.ModeFly, status: true, feedback: "FLY NO NEED SAVE",
		},
		{
			name: "broker refusal is passed through",
			answer: func(done func(compat.Result, error)) {
				done(compat.Result{}, &kqerr.Error{Code: kqerr.NotFound, Description: "kq: topic not served: trade"})
			},
			feedback: "kq: topic not served: trade",
		},
		{
			name: "commit=false is a prepare, which the broker refuses for now",
			edit: func(h *wire.Header) { h.Commit = proto.Bool(false) },
			mode: compat.ModePrepare,
			answer: func(done func(compat.Result, error)) {
				done(compat.Result{}, &kqerr.Error{Code: 501, Description: "kq: two-phase commit is not implemented yet"})
			},
			feedback: "kq: two-phase commit is not implemented yet",
		},
		{
			name:     "internal errors do not leak",
			answer:   func(done func(compat.Result, error)) { done(compat.Result{}, errors.New("disk on fire")) },
			feedback: "kq: internal error",
		},
		{name: "short id", edit: func(h *wire.Header) { h.MessageId = proto.String("abc") }, feedback: `kq: messageId "abc" is not 32 hex digits`},
		{name: "non-hex id", edit: func(h *wire.Header) { h.MessageId = proto.String(strings.Repeat("g", 32)) }, feedback: "kq: messageId"},
		{name: "empty topic", edit: func(h *wire.Header) { h.Topic = proto.String("") }, feedback: "kq: topic and messageType must not be empty"},
		{name: "expired", edit: func(h *wire.Header) { h.ExpiredTime = proto.Int64(clock.Unix()) }, feedback: "kq: expired message"},
		{
			name:     "fly must be committed",
			edit:     func(h *wire.Header) { h.Fly = proto.Bool(true); h.Commit = proto.Bool(false) },
			feedback: "kq: a fly message must be committed",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := newFakeBroker()
			b.onPublish = func(_ *store.Message, _ compat.Mode, done func(compat.Result, error)) {
				if tc.answer == nil {
					t.Error("the broker was called")
					done(compat.Result{}, nil)
					return
				}
				tc.answer(done)
			}
			c, _ := joinedClient(t, b, startServer(t, b, func(c *compat.Config) { c.Now = func() time.Time { return clock } }), "p-trade")
			h := compattest.Header(compattest.NewID(), "trade", "pay", "p-trade")
			if tc.edit != nil {
				tc.edit(h)
			}
			o := c.Publish(wire.CmdBytesMessage, h, []byte("body"))
			ack := c.ExpectStoreAck(o)
			require.Equal(t, h.GetMessageId(), ack.GetMessageId(), "the id is echoed, valid or not")
			require.NotNil(t, ack.Feedback)
			require.Equal(t, tc.status, ack.GetStatus(), ack.GetFeedback())
			require.True(t, strings.HasPrefix(ack.GetFeedback(), tc.feedback), "feedback %q, want prefix %q", ack.GetFeedback(), tc.feedback)
			if tc.answer != nil {
				require.Equal(t, tc.mode, next(t, b.publishes).mode)
			}
		})
	}
}

func TestCompatPublishBuildsMessage(t *testing.T) {
	b := newFakeBroker()
	c, _ := joinedClient(t, b, startServer(t, b, func(c *compat.Config) { c.Now = func() time.Time { return clock } }), "p-trade")
	id := compattest.NewID()
	h := compattest.Header(id, "trade", "pay-succ", "p-trade")
	h.CreateTime = proto.Int64(0)
	h.DeliverLimit = proto.Int32(0)
	h.ExpiredTime = proto.Int64(-1)
	h.Properties = compattest.Props("z", "1", "a", "2", "z", "3")
	o := c.Publish(wire.CmdStringMessage, h, []byte("héllo"))
	require.True(t, c.ExpectStoreAck(o).GetStatus())
	p := next(t, b.publishes)
	require.Equal(t, compat.ModeStore, p.mode)
	require.Equal(t, &store.Message{
		Topic: "trade", ID: id, MessageType: "pay-succ", Group: "p-trade",
		BodyType: store.BodyString, Body: []byte("héllo"),
		Properties:   []store.Property{{Key: "z", Value: "1"}, {Key: "a", Value: "2"}, {Key: "z", Value: "3"}},
		Created:      clock,
		Expires:      clock.Add(7 * 24 * time.Hour),
		DeliverLimit: 100,
	}, p.m)

	h = compattest.Header(strings.ToUpper(compattest.NewID()), "trade", "pay-succ", "p-trade")
	h.DeliverLimit = proto.Int32(5)
	h.ExpiredTime = proto.Int64(clock.Unix() + 60)
	o = c.Publish(wire.CmdBytesMessage, h, nil)
	require.True(t, c.ExpectStoreAck(o).GetStatus(), "upper-case hex is a valid id")
	p = next(t, b.publishes)
	require.Equal(t, store.BodyBytes, p.m.BodyType)
	require.Equal(t, 5, p.m.DeliverLimit)
	require.Equal(t, clock.Add(time.Minute), p.m.Expires)
	require.Empty(t, p.m.Body)
}

func TestCompatPublishSnappyStoredRaw(t *testing.T) {
	b := newFakeBroker()
	c, _ := joinedClient(t, b, startServer(t, b, nil), "p-trade")
	raw := []byte("hello hello hello hello")
	for _, cmd := range []wire.Cmd{wire.CmdBytesMessage, wire.CmdStringMessage} {
		body, err := wire.EncodeBody(cmd, raw)
		require.NoError(t, err)
		h := compattest.Header(compattest.NewID(), "trade", "pay", "p-trade")
		h.Snappy = proto.Bool(true)
		require.True(t, c.ExpectStoreAck(c.Publish(cmd, h, body)).GetStatus())
		require.Equal(t, raw, next(t, b.publishes).m.Body, "%s body stored raw", cmd)
	}
	// Appendix C: base64 of the Snappy block of the same text.
	h := compattest.Header(compattest.NewID(), "trade", "pay", "p-trade")
	h.Snappy = proto.Bool(true)
	require.True(t, c.ExpectStoreAck(c.Publish(wire.CmdStringMessage, h, []byte("FxRoZWxsbyBCBgA="))).GetStatus())
	require.Equal(t, raw, next(t, b.publishes).m.Body)

	for cmd, body := range map[wire.Cmd]string{
		wire.CmdBytesMessage:  "\x05\xff\xff\xff", // claims 5 bytes, then garbage
		wire.CmdStringMessage: "!!not base64",
	} {
		h := compattest.Header(compattest.NewID(), "trade", "pay", "p-trade")
		h.Snappy = proto.Bool(true)
		ack := c.ExpectStoreAck(c.Publish(cmd, h, []byte(body)))
		require.False(t, ack.GetStatus())
		require.Contains(t, ack.GetFeedback(), "does not decompress")
	}
	none(t, b.publishes)
}

func TestCompatPublishOversize(t *testing.T) {
	b := newFakeBroker()
	c, _ := joinedClient(t, b, startServer(t, b, func(c *compat.Config) { c.MaxBody = 4096 }), "p-trade")
	publish := func(body []byte, snappy bool) *wire.MessageStoreAck {
		h := compattest.Header(compattest.NewID(), "trade", "pay", "p-trade")
		h.Snappy = proto.Bool(snappy)
		if snappy {
			var err error
			body, err = wire.EncodeBody(wire.CmdBytesMessage, body)
			require.NoError(t, err)
		}
		return c.ExpectStoreAck(c.Publish(wire.CmdBytesMessage, h, body))
	}
	require.True(t, publish(make([]byte, 4096), false).GetStatus())
	ack := publish(make([]byte, 4097), false)
	require.False(t, ack.GetStatus())
	require.Contains(t, ack.GetFeedback(), "too large")

	zeros := make([]byte, 64<<10)
	packed, _ := wire.EncodeBody(wire.CmdBytesMessage, zeros)
	require.Less(t, len(packed), 4096, "the compressed body is small")
	ack = publish(zeros, true)
	require.False(t, ack.GetStatus(), "the decompressed size counts")
	require.Contains(t, ack.GetFeedback(), "too large")
	require.True(t, publish(bytes.Repeat([]byte("a"), 4000), true).GetStatus())

	require.Len(t, b.publishes, 2)
}
