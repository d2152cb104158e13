package natsproto

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/kitenats/kitenats/semantics"
)

// ParseAck reads an ack payload (JetStream's grammar, NATS-PROTOCOL.md §4:
// +ACK, +OK or empty; -NAK [delay]; +WPI; +TERM [reason]). It never fails:
// what it does not understand is semantics.AckUnknown.
func ParseAck(p []byte) semantics.Ack {
	p = bytes.TrimSpace(p)
	switch {
	case len(p) == 0, string(p) == "+ACK", string(p) == "+OK":
		return semantics.Ack{Kind: semantics.AckOK}
	case string(p) == "+WPI":
		return semantics.Ack{Kind: semantics.AckProgress}
	case bytes.HasPrefix(p, []byte("+TERM")):
		rest := p[len("+TERM"):]
		if len(rest) > 0 && rest[0] != ' ' {
			return semantics.Ack{}
		}
		return semantics.Ack{Kind: semantics.AckTerm, Reason: string(bytes.TrimSpace(rest))}
	case bytes.HasPrefix(p, []byte("-NAK")):
		rest := p[len("-NAK"):]
		if len(rest) > 0 && rest[0] != ' ' {
			return semantics.Ack{}
		}
		d, err := parseNakDelay(string(bytes.TrimSpace(rest)))
		if err != nil {
			return semantics.Ack{}
		}
		return semantics.Ack{Kind: semantics.AckNak, Delay: d}
	}
	return semantics.Ack{}
}

// parseNakDelay reads `{"delay":<ns>}` or a Go duration; empty is no delay.
func parseNakDelay(s string) (time.Duration, error) {
	if s == "" {
		return 0, nil
	}
	if strings.HasPrefix(s, "{") {
		var v struct {
			Delay int64 `json:"delay"`
		}
		if err := json.Unmarshal([]byte(s), &v); err != nil {
			return 0, err
		}
		if v.Delay < 0 {
			return 0, fmt.Errorf("negative delay")
		}
		return time.Duration(v.Delay), nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		return 0, fmt.Errorf("bad delay %q", s)
	}
	return d, nil
}
