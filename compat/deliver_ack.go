package compat

import (
	"errors"
	"fmt"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/kitenats/kitenats/compat/wire"
	"github.com/kitenats/kitenats/store"
)

// Delivery opaques. The client's own request ids count up from 1 and are
// matched in a process-wide table, so a delivery opaque equal to one of them
// would make a pending publish of the client time out (kiteq-protocol.md
// §1.3, §12 item 3). Ours are taken from the upper half, per connection:
// firstOpaque, firstOpaque+1, ... wrapping within the upper half, never 0.
const firstOpaque uint32 = 0x80000000

// maxPending bounds the deliveries of one connection waiting for their
// DeliverAck. A delivery the client never acks is forgotten after
// maxPending later deliveries; the broker has redelivered it long before
// (its ack wait), and a late ack of a forgotten delivery is ignored, like
// any unknown opaque. The broker's per-consumer in-flight limit (1000 by
// default) keeps live deliveries far below this bound.
const maxPending = 1 << 16

// pendingDelivery is what a DeliverAck's opaque refers to.
type pendingDelivery struct {
	id       string
	consumer string
	size     int       // frame bytes counted in the window; 0 once uncounted
	sent     time.Time // when it was queued (cfg.Now)
}

// opaqueOf returns the opaque of the seq-th request of a connection.
func opaqueOf(seq uint64) uint32 { return firstOpaque | uint32(seq&0x7fffffff) }

// nextOpaqueLocked takes the next request opaque of the connection and
// forgets the delivery that used it maxPending requests ago.
// caller must hold s.mu
func (s *session) nextOpaqueLocked() uint32 {
	opaque := opaqueOf(s.seq)
	if s.seq >= maxPending {
		old := opaqueOf(s.seq - maxPending)
		s.uncountLocked(s.pending[old])
		delete(s.pending, old)
	}
	s.seq++
	return opaque
}

// nextOpaque is nextOpaqueLocked for a request that is not a delivery.
func (s *session) nextOpaque() uint32 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.nextOpaqueLocked()
}

// Deliver sends d to the client (kiteq-protocol.md §5.1): a BytesMessage or
// StringMessage, as the producer sent it, with the complete header and a
// fresh opaque, remembered until the DeliverAck. It never blocks.
func (s *session) Deliver(d Delivery) error {
	if d.Message == nil {
		return fmt.Errorf("compat: delivery %s without a message", d.ID)
	}
	cmd, body, err := encodeDelivery(d.Message)
	if err != nil {
		return err
	}
	size := wire.HeaderLen + len(body)
	s.mu.Lock()
	opaque := s.nextOpaqueLocked()
	// Recorded before the frame is queued: the ack may come back at once.
	p := pendingDelivery{id: d.ID, consumer: d.Consumer, size: size, sent: s.srv.cfg.Now()}
	s.pending[opaque] = p
	s.window.Add(int64(size))
	s.mu.Unlock()
	buf := wire.AppendFrame(make([]byte, 0, size), wire.Frame{Opaque: opaque, Cmd: cmd, Body: body})
	if err := s.enqueue(outFrame{buf: buf}); err != nil {
		s.mu.Lock()
		s.uncountLocked(s.pending[opaque])
		delete(s.pending, opaque)
		s.mu.Unlock()
		if errors.Is(err, errClosed) {
			return nil // see Endpoint.Deliver: Leave follows
		}
		return err
	}
	s.log.Debug("compat: deliver", "msg_id", d.Message.ID, "topic", d.Message.Topic, "opaque", opaque, "attempt", d.Attempt)
	return nil
}

// encodeDelivery builds the frame body of a delivery of m: every required
// header field present, the body raw (snappy=false), unless only Snappy
// makes it fit in a frame, in which case it goes compressed with
// snappy=true, which the client undoes.
func encodeDelivery(m *store.Message) (wire.Cmd, []byte, error) {
	h := deliveryHeader(m)
	cmd := wire.CmdBytesMessage
	if m.BodyType == store.BodyString {
		cmd = wire.CmdStringMessage
	}
	body, err := encodeMessage(cmd, h, m.Body)
	if err != nil || len(body) <= wire.MaxBodyLen {
		return cmd, body, err
	}
	packed, err := wire.EncodeBody(cmd, m.Body)
	if err != nil {
		return cmd, nil, err
	}
	h.Snappy = proto.Bool(true)
	if body, err = encodeMessage(cmd, h, packed); err != nil {
		return cmd, nil, err
	}
	if len(body) > wire.MaxBodyLen {
		return cmd, nil, fmt.Errorf("%w: %s is %d bytes compressed", ErrTooLarge, m.ID, len(body))
	}
	return cmd, body, nil
}

