package natsproto

import (
	"bytes"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kitenats/kitenats/store"
)

// headerPieces are keys and values chosen to hit every encoding rule:
// invalid field names, CR/LF inside values and at their ends, blanks around
// them, values that are blank, and properties named like the broker's own
// headers.
var headerPieces = []string{
	"Order", "x-trace", "Kq-Topic", "Kq-Msg-Id", "Kq-Group", "bad key", "bad:key", "", "ünï", "a\r\nb",
	"plain", " padded\t", "line\nbreak", "cr\rhere", "日本", "Order", " ", "\r\n", "\t", "end\n", "\rstart",
}

func randomHeaderMessage(r *rand.Rand) *store.Message {
	m := &store.Message{
		Topic: "trade", ID: "0123456789abcdef0123456789abcdef", MessageType: "pay", Group: []string{"p-trade", "", " "}[r.IntN(3)],
		BodyType: store.BodyString, Created: time.Unix(r.Int64N(1<<31), 0), Expires: time.Unix(r.Int64N(1<<31), 0),
		DeliverLimit: 1 + r.IntN(100),
	}
	for range r.IntN(6) {
		m.Properties = append(m.Properties, store.Property{
			Key: headerPieces[r.IntN(len(headerPieces))], Value: headerPieces[r.IntN(len(headerPieces))],
		})
	}
	return m
}

// TestEncodeHeaderIsNatsGos pins EncodeHeader to what nats.go sends for a
// header map (net/http's Header.Write between the status line and the
// blank line), less the lines with an empty value, which it never writes.
func TestEncodeHeaderIsNatsGos(t *testing.T) {
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	r := rand.New(rand.NewPCG(seed, 1))
	for range 2000 {
		h := map[string][]string{}
		for range r.IntN(5) {
			k := headerPieces[r.IntN(len(headerPieces))]
			h[k] = append(h[k], headerPieces[r.IntN(len(headerPieces))])
		}
		var want bytes.Buffer
		if len(h) > 0 {
			want.WriteString("NATS/1.0\r\n")
			var lines bytes.Buffer
			require.NoError(t, http.Header(h).Write(&lines))
			for l := range strings.SplitAfterSeq(lines.String(), "\r\n") {
				if !strings.HasSuffix(l, ": \r\n") {
					want.WriteString(l)
				}
			}
			want.WriteString("\r\n")
		}
		got := EncodeHeader(h)
		require.Equal(t, want.String(), string(got), "%q", h)
		if got != nil {
			requireStrictHeader(t, got)
		}
	}
}

// TestDeliveryHeaderMatchesMap: the block a delivery carries reads back as
// DeliveryHeaders, encoded the way nats.go encodes a map.
func TestDeliveryHeaderMatchesMap(t *testing.T) {
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	r := rand.New(rand.NewPCG(seed, 2))
	for range 2000 {
		m := randomHeaderMessage(r)
		attempt := 1 + r.IntN(100)
		raw := appendDeliveryHeader(nil, m, attempt)
		requireStrictHeader(t, raw)
		got := decodeHeader(raw)
		want := decodeHeader(EncodeHeader(DeliveryHeaders(m, attempt)))
		require.Equal(t, want, got, "%+v", m.Properties)
		require.Equal(t, strconv.Itoa(attempt), got[HdrDeliverCount][0])
		if blank(m.Group) {
			require.NotContains(t, got, HdrGroup, "no Kq-Group without a publishing group")
		} else {
			require.Equal(t, []string{m.Group}, got[HdrGroup])
		}
		for k, vs := range DeliveryHeaders(m, attempt) {
			for _, v := range vs {
				require.False(t, blank(v), "%s has a blank value in the map", k)
			}
		}
	}
}

// TestDeliveryHeaderOmitsBlankValues: a delivery of a message without a
// publishing group and with properties whose value is empty or blank has
// no line for them, and keeps every header after them.
func TestDeliveryHeaderOmitsBlankValues(t *testing.T) {
	m := &store.Message{
		Topic: "trade", ID: "0123456789abcdef0123456789abcdef", MessageType: "pay",
		BodyType: store.BodyBytes, Created: time.Unix(100, 0), Expires: time.Unix(200, 0), DeliverLimit: 5,
		Properties: []store.Property{{Key: "Empty", Value: ""}, {Key: "Blank", Value: " \t"}, {Key: "Order", Value: "42"}},
	}
	raw := appendDeliveryHeader(nil, m, 3)
	requireStrictHeader(t, raw)
	require.Equal(t, "NATS/1.0\r\n"+
		"Kq-Msg-Id: 0123456789abcdef0123456789abcdef\r\n"+
		"Kq-Topic: trade\r\n"+
		"Kq-Message-Type: pay\r\n"+
		"Kq-Deliver-Count: 3\r\n"+
		"Kq-Created: 100\r\n"+
		"Kq-Expires: 200\r\n"+
		"Kq-Deliver-Limit: 5\r\n"+
		"Kq-Body-Type: bytes\r\n"+
		"Order: 42\r\n"+
		"\r\n", string(raw))
	h := DeliveryHeaders(m, 3)
	require.NotContains(t, h, HdrGroup)
	require.NotContains(t, h, "Empty")
	require.NotContains(t, h, "Blank")
	require.Equal(t, []string{"42"}, h["Order"])
}

// requireStrictHeader parses a header block as the strictest NATS client
// would: the status line "NATS/1.0", then lines "Key: Value" with a token
// key and a non-empty value without blanks at its ends, each ended by
// CRLF, then the blank line, and nothing else.
func requireStrictHeader(t *testing.T, b []byte) {
	t.Helper()
	s := string(b)
	require.True(t, strings.HasPrefix(s, "NATS/1.0\r\n"), "status line: %q", s)
	require.True(t, strings.HasSuffix(s, "\r\n\r\n"), "blank line at the end: %q", s)
	body := strings.TrimSuffix(strings.TrimPrefix(s, "NATS/1.0\r\n"), "\r\n")
	for l := range strings.SplitAfterSeq(body, "\r\n") {
		if l == "" {
			continue
		}
		require.True(t, strings.HasSuffix(l, "\r\n"), "line %q not ended by CRLF in %q", l, s)
		l = strings.TrimSuffix(l, "\r\n")
		require.NotContains(t, l, "\r", "bare CR in %q", s)
		require.NotContains(t, l, "\n", "bare LF in %q", s)
		k, v, ok := strings.Cut(l, ": ")
		require.True(t, ok, "line %q is not Key: Value in %q", l, s)
		require.True(t, fieldName(k), "key %q is not a token in %q", k, s)
		require.NotEmpty(t, v, "empty value of %s in %q", k, s)
		require.Equal(t, strings.Trim(v, " \t"), v, "blanks around the value of %s in %q", k, s)
	}
}
