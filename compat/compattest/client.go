// Package compattest is a scripted KiteQ client for tests: it speaks raw
// frames through compat/wire, one call per protocol step, so a test can
// play the unmodified kiteq-client-go exactly, or misbehave on purpose
// (bad lengths, garbage, frames out of order).
//
// Every method fails the test (through require) instead of returning an
// error, except the Try* and Raw variants, which a test uses to observe a
// failure or to read from another goroutine. A Client is used by one
// goroutine at a time.
package compattest

import (
	"bufio"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/proto"

	"github.com/kitenats/kitenats/compat/wire"
)

// DefaultTimeout bounds every read of a Client unless Timeout is changed.
const DefaultTimeout = 5 * time.Second

// Client is one scripted KiteQ connection.
type Client struct {
	t       testing.TB
	Conn    net.Conn
	r       *bufio.Reader
	next    uint32 // the last request opaque used; like the client, from 1
	Timeout time.Duration
}

// Dial connects to a KiteQ broker at addr. The connection is closed when
// the test ends.
func Dial(t testing.TB, addr string) *Client {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, DefaultTimeout)
	require.NoError(t, err)
	return Wrap(t, conn)
}

// DialTLS connects to a KiteQ broker whose listener is TLS only
// (compat.Config.TLS) and completes the TLS handshake with cfg (RootCAs,
// and a client certificate where the broker asks for one). The connection
// is closed when the test ends.
func DialTLS(t testing.TB, addr string, cfg *tls.Config) *Client {
	t.Helper()
	conn, err := DialTLSConn(addr, cfg)
	require.NoError(t, err)
	return Wrap(t, conn)
}

// DialTLSConn dials addr and completes the TLS handshake with cfg within
// DefaultTimeout, for tests that expect the handshake to fail. (With TLS
// 1.3 a server checks the client's certificate after the client's side of
// the handshake is done: its refusal shows on the first read.)
func DialTLSConn(addr string, cfg *tls.Config) (*tls.Conn, error) {
	d := &tls.Dialer{NetDialer: &net.Dialer{Timeout: DefaultTimeout}, Config: cfg}
	conn, err := d.Dial("tcp", addr)
	if err != nil {
		return nil, err
	}
	return conn.(*tls.Conn), nil
}

// Wrap makes a Client of a connection the test dialled itself (from a
// chosen source address, say). The connection is closed when the test
// ends.
func Wrap(t testing.TB, conn net.Conn) *Client {
	t.Cleanup(func() { _ = conn.Close() })
	return &Client{t: t, Conn: conn, r: bufio.NewReader(conn), Timeout: DefaultTimeout}
}

// Close closes the connection.
func (c *Client) Close() { _ = c.Conn.Close() }

// NextOpaque returns a fresh request opaque, counting from 1 as the
// original client does.
func (c *Client) NextOpaque() uint32 {
	c.next++
	return c.next
}

// WriteRaw writes b as it is.
func (c *Client) WriteRaw(b []byte) error {
	_, err := c.Conn.Write(b)
	return err
}

// SendWith encodes m as a cmd frame with the given opaque and writes it.
func (c *Client) SendWith(opaque uint32, cmd wire.Cmd, m proto.Message) {
	c.t.Helper()
	body, err := wire.Encode(cmd, m)
	require.NoError(c.t, err)
	require.NoError(c.t, wire.WriteFrame(c.Conn, wire.Frame{Opaque: opaque, Cmd: cmd, Body: body}))
}

// Send writes m as a cmd request with a fresh opaque and returns it.
func (c *Client) Send(cmd wire.Cmd, m proto.Message) uint32 {
	c.t.Helper()
	o := c.NextOpaque()
	c.SendWith(o, cmd, m)
	return o
}

// TryRead reads the next frame within Timeout.
func (c *Client) TryRead() (wire.Frame, error) {
	if err := c.Conn.SetReadDeadline(time.Now().Add(c.Timeout)); err != nil {
		return wire.Frame{}, err
	}
	return wire.ReadFrame(c.r)
}