func encodeMessage(cmd wire.Cmd, h *wire.Header, body []byte) ([]byte, error) {
	if cmd == wire.CmdStringMessage {
		return wire.Encode(cmd, &wire.StringMessage{Header: h, Body: proto.String(string(body))})
	}
	return wire.Encode(cmd, &wire.BytesMessage{Header: h, Body: body})
}

// deliveryHeader is the KiteQ header of m as stored: the eight required
// fields, the properties in order, createTime, and snappy=false. A delivered
// message is committed; fly is not kept in the store, and the client
// ignores both (kiteq-protocol.md §12 item 21).
func deliveryHeader(m *store.Message) *wire.Header {
	expires := int64(-1)
	if !m.Expires.IsZero() {
		expires = m.Expires.Unix()
	}
	var created int64
	if !m.Created.IsZero() {
		created = m.Created.Unix()
	}
	limit := int32(maxDeliverLimit)
	if m.DeliverLimit > 0 && m.DeliverLimit < maxDeliverLimit {
		limit = int32(m.DeliverLimit)
	}
	h := &wire.Header{
		MessageId:    proto.String(m.ID),
		Topic:        proto.String(m.Topic),
		MessageType:  proto.String(m.MessageType),
		ExpiredTime:  proto.Int64(expires),
		DeliverLimit: proto.Int32(limit),
		GroupId:      proto.String(m.Group),
		Commit:       proto.Bool(true),
		Fly:          proto.Bool(false),
		CreateTime:   proto.Int64(created),
		Snappy:       proto.Bool(false),
	}
	if len(m.Properties) > 0 {
		h.Properties = make([]*wire.Entry, len(m.Properties))
		for i, p := range m.Properties {
			h.Properties[i] = &wire.Entry{Key: proto.String(p.Key), Value: proto.String(p.Value)}
		}
	}
	return h
}

// handleDeliverAck matches a DeliverAck to its delivery by opaque, on this
// connection only (kiteq-protocol.md §5.2), and passes status to the
// broker. Only status counts; the other fields are the client's echo.
// Unknown opaques (a late ack, another broker's id) are ignored.
func (s *session) handleDeliverAck(opaque uint32, m *wire.DeliverAck) {
	s.mu.Lock()
	p, ok := s.pending[opaque]
	s.uncountLocked(p)
	delete(s.pending, opaque)
	s.mu.Unlock()
	if !ok {
		s.log.Debug("compat: DeliverAck for an unknown opaque ignored", "opaque", opaque, "msg_id", m.GetMessageId())
		return
	}
	a := Ack{Group: s.group, Consumer: p.consumer, Delivery: p.id, OK: m.GetStatus()}
	s.srv.broker.Ack(a, func(err error) {
		if err != nil {
			s.log.Debug("compat: DeliverAck changed nothing", "msg_id", m.GetMessageId(), "status", a.OK, "err", err)
		}
	})
}

// Full reports whether the connection has its DeliveryWindow of bytes sent
// and not yet acknowledged: the broker then gives the group's messages to
// other members (semantics' optional Throttler). The DeliverAck that frees
// room wakes the broker, which looks again. Deliveries unacknowledged for
// StaleDelivery stop counting, so a client that lost some acks is not
// starved for good; that scan runs at most once per StaleDelivery/8 while
// the window is full.
func (s *session) Full() bool {
	limit := int64(s.srv.cfg.DeliveryWindow)
	if s.window.Load() < limit {
		return false // the common case: no lock
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.srv.cfg.Now()
	if now.Sub(s.staleScan) < s.srv.cfg.StaleDelivery/8 {
		return true
	}
	s.staleScan = now
	for o, p := range s.pending {
		if p.size > 0 && now.Sub(p.sent) >= s.srv.cfg.StaleDelivery {
			s.uncountLocked(p)
			p.size = 0
			s.pending[o] = p
		}
	}
	return s.window.Load() >= limit
}

// uncountLocked takes p's bytes out of the window.
// caller must hold s.mu
func (s *session) uncountLocked(p pendingDelivery) {
	s.window.Add(-int64(p.size))
}
