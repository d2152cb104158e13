package natsproto

import (
	"errors"
	"fmt"
	"strings"
)

// SubjectPrefix is the first token of every publish subject.
const SubjectPrefix = "kq"

// EncodeToken writes s as one canonical subject token: every byte that is not
// an ASCII letter, digit, '-', '_' or '~' becomes %XX (upper-case hex).
func EncodeToken(s string) string {
	n := 0
	for i := 0; i < len(s); i++ {
		if !plain(s[i]) {
			n++
		}
	}
	if n == 0 {
		return s
	}
	var b strings.Builder
	b.Grow(len(s) + 2*n)
	for i := 0; i < len(s); i++ {
		c := s[i]
		if plain(c) {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('%')
		b.WriteByte(upperHex[c>>4])
		b.WriteByte(upperHex[c&0xf])
	}
	return b.String()
}

// appendToken appends EncodeToken(s) to b.
func appendToken(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if plain(c) {
			b = append(b, c)
			continue
		}
		b = append(b, '%', upperHex[c>>4], upperHex[c&0xf])
	}
	return b
}

const upperHex = "0123456789ABCDEF"

func plain(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '~'
}

// DecodeToken reverses EncodeToken. It refuses anything that is not canonical
// (an empty token, a byte that needs escaping, lower-case hex, an escape of a
// byte that needs none), so DecodeToken(EncodeToken(s)) == s and
// EncodeToken(DecodeToken(t)) == t for every accepted t.
func DecodeToken(t string) (string, error) {
	if t == "" {
		return "", errors.New("empty token")
	}
	if !strings.Contains(t, "%") {
		for i := 0; i < len(t); i++ {
			if !plain(t[i]) {
				return "", fmt.Errorf("byte %q must be written %%%02X", t[i], t[i])
			}
		}
		return t, nil
	}
	out := make([]byte, 0, len(t))
	for i := 0; i < len(t); i++ {
		c := t[i]
		switch {
		case plain(c):
			out = append(out, c)
		case c == '%':
			if i+2 >= len(t) {
				return "", errors.New("truncated %XX escape")
			}
			hi, lo := unhex(t[i+1]), unhex(t[i+2])
			if hi < 0 || lo < 0 {
				return "", fmt.Errorf("bad escape %q: want upper-case hex", t[i:i+3])
			}
			v := byte(hi<<4 | lo)
			if plain(v) {
				return "", fmt.Errorf("escape %q of a byte that needs none", t[i:i+3])
			}
			out = append(out, v)
			i += 2
		default:
			return "", fmt.Errorf("byte %q must be written %%%02X", c, c)
		}
	}
	return string(out), nil
}

func unhex(c byte) int {
	switch {
	case c >= '0' && c <= '9':
		return int(c - '0')
	case c >= 'A' && c <= 'F':
		return int(c-'A') + 10
	default:
		return -1
	}
}

// Subject returns the publish subject of (topic, messageType).
func Subject(topic, messageType string) string {
	return SubjectPrefix + "." + EncodeToken(topic) + "." + EncodeToken(messageType)
}

// ParseSubject splits a publish subject kq.<topic>.<messageType> into its
// decoded topic and messageType.
func ParseSubject(subject string) (topic, messageType string, err error) {
	// Cut, not Split: no slice per publish.
	prefix, rest, _ := strings.Cut(subject, ".")
	t, mt, ok := strings.Cut(rest, ".")
	if prefix != SubjectPrefix || !ok || strings.Contains(mt, ".") {
		return "", "", fmt.Errorf("subject %q is not kq.<topic>.<messageType>", subject)
	}
	if topic, err = DecodeToken(t); err != nil {
		return "", "", fmt.Errorf("subject %q: topic: %w", subject, err)
	}
	if messageType, err = DecodeToken(mt); err != nil {
		return "", "", fmt.Errorf("subject %q: messageType: %w", subject, err)
	}
	return topic, messageType, nil
}

// tapSubject is where accepted messages are republished for dashboards.
func tapSubject(topic, messageType string) string {
	return "$KQ.TAP." + EncodeToken(topic) + "." + EncodeToken(messageType)
}
