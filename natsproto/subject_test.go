package natsproto

import (
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestSubjectEncoding(t *testing.T) {
	tests := []struct{ raw, token string }{
		{"trade", "trade"},
		{"pay-succ", "pay-succ"},
		{"pay.succ 200", "pay%2Esucc%20200"},
		{"a_b~c", "a_b~c"},
		{"*", "%2A"},
		{">", "%3E"},
		{"%", "%25"},
		{"ü", "%C3%BC"},
		{"a\x00b", "a%00b"},
	}
	for _, tt := range tests {
		require.Equal(t, tt.token, EncodeToken(tt.raw))
		got, err := DecodeToken(tt.token)
		require.NoError(t, err)
		require.Equal(t, tt.raw, got)
	}
}

func TestSubjectDecodeRejectsNonCanonical(t *testing.T) {
	for _, tok := range []string{"", "a.b", "a b", "%2e", "%41", "%2", "%", "%G0", "*", ">", "ü", "%2a"} {
		_, err := DecodeToken(tok)
		require.Error(t, err, "%q", tok)
	}
}

func TestSubjectParse(t *testing.T) {
	topic, mt, err := ParseSubject("kq.trade.pay%2Esucc%20200")
	require.NoError(t, err)
	require.Equal(t, "trade", topic)
	require.Equal(t, "pay.succ 200", mt)
	require.Equal(t, "kq.trade.pay%2Esucc%20200", Subject(topic, mt))
	for _, s := range []string{"kq.trade", "kq.trade.a.b", "xx.trade.a", "kq..a", "kq.trade.", "kq.t%2e.a"} {
		_, _, err := ParseSubject(s)
		require.Error(t, err, s)
	}
}

func FuzzSubjectRoundTrip(f *testing.F) {
	for _, s := range []string{"trade", "pay.succ 200", "%", "*", ">", "ü", "", "%41", "a%2Eb"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		tok := EncodeToken(s)
		if app := appendToken([]byte("x."), s); string(app) != "x."+tok {
			t.Fatalf("appendToken(%q) = %q, EncodeToken %q", s, app[2:], tok)
		}
		if strings.ContainsAny(tok, ".*> \t\r\n") {
			t.Fatalf("token %q of %q is not a single literal subject token", tok, s)
		}
		if s != "" {
			back, err := DecodeToken(tok)
			if err != nil || back != s {
				t.Fatalf("round trip of %q: %q, %v", s, back, err)
			}
		}
		// Any accepted token is canonical.
		if raw, err := DecodeToken(s); err == nil && EncodeToken(raw) != s {
			t.Fatalf("accepted non-canonical %q", s)
		}
	})
}

// The tap subject cache gives what tapSubject builds, and stops growing at
// its bound.
func TestTapSubjectCache(t *testing.T) {
	s := &Server{}
	for _, p := range [][2]string{{"trade", "pay.succ"}, {"trade", "pay.succ"}, {"a b", "*"}, {"", ">"}} {
		require.Equal(t, tapSubject(p[0], p[1]), s.tapSubject(p[0], p[1]))
	}
	require.Len(t, s.tapSubs, 3)
	for i := range maxTapSubjects + 10 {
		topic := "t" + strconv.Itoa(i)
		require.Equal(t, tapSubject(topic, "m"), s.tapSubject(topic, "m"))
	}
	require.Len(t, s.tapSubs, maxTapSubjects)
}
