package client

import (
	"crypto/rand"
	"encoding/hex"
	"strings"
)

// Subject returns the NATS subject of (topic, messageType):
// kq.<topic>.<messageType>, each written with [EncodeToken]. The broker
// refuses empty names (400); [Producer.Publish] refuses them before sending.
func Subject(topic, messageType string) string {
	return "kq." + EncodeToken(topic) + "." + EncodeToken(messageType)
}

// EncodeToken writes s as one canonical NATS subject token
// (NATS-PROTOCOL.md §1): every byte that is not an ASCII letter, digit, '-',
// '_' or '~' becomes %XX in upper-case hex, so "pay.succ 200" is
// "pay%2Esucc%20200". Group names in $KQ subjects are encoded the same way.
func EncodeToken(s string) string {
	var b strings.Builder
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

const upperHex = "0123456789ABCDEF"

func plain(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '~'
}

// NewMessageID returns a new random message id: 32 lower-case hex digits,
// the form KiteQ and the Kq-Msg-Id header use.
func NewMessageID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (it crashes the program instead)
	return hex.EncodeToString(b[:])
}
