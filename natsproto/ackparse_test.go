package natsproto

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestAckParse(t *testing.T) {
	tests := []struct {
		in   string
		want Ack
	}{
		{"", Ack{Kind: AckOK}},
		{"+ACK", Ack{Kind: AckOK}},
		{"+OK", Ack{Kind: AckOK}},
		{" +ACK\r\n", Ack{Kind: AckOK}},
		{"-NAK", Ack{Kind: AckNak}},
		{`-NAK {"delay":2000000000}`, Ack{Kind: AckNak, Delay: 2 * time.Second}},
		{"-NAK 1.5s", Ack{Kind: AckNak, Delay: 1500 * time.Millisecond}},
		{"+WPI", Ack{Kind: AckProgress}},
		{"+TERM", Ack{Kind: AckTerm}},
		{"+TERM bad payload", Ack{Kind: AckTerm, Reason: "bad payload"}},
		{"+NXT", Ack{}},
		{"-NAKED", Ack{}},
		{"+TERMINATE", Ack{}},
		{`-NAK {"delay":-5}`, Ack{}},
		{"-NAK soon", Ack{}},
		{"hello", Ack{}},
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
		if a.Kind != AckNak && a.Delay != 0 || a.Kind != AckTerm && a.Reason != "" {
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
