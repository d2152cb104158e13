package semantics

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"time"
)

// AckKind is what a consumer said about a delivery.
type AckKind uint8

// The ack grammar of NATS-PROTOCOL.md §4 (JetStream's).
const (
	AckUnknown  AckKind = iota // a payload we do not understand: changes nothing
	AckOK                      // +ACK, +OK or empty: done for this group
	AckNak                     // -NAK [delay]: redeliver per schedule, not before the delay
	AckProgress                // +WPI: restart the ack timer
	AckTerm                    // +TERM [reason]: never redeliver to this group
)

// String names the kind as it is written on the wire.
func (k AckKind) String() string {
	switch k {
	case AckOK:
		return "+ACK"
	case AckNak:
		return "-NAK"
	case AckProgress:
		return "+WPI"
	case AckTerm:
		return "+TERM"
	default:
		return "unknown"
	}
}

// Ack is a parsed acknowledgement payload.
type Ack struct {
	Kind   AckKind
	Delay  time.Duration // AckNak: not before this
	Reason string        // AckTerm
}

// ParseAck reads an ack payload. It never fails: what it does not understand
// is AckUnknown.
func ParseAck(p []byte) Ack {
	p = bytes.TrimSpace(p)
	switch {
	case len(p) == 0, string(p) == "+ACK", string(p) == "+OK":
		return Ack{Kind: AckOK}
	case string(p) == "+WPI":
		return Ack{Kind: AckProgress}
	case bytes.HasPrefix(p, []byte("+TERM")):
		rest := p[len("+TERM"):]
		if len(rest) > 0 && rest[0] != ' ' {
			return Ack{}
		}
		return Ack{Kind: AckTerm, Reason: string(bytes.TrimSpace(rest))}
	case bytes.HasPrefix(p, []byte("-NAK")):
		rest := p[len("-NAK"):]
		if len(rest) > 0 && rest[0] != ' ' {
			return Ack{}
		}
		d, err := parseNakDelay(string(bytes.TrimSpace(rest)))
		if err != nil {
			return Ack{}
		}
		return Ack{Kind: AckNak, Delay: d}
	}
	return Ack{}
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
