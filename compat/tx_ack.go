package compat

import "github.com/kitenats/kitenats/compat/wire"

// handleTxAck takes a producer's transaction decision (kiteq-protocol.md
// §4.4): its spontaneous commit or rollback (opaque 0) or its answer to a
// check (our opaque). The original never replies to either, and neither do
// we. Two-phase commit is not wired yet (a commit=false publish is refused
// by the broker), so the decision is only logged; the opaque is not
// special.
func (s *session) handleTxAck(opaque uint32, m *wire.TxACKPacket) {
	h := m.GetHeader()
	s.log.Debug("compat: TxAck ignored (two-phase commit not implemented yet)",
		"opaque", opaque, "topic", h.GetTopic(), "msg_id", h.GetMessageId(),
		"status", m.GetStatus(), "feedback", m.GetFeedback())
}
