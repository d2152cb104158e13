package semantics

import (
	"bytes"
	"math/rand/v2"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kitenats/kitenats/store"
)

// headerPieces are keys and values chosen to hit every encoding rule:
// invalid field names, CR/LF inside values, blanks around them, and
// properties named like the broker's own headers.
var headerPieces = []string{
	"Order", "x-trace", "Kq-Topic", "Kq-Msg-Id", "bad key", "bad:key", "", "ünï", "a\r\nb",
	"plain", " padded\t", "line\nbreak", "cr\rhere", "日本", "Order",
}

func randomHeaderMessage(r *rand.Rand) *store.Message {
	m := &store.Message{
		Topic: "trade", ID: "0123456789abcdef0123456789abcdef", MessageType: "pay", Group: "p-trade",
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
// blank line).
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
			require.NoError(t, http.Header(h).Write(&want))
			want.WriteString("\r\n")
		}
		require.Equal(t, want.String(), string(EncodeHeader(h)), "%q", h)
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
		got := decodeHeader(appendDeliveryHeader(nil, m, attempt))
		want := decodeHeader(EncodeHeader(DeliveryHeaders(m, attempt)))
		require.Equal(t, want, got, "%+v", m.Properties)
	}
}
