package natsproto

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kitenats/kitenats/semantics"
)

func TestAckParse(t *testing.T) {
	tests := []struct {
		in   string
		want semantics.Ack
	}{
		{"", semantics.Ack{Kind: semantics.AckOK}},
		{"+ACK", semantics.Ack{Kind: semantics.AckOK}},
		{"+OK", semantics.Ack{Kind: semantics.AckOK}},
		{" +ACK\r\n", semantics.Ack{Kind: semantics.AckOK}},
		{"-NAK", semantics.Ack{Kind: semantics.AckNak}},
		{`-NAK {"delay":2000000000}`, semantics.Ack{Kind: semantics.AckNak, Delay: 2 * time.Second}},
		{"-NAK 1.5s", semantics.Ack{Kind: semantics.AckNak, Delay: 1500 * time.Millisecond}},
		{"+WPI", semantics.Ack{Kind: semantics.AckProgress}},
		{"+TERM", semantics.Ack{Kind: semantics.AckTerm}},
		{"+TERM bad payload", semantics.Ack{Kind: semantics.AckTerm, Reason: "bad payload"}},
		{"+NXT", semantics.Ack{}},
		{"-NAKED", semantics.Ack{}},
		{"+TERMINATE", semantics.Ack{}},
		{`-NAK {"delay":-5}`, semantics.Ack{}},
		{"-NAK soon", semantics.Ack{}},
		{"hello", semantics.Ack{}},
	}
	for _, tt := range tests {
		require.Equal(t, tt.want, ParseAck([]byte(tt.in)), "%q", tt.in)
	}
}

func FuzzAckParse(f *testing.F) {
	for _, s := range []string{"+ACK", "-NAK", `-NAK {"delay":1}`, "-NAK 1s", "+WPI", "+TERM x", ""} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, p []byte) {
		a := ParseAck(p)
		if a.Delay < 0 {
			t.Fatalf("negative delay from %q", p)
		}
		if a.Kind != semantics.AckNak && a.Delay != 0 || a.Kind != semantics.AckTerm && a.Reason != "" {
			t.Fatalf("stray fields %+v from %q", a, p)
		}
	})
}

func TestSplitTokens(t *testing.T) {
	for _, s := range []string{"$KQ.ACK.g.b.c.d", "a.b.c.d.e.f", "......", "a.b", "a.b.c.d.e.f.g", "", "a..b.c.d.e"} {
		var tok [6]string
		want := strings.Split(s, ".")
		ok := splitTokens(s, tok[:])
		if ok != (len(want) == 6) || ok && !slices.Equal(tok[:], want) {
			t.Errorf("splitTokens(%q) = %q, %v; strings.Split: %q", s, tok, ok, want)
		}
	}
}
