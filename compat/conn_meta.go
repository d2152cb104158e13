package compat

import (
	"crypto/subtle"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/kitenats/kitenats/compat/wire"
	"github.com/kitenats/kitenats/kqerr"
)

// authSucc is the feedback of an accepted handshake, the original broker's.
// The client requires the field to be present; any text would do.
const authSucc = "Auth Succ"

// handleConnMeta answers the handshake (kiteq-protocol.md §3.2): ConnAuthAck
// with the same opaque, then membership of the connection in its group. A
// refused first handshake ends the session once the refusal is written.
func (s *session) handleConnMeta(opaque uint32, m *wire.ConnMeta) error {
	group := m.GetGroupId()
	if err := s.srv.authorize(group, m.GetSecretKey()); err != nil {
		if s.authed {
			// A client bug, not an intruder: refuse, keep the connection.
			s.reply(opaque, wire.CmdConnAuth, authAck(err))
			return nil
		}
		s.log.Info("compat: handshake refused", "group", group, "err", err)
		if serr := s.send(opaque, wire.CmdConnAuth, authAck(err), true); serr != nil {
			return serr
		}
		return errRefused
	}
	if s.authed {
		// The original adds the connection to the group again; joining
		// once is enough, and another group is refused.
		if group != s.group {
			s.reply(opaque, wire.CmdConnAuth, authAck(kqerr.New(kqerr.Conflict, nil, "connection already joined group %q", s.group)))
			return nil
		}
		s.reply(opaque, wire.CmdConnAuth, authAck(nil))
		return nil
	}
	if err := s.conn.SetReadDeadline(time.Time{}); err != nil {
		return err
	}
	s.authed = true
	s.group = group
	s.warmup = time.Duration(max(0, m.GetWarmingupSec())) * time.Second
	s.authAt = s.srv.cfg.Now()
	s.mu.Lock()
	s.joined = &handshake{group: group, warmup: s.warmup, at: s.authAt}
	s.mu.Unlock()
	// The ack is queued before Join, so it is written before any delivery.
	s.reply(opaque, wire.CmdConnAuth, authAck(nil))
	s.consumer = s.srv.broker.Join(group, s.remote, s.warmup, s)
	s.log.Debug("compat: joined", "group", group, "warmingup_sec", int64(s.warmup/time.Second), "consumer", s.consumer)
	return nil
}

// authorize checks a ConnMeta's group and secret: in open mode (no
// secrets) any non-empty group passes, like KiteQ.
func (s *Server) authorize(group, secret string) error {
	if group == "" {
		return kqerr.New(kqerr.BadRequest, nil, "groupId must not be empty")
	}
	if len(s.cfg.Secrets) == 0 {
		return nil
	}
	want, ok := s.cfg.Secrets[group]
	if !ok || subtle.ConstantTimeCompare([]byte(want), []byte(secret)) != 1 {
		return kqerr.New(kqerr.Unauthorized, nil, "unknown group or wrong secret for %q", group)
	}
	return nil
}

// authAck builds the ConnAuthAck for a handshake outcome: every required
// field present, the feedback from the one error mapping.
func authAck(err error) *wire.ConnAuthAck {
	if err != nil {
		return &wire.ConnAuthAck{Status: proto.Bool(false), Feedback: proto.String(feedback(err))}
	}
	return &wire.ConnAuthAck{Status: proto.Bool(true), Feedback: proto.String(authSucc)}
}