// Read reads and decodes the next frame.
func (c *Client) Read() (wire.Frame, proto.Message) {
	c.t.Helper()
	f, err := c.TryRead()
	require.NoError(c.t, err, "reading a frame")
	m, err := wire.Decode(f)
	require.NoError(c.t, err, "decoding a %s frame", f.Cmd)
	return f, m
}

// Expect reads the next frame and requires its command and opaque.
func (c *Client) Expect(cmd wire.Cmd, opaque uint32) proto.Message {
	c.t.Helper()
	f, m := c.Read()
	require.Equal(c.t, cmd, f.Cmd, "command of %v", m)
	require.Equal(c.t, opaque, f.Opaque, "opaque of %s", f.Cmd)
	return m
}

// ExpectClosed requires the broker to close the connection (after any
// frames it still sends) within Timeout; it returns those frames.
func (c *Client) ExpectClosed() []wire.Frame {
	c.t.Helper()
	var got []wire.Frame
	for {
		f, err := c.TryRead()
		if err != nil {
			var ne net.Error
			require.False(c.t, errors.As(err, &ne) && ne.Timeout(), "connection still open after %s", c.Timeout)
			require.True(c.t, errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || isReset(err), "read error %v", err)
			return got
		}
		got = append(got, f)
	}
}

func isReset(err error) bool {
	var oe *net.OpError
	return errors.As(err, &oe)
}

// ExpectSilence requires that nothing arrives for d. It consumes the
// connection's read state, so use it last or follow it with a round trip.
func (c *Client) ExpectSilence(d time.Duration) {
	c.t.Helper()
	require.NoError(c.t, c.Conn.SetReadDeadline(time.Now().Add(d)))
	f, err := wire.ReadFrame(c.r)
	var ne net.Error
	require.True(c.t, errors.As(err, &ne) && ne.Timeout(), "unexpected frame %s opaque %d (err %v)", f.Cmd, f.Opaque, err)
}

// Handshake sends ConnMeta and returns the ConnAuthAck.
func (c *Client) Handshake(group, secret string, warmingupSec int32) *wire.ConnAuthAck {
	c.t.Helper()
	o := c.Send(wire.CmdConnMeta, &wire.ConnMeta{GroupId: proto.String(group), SecretKey: proto.String(secret), WarmingupSec: proto.Int32(warmingupSec)})
	return c.Expect(wire.CmdConnAuth, o).(*wire.ConnAuthAck)
}

// MustHandshake performs a handshake that must succeed.
func (c *Client) MustHandshake(group, secret string, warmingupSec int32) {
	c.t.Helper()
	ack := c.Handshake(group, secret, warmingupSec)
	require.True(c.t, ack.GetStatus(), "handshake refused: %s", ack.GetFeedback())
}

// Heartbeat pings and requires the echo.
func (c *Client) Heartbeat(version int64) {
	c.t.Helper()
	o := c.Send(wire.CmdHeartbeat, &wire.HeartBeat{Version: proto.Int64(version)})
	hb := c.Expect(wire.CmdHeartbeat, o).(*wire.HeartBeat)
	require.Equal(c.t, version, hb.GetVersion())
}

// Publish sends a message of kind cmd (CmdBytesMessage or
// CmdStringMessage) and returns its opaque. body is sent as it is: compress
// it with wire.EncodeBody and set h.Snappy to publish compressed.
func (c *Client) Publish(cmd wire.Cmd, h *wire.Header, body []byte) uint32 {
	c.t.Helper()
	if cmd == wire.CmdStringMessage {
		return c.Send(cmd, &wire.StringMessage{Header: h, Body: proto.String(string(body))})
	}
	if body == nil {
		body = []byte{} // present, as proto2 requires
	}
	return c.Send(cmd, &wire.BytesMessage{Header: h, Body: body})
}

