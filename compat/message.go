package compat

import (
	"fmt"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/kitenats/kitenats/compat/wire"
	"github.com/kitenats/kitenats/kqerr"
	"github.com/kitenats/kitenats/store"
)

// Header limits of kiteq-protocol.md §4.2 (MAX_DELIVER_LIMIT and
// MAX_EXPIRED_TIME of the original).
const (
	maxDeliverLimit = 100
	maxExpirySec    = 7 * 24 * 3600
)

// handlePublish takes a BytesMessage or StringMessage (kiteq-protocol.md
// §4): it checks and normalises the header, decompresses the body, hands
// the message to the broker and answers MessageStoreAck with the same
// opaque once the broker has decided. It never waits for the broker: the
// answer is sent from the broker's callback.
func (s *session) handlePublish(opaque uint32, cmd wire.Cmd, h *wire.Header, body []byte) {
	if !s.authed {
		s.refuseUnauthed(opaque, h)
		return
	}
	start := s.srv.cfg.Now()
	id := h.GetMessageId()
	m, mode, err := newMessage(cmd, h, body, start, s.srv.cfg.MaxBody)
	if err != nil {
		s.storeAck(opaque, id, mode, Result{}, err, start)
		return
	}
	s.log.Debug("compat: publish", "topic", m.Topic, "message_type", m.MessageType, "msg_id", m.ID, "mode", mode.String())
	topic, mt := m.Topic, m.MessageType // the broker owns m from Publish on
	s.srv.broker.Publish(m, mode, func(res Result, err error) {
		if err == nil && res.Groups == 0 && !res.Duplicate {
			s.log.Debug("compat: publish taken by no group", "topic", topic, "message_type", mt, "msg_id", id, "mode", mode.String())
		}
		s.storeAck(opaque, id, mode, res, err, start)
	})
}

// modeOf is the publish mode a header's commit and fly flags ask for.
func modeOf(h *wire.Header) Mode {
	switch {
	case !h.GetCommit():
		return ModePrepare
	case h.GetFly():
		return ModeFly
	default:
		return ModeStore
	}
}

// newMessage validates a published header, in the original's order where
// the checks are ours (message id, expiry, fly without commit; the topic,
// size, rate and store checks are the broker's), normalises it, and builds
// the message with its body decompressed. Refusals are *kqerr.Error values or the
// codec's body errors, both mapped by asRefusal. The mode is returned even
// with an error, for logs.
func newMessage(cmd wire.Cmd, h *wire.Header, body []byte, now time.Time, maxBody int) (*store.Message, Mode, error) {
	mode := modeOf(h)
	if !validMessageID(h.GetMessageId()) {
		return nil, mode, kqerr.New(kqerr.BadRequest, nil, "messageId %q is not 32 hex digits", h.GetMessageId())
	}
	if h.GetTopic() == "" || h.GetMessageType() == "" {
		return nil, mode, kqerr.New(kqerr.BadRequest, nil, "topic and messageType must not be empty")
	}
	created, expires, limit := normalize(h, now)
	if expires <= now.Unix() {
		return nil, mode, kqerr.New(kqerr.BadRequest, nil, "expired message: expiredTime %d is not after now (%d)", expires, now.Unix())
	}
	if h.GetFly() && !h.GetCommit() {
		return nil, mode, kqerr.New(kqerr.BadRequest, nil, "a fly message must be committed (fly=true, commit=false)")
	}
	raw, err := wire.DecodeBody(cmd, body, h.GetSnappy(), maxBody)
	if err != nil {
		return nil, mode, fmt.Errorf("compat: message %s: %w", h.GetMessageId(), err)
	}
	m := &store.Message{
		Topic:        h.GetTopic(),
		ID:           h.GetMessageId(),
		MessageType:  h.GetMessageType(),
		Group:        h.GetGroupId(),
		BodyType:     store.BodyBytes,
		Body:         raw,
		Created:      time.Unix(created, 0),
		Expires:      time.Unix(expires, 0),
		DeliverLimit: int(limit),
	}
	if cmd == wire.CmdStringMessage {
		m.BodyType = store.BodyString
	}
	if ps := h.GetProperties(); len(ps) > 0 {
		m.Properties = make([]store.Property, len(ps))
		for i, p := range ps {
			m.Properties[i] = store.Property{Key: p.GetKey(), Value: p.GetValue()}
		}
	}
	return m, mode, nil
}

// normalize applies the original's header normalisation, in Unix seconds:
// createTime <= 0 becomes now; deliverLimit outside 1..100 becomes 100;
// expiredTime <= 0 or beyond now + 7 days becomes now + 7 days.
func normalize(h *wire.Header, now time.Time) (created, expires int64, limit int32) {
	sec := now.Unix()
	created = h.GetCreateTime()
	if created <= 0 {
		created = sec
	}
	limit = h.GetDeliverLimit()
	if limit <= 0 || limit > maxDeliverLimit {
		limit = maxDeliverLimit
	}
	expires = h.GetExpiredTime()
	if expires <= 0 || expires > sec+maxExpirySec {
		expires = sec + maxExpirySec
	}
	return created, expires, limit
}

// validMessageID reports whether id is exactly 32 hex digits, any case.
func validMessageID(id string) bool {
	if len(id) != 32 {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
			return false
		}
	}
	return true
}

// storeAck answers a publish: MessageStoreAck with the same opaque, the
// echoed message id, and all three fields present. status is true only when
// the broker accepted the message (durable, or taken for a fly delivery).
func (s *session) storeAck(opaque uint32, id string, mode Mode, res Result, err error, start time.Time) {
	ack := &wire.MessageStoreAck{MessageId: proto.String(id), Status: proto.Bool(err == nil)}
	if err != nil {
		e, internal := asRefusal(err)
		if internal {
			s.log.Warn("compat: publish failed", "msg_id", id, "err", err)
		} else {
			s.log.Debug("compat: publish refused", "msg_id", id, "code", int(e.Code), "err", e.Description)
		}
		ack.Feedback = proto.String(e.Description)
	} else {
		ack.Feedback = proto.String(storedFeedback(mode, res, s.srv.cfg.Now().Sub(start)))
	}
	s.reply(opaque, wire.CmdMessageStoreAck, ack)
}

// storedFeedback is the feedback of an accepted publish, in the original's
// words (the client only logs it).
func storedFeedback(mode Mode, res Result, cost time.Duration) string {
	switch {
	case mode == ModeFly:
		return "FLY NO NEED SAVE"
	case res.Duplicate:
		return fmt.Sprintf("Store Result true Cost:%d Duplicate", cost.Milliseconds())
	default:
		return fmt.Sprintf("Store Result true Cost:%d", cost.Milliseconds())
	}
}
