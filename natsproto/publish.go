package natsproto

import (
	"strconv"

	"github.com/kitenats/kitenats/kqerr"
	"github.com/kitenats/kitenats/semantics"
)

// pubAckSize is the length of a PubAck's JSON but for its stream: the
// constant text, a 20-digit seq, false, a 32-digit id and a 4-digit groups.
const pubAckSize = len(`{"stream":"","seq":,"duplicate":false,"id":"","groups":}`) + 20 + 32 + 4

// PubAck is the reply to an accepted publish (NATS-PROTOCOL.md §2).
type PubAck struct {
	Stream    string `json:"stream"` // the encoded topic token
	Seq       uint64 `json:"seq"`
	Duplicate bool   `json:"duplicate"`
	ID        string `json:"id"`
	Groups    int    `json:"groups"` // semantics.PubAck.Groups
}

// appendPubAck appends the JSON of a's PubAck, as encoding/json writes it,
// without reflection and without building a PubAck: it is written once per
// publish. The stream is a subject token and ID hex digits, so neither
// needs escaping.
func appendPubAck(b []byte, stream string, a semantics.PubAck) []byte {
	b = append(b, `{"stream":"`...)
	b = append(b, stream...)
	b = append(b, `","seq":`...)
	b = strconv.AppendUint(b, a.Seq, 10)
	b = append(b, `,"duplicate":`...)
	b = strconv.AppendBool(b, a.Duplicate)
	b = append(b, `,"id":"`...)
	b = append(b, a.ID...)
	b = append(b, `","groups":`...)
	b = strconv.AppendInt(b, int64(a.Groups), 10)
	return append(b, '}')
}

// handlePublish takes one NATS publish on kq.<topic>.<messageType>.
func (s *Server) handlePublish(msg *Msg) {
	p, err := s.parsePublish(msg)
	if err != nil {
		s.refuse(msg.Reply, err)
		return
	}
	s.b.Publish(p, func(ack semantics.PubAck, err error) {
		if err != nil {
			s.refuse(msg.Reply, err)
			return
		}
		if msg.Reply != "" {
			stream := EncodeToken(ack.Topic)
			o := getOut()
			o.buf = appendPubAck(o.buf, stream, ack)
			s.publishOut(o, msg.Reply)
		}
	})
}

// parsePublish validates the subject, topic, size and headers of a publish.
func (s *Server) parsePublish(msg *Msg) (*semantics.Publication, error) {
	topic, mt, err := ParseSubject(msg.Subject)
	if err != nil {
		return nil, kqerr.New(kqerr.BadRequest, err, "%v", err)
	}
	size := len(msg.Data)
	for k, vs := range msg.Header {
		for _, v := range vs {
			size += len(k) + len(v) + 4
		}
	}
	if size > s.maxBytes {
		return nil, kqerr.New(kqerr.TooLarge, nil, "message too large: %d bytes, at most %d", size, s.maxBytes)
	}
	p, err := ParsePublish(topic, mt, msg.Header, msg.Data, s.now(), semantics.NewMessageID)
	if err != nil {
		return nil, err
	}
	if p.Prepare && !s.tx {
		return nil, kqerr.New(kqerr.NotImplemented, nil, "two-phase commit (%s) is not implemented yet", HdrTx)
	}
	if p.Prepare && s.groupInboxes.Load() && !fromGroup(msg.Reply, p.Message.Group) {
		// Nothing in a NATS message says who sent it, but in secrets mode
		// a connection receives replies only in its own inbox: a prepare
		// whose PubAck goes to group G's inbox was sent by G (or the admin).
		return nil, kqerr.New(kqerr.Forbidden, nil, "%s %q: a prepare for a group must come from that group, with its reply in %s.>",
			HdrGroup, p.Message.Group, InboxPrefix(p.Message.Group))
	}
	return p, nil
}

// fromGroup reports whether reply is in group's inbox, or the admin's.
func fromGroup(reply, group string) bool {
	for _, user := range [...]string{group, "admin"} {
		prefix := InboxPrefix(user)
		if len(reply) > len(prefix) && reply[len(prefix)] == '.' && reply[:len(prefix)] == prefix {
			return true
		}
	}
	return false
}

// RequireGroupInboxes makes a prepare carry its group's proof: a reply
// subject in that group's inbox (_INBOX_<G>.…), which in secrets mode only
// that group (or the admin) can receive. The daemon calls it when group
// secrets are configured, before the broker runs.
func (s *Server) RequireGroupInboxes() { s.groupInboxes.Store(true) }

// refuse counts a refused publish and answers it, if it has a reply subject.
func (s *Server) refuse(reply string, err error) {
	s.b.CountRefused()
	if reply != "" {
		s.reply(reply, errorBody(err))
	}
}
