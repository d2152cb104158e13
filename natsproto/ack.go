package natsproto

import (
	"strings"

	"github.com/kitenats/kitenats/kqerr"
)

// handleAck takes a consumer's reply on
// $KQ.ACK.<group>.<broker>.<consumer>.<delivery>.
func (s *Server) handleAck(msg *Msg) {
	var tok [6]string
	if !splitTokens(msg.Subject, tok[:]) {
		return
	}
	group, err := DecodeToken(tok[2])
	if err != nil {
		s.answer(msg.Reply, kqerr.New(kqerr.BadRequest, err, "bad ack subject %s", msg.Subject))
		return
	}
	var done func(error) // nats.go's Ack sends no reply subject: nobody waits
	if reply := msg.Reply; reply != "" {
		done = func(err error) { s.answer(reply, err) }
	}
	s.b.Ack(group, tok[4], tok[5], ParseAck(msg.Data), done)
}

// splitTokens splits subject at its dots into exactly len(tok) tokens, in
// place; it reports false for any other number of tokens.
func splitTokens(subject string, tok []string) bool {
	for i := range tok[:len(tok)-1] {
		j := strings.IndexByte(subject, '.')
		if j < 0 {
			return false
		}
		tok[i], subject = subject[:j], subject[j+1:]
	}
	if strings.IndexByte(subject, '.') >= 0 {
		return false
	}
	tok[len(tok)-1] = subject
	return true
}
