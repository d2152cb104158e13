package natsproto

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kitenats/kitenats/store"
)

// fakeRequester answers requests on subjects with interest.
type fakeRequester struct {
	interest map[string]bool
	reply    string
	err      error
	subject  string
	header   map[string][]string
	body     []byte
}

func (r *fakeRequester) Interested(s string) bool { return r.interest[s] }

func (r *fakeRequester) Request(_ context.Context, s string, h map[string][]string, b []byte) ([]byte, error) {
	r.subject, r.header, r.body = s, h, b
	return []byte(r.reply), r.err
}

// TestTxCheck pins the check-back request of NATS-PROTOCOL.md §5: on
// $KQ.TXCHECK.<escaped group> with the delivery headers (Kq-Deliver-Count
// 0) and the body, only when that subject has interest.
func TestTxCheck(t *testing.T) {
	m := &store.Message{ID: "0123456789abcdef0123456789abcdef", Topic: "trade", MessageType: "pay", Group: "p.trade",
		Body: []byte("order 42"), Created: t0, Expires: t0.Add(time.Hour), DeliverLimit: 5,
		Properties: []store.Property{{Key: "Order", Value: "42"}}}
	ctx := context.Background()

	r := &fakeRequester{}
	answer, asked, err := TxCheck(ctx, r, m)
	require.NoError(t, err)
	require.False(t, asked, "nobody listens: the caller asks elsewhere")
	require.Empty(t, answer)
	require.Empty(t, r.subject, "no request sent")

	r = &fakeRequester{interest: map[string]bool{"$KQ.TXCHECK.p%2Etrade": true}, reply: "commit"}
	answer, asked, err = TxCheck(ctx, r, m)
	require.NoError(t, err)
	require.True(t, asked)
	require.Equal(t, "commit", answer)
	require.Equal(t, "$KQ.TXCHECK.p%2Etrade", r.subject)
	require.Equal(t, DeliveryHeaders(m, 0), r.header)
	require.Equal(t, []string{"0"}, r.header[HdrDeliverCount])
	require.Equal(t, []string{"42"}, r.header["Order"])
	require.Equal(t, "order 42", string(r.body))

	r.err = errors.New("timeout")
	_, asked, err = TxCheck(ctx, r, m)
	require.True(t, asked)
	require.ErrorContains(t, err, "check trade/0123456789abcdef0123456789abcdef on $KQ.TXCHECK.p%2Etrade: timeout")
}
