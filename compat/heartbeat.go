package compat

import (
	"google.golang.org/protobuf/proto"

	"github.com/kitenats/kitenats/compat/wire"
)

// handleHeartbeat echoes a ping (kiteq-protocol.md §1.6): HeartBeat with
// the same opaque and the request's version, as the original broker does.
// The client only keeps the largest version it has seen.
func (s *session) handleHeartbeat(opaque uint32, m *wire.HeartBeat) {
	s.reply(opaque, wire.CmdHeartbeat, &wire.HeartBeat{Version: proto.Int64(m.GetVersion())})
}