// ExpectStoreAck reads the MessageStoreAck of the publish with opaque o.
func (c *Client) ExpectStoreAck(o uint32) *wire.MessageStoreAck {
	c.t.Helper()
	return c.Expect(wire.CmdMessageStoreAck, o).(*wire.MessageStoreAck)
}

// Delivery is a message the broker pushed.
type Delivery struct {
	Opaque uint32
	Cmd    wire.Cmd
	Header *wire.Header
	Body   []byte // as carried: compressed if Header.snappy
}

// ExpectDelivery reads the next frame, which must be a delivery.
func (c *Client) ExpectDelivery() Delivery {
	c.t.Helper()
	d, err := c.TryDelivery()
	require.NoError(c.t, err)
	return d
}

// TryDelivery reads the next frame within Timeout and returns it as a
// delivery, or an error if it is none. Unlike ExpectDelivery it may be
// called from any goroutine.
func (c *Client) TryDelivery() (Delivery, error) {
	f, err := c.TryRead()
	if err != nil {
		return Delivery{}, err
	}
	m, err := wire.Decode(f)
	if err != nil {
		return Delivery{}, err
	}
	switch m := m.(type) {
	case *wire.BytesMessage:
		return Delivery{Opaque: f.Opaque, Cmd: f.Cmd, Header: m.GetHeader(), Body: m.GetBody()}, nil
	case *wire.StringMessage:
		return Delivery{Opaque: f.Opaque, Cmd: f.Cmd, Header: m.GetHeader(), Body: []byte(m.GetBody())}, nil
	default:
		return Delivery{}, fmt.Errorf("expected a delivery, got %s opaque %d: %v", f.Cmd, f.Opaque, m)
	}
}

// DeliverAck answers delivery d as the original client does: the same
// opaque, the header's id, topic, type and (publisher's) group.
func (c *Client) DeliverAck(d Delivery, status bool) {
	c.t.Helper()
	require.NoError(c.t, c.TryDeliverAck(d, status))
}

// TryDeliverAck is DeliverAck returning the write error; it may be called
// from any goroutine.
func (c *Client) TryDeliverAck(d Delivery, status bool) error {
	body, err := wire.Encode(wire.CmdDeliverAck, &wire.DeliverAck{
		MessageId:   proto.String(d.Header.GetMessageId()),
		Topic:       proto.String(d.Header.GetTopic()),
		MessageType: proto.String(d.Header.GetMessageType()),
		GroupId:     proto.String(d.Header.GetGroupId()),
		Status:      proto.Bool(status),
		Feedback:    proto.String(""),
	})
	if err != nil {
		return err
	}
	return wire.WriteFrame(c.Conn, wire.Frame{Opaque: d.Opaque, Cmd: wire.CmdDeliverAck, Body: body})
}

// Header returns a header with every required field set as the client's
// BuildByteMessage does (no expiry, deliverLimit 100, committed, not fly,
// createTime now, not compressed) for a message of group.
func Header(id, topic, messageType, group string) *wire.Header {
	return &wire.Header{
		MessageId:    proto.String(id),
		Topic:        proto.String(topic),
		MessageType:  proto.String(messageType),
		ExpiredTime:  proto.Int64(-1),
		DeliverLimit: proto.Int32(100),
		GroupId:      proto.String(group),
		Commit:       proto.Bool(true),
		Fly:          proto.Bool(false),
		CreateTime:   proto.Int64(time.Now().Unix()),
	}
}

// Props returns header properties from key, value pairs.
func Props(kv ...string) []*wire.Entry {
	es := make([]*wire.Entry, 0, len(kv)/2)
	for i := 0; i+1 < len(kv); i += 2 {
		es = append(es, &wire.Entry{Key: proto.String(kv[i]), Value: proto.String(kv[i+1])})
	}
	return es
}

// NewID returns a random message id: 32 lower-case hex digits, as the
// client's MessageId() makes them.
func NewID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
