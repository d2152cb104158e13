package compat

import (
	"context"
	"errors"
	"math/rand/v2"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/kitenats/kitenats/compat/wire"
	"github.com/kitenats/kitenats/kqerr"
	"github.com/kitenats/kitenats/store"
)

// txQueue bounds the transaction decisions waiting for the broker. A
// decision dropped because the queue is full is not lost for good: the
// broker's check-back asks the producer again.
const txQueue = 1024

// txDecision is a producer's commit or rollback, on its way to the broker.
type txDecision struct {
	topic, id string
	commit    bool
	group     string // the deciding connection's group: the only one it may decide for
}

// ErrNoProducer is returned by Check when no connection of the publishing
// group can take a check (none connected, or all warming up).
var ErrNoProducer = errors.New("compat: no connection of the publishing group")

// handleTxAck takes a producer's transaction decision (kiteq-protocol.md
// §4.4): its spontaneous commit or rollback (opaque 0) or its answer to one
// of our checks (our opaque). Both are handled alike, whatever the opaque
// (§12 item 19), and neither is answered. Status 0 (unknown) changes
// nothing: the broker asks again later. The decision is passed to the
// broker off the reader goroutine, so that a slow store never stalls this
// connection's heartbeats.
//
// A connection decides only for its own group (issue #16): a TxAck whose
// header names another group than the connection's handshake is refused
// here, and the broker refuses one about a message another group published
// (Broker.ResolveTx). A refusal has the 403 description of
// NATS-PROTOCOL.md §8 as its KiteQ feedback text, but since a client never
// gets a reply to a TxAck it is logged and counted (TxAcksRefused), never
// sent (kiteq-protocol.md §4.4).
func (s *session) handleTxAck(opaque uint32, m *wire.TxACKPacket) {
	h := m.GetHeader()
	var commit bool
	switch m.GetStatus() {
	case wire.TxCommit:
		commit = true
	case wire.TxRollback:
	default:
		s.log.Debug("compat: TxAck unknown", "opaque", opaque, "msg_id", h.GetMessageId(), "feedback", m.GetFeedback())
		return
	}
	if g := h.GetGroupId(); g != s.group {
		err := kqerr.New(kqerr.Forbidden, nil, "TxAck for group %q on a connection of group %q: a group resolves only its own prepared messages", g, s.group)
		s.srv.refuseTx(h.GetTopic(), h.GetMessageId(), commit, s.group, err)
		return
	}
	d := txDecision{topic: h.GetTopic(), id: h.GetMessageId(), commit: commit, group: s.group}
	select {
	case s.srv.txq <- d:
	default:
		s.log.Warn("compat: transaction decisions queue full; the check-back will ask again", "msg_id", d.id)
	}
}

// resolveLoop passes transaction decisions to the broker, one at a time,
// until quit is closed. It is owned by Run.
func (s *Server) resolveLoop() {
	for {
		select {
		case <-s.quit:
			return
		case d := <-s.txq:
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			if err := s.broker.ResolveTx(ctx, d.group, d.topic, d.id, d.commit); err != nil {
				var ke *kqerr.Error
				if errors.As(err, &ke) && ke.Code == kqerr.Forbidden {
					s.refuseTx(d.topic, d.id, d.commit, d.group, err)
				} else {
					s.log.Info("compat: transaction decision refused", "topic", d.topic, "msg_id", d.id, "commit", d.commit, "group", d.group, "err", err)
				}
			}
			cancel()
		}
	}
}

// refuseTx logs and counts a TxAck refused because it decides for another
// group than its connection's: err's description is the feedback a KiteQ
// client would get, were a TxAck answered.
func (s *Server) refuseTx(topic, id string, commit bool, group string, err error) {
	s.txRefused.Add(1)
	s.log.Warn("compat: TxAck refused", "topic", topic, "msg_id", id, "commit", commit, "group", group, "feedback", feedback(err))
}

// TxAcksRefused counts the TxAcks (commits and rollbacks) refused because
// they decided for another group than their connection's.
func (s *Server) TxAcksRefused() int64 { return s.txRefused.Load() }

// Check asks one connection of m's publishing group, chosen at random among
// those past their warmup (kiteq-protocol.md §4.4, §8.1), whether m
// commits: a TxACKPacket with status 0 and feedback "Server Check". The
// answer comes back later as a TxAck and goes to Broker.ResolveTx. It
// returns ErrNoProducer when no connection can take it.
func (s *Server) Check(m *store.Message) error {
	now := s.cfg.Now()
	s.mu.Lock()
	var pick *session
	n := 0
	for ss := range s.sessions {
		hs, ok := ss.member(m.Group)
		if !ok || !warmedUp(hs.at, hs.warmup, now) {
			continue
		}
		n++
		if rand.IntN(n) == 0 {
			pick = ss
		}
	}
	s.mu.Unlock()
	if pick == nil {
		return ErrNoProducer
	}
	h := deliveryHeader(m)
	h.Commit = proto.Bool(false)
	body, err := wire.Encode(wire.CmdTxAck, &wire.TxACKPacket{Header: h, Status: proto.Int32(wire.TxUnknown), Feedback: proto.String("Server Check")})
	if err != nil {
		return err
	}
	return pick.enqueue(outFrame{buf: wire.AppendFrame(nil, wire.Frame{Opaque: pick.nextOpaque(), Cmd: wire.CmdTxAck, Body: body})})
}

// warmedUp is KiteQ's warmup filter (kiteq-protocol.md §8.1), which applies
// to checks as to deliveries: under W seconds after the handshake a
// connection takes part with probability (floor(elapsed·100/W)+1)/100.
func warmedUp(authAt time.Time, warmup time.Duration, now time.Time) bool {
	w := int64(warmup / time.Second)
	if w <= 0 {
		return true
	}
	rate := max(0, int64(now.Sub(authAt)/time.Second)) * 100 / w
	return rate >= 100 || int64(rand.IntN(100)) <= rate
}
