package client

import (
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestClientSubjectEncoding(t *testing.T) {
	for _, tc := range []struct{ topic, messageType, want string }{
		{"trade", "pay-succ", "kq.trade.pay-succ"},
		{"trade", "pay.succ 200", "kq.trade.pay%2Esucc%20200"},
		{"user_profile~v2", "a*b>c", "kq.user_profile~v2.a%2Ab%3Ec"},
		{"交易", "%", "kq.%E4%BA%A4%E6%98%93.%25"},
	} {
		require.Equal(t, tc.want, Subject(tc.topic, tc.messageType))
	}
	require.Equal(t, "p%2Etrade", EncodeToken("p.trade"))
	require.Regexp(t, "^[0-9a-f]{32}$", NewMessageID())
	require.NotEqual(t, NewMessageID(), NewMessageID())
}

func TestClientAckPayload(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want string
	}{
		{nil, "+ACK"},
		{errors.New("boom"), "-NAK"},
		{Retry(0), "-NAK"},
		{Retry(1500 * time.Millisecond), `-NAK {"delay":1500000000}`},
		{errors.Join(errors.New("db down"), Retry(time.Second)), `-NAK {"delay":1000000000}`},
		{Terminate(""), "+TERM"},
		{Terminate("bad order"), "+TERM bad order"},
	} {
		require.Equal(t, tc.want, ackPayload(tc.err), "%v", tc.err)
	}
}

func TestClientErrorReply(t *testing.T) {
	err := decodeReply("s", []byte(`{"error":{"code":404,"err_code":14004,"description":"kq: topic not served: x"}}`), nil)
	var e *Error
	require.ErrorAs(t, err, &e)
	require.Equal(t, Error{Code: 404, ErrCode: 14004, Description: "kq: topic not served: x"}, *e)
	require.False(t, e.Retriable())
	require.True(t, (&Error{Code: 503}).Retriable())
	require.NoError(t, decodeReply("s", nil, nil), "an empty ack reply is success")
}
