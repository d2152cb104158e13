package natsproto

import (
	"encoding/json"
	"errors"
	"math"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/kitenats/kitenats/kqerr"
	"github.com/kitenats/kitenats/semantics"
)

func TestErrorTable(t *testing.T) {
	want := map[kqerr.Code]int{400: 14001, 403: 14403, 404: 14004, 409: 14009, 413: 10054, 429: 14029, 500: 14500, 501: 14501, 503: 14503}
	for c, ec := range want {
		require.Equal(t, ec, c.ErrCode(), "code %d", c)
	}
	var body struct {
		Error apiError `json:"error"`
	}
	require.NoError(t, json.Unmarshal(errorBody(kqerr.New(kqerr.Conflict, nil, "stale id %s", "x")), &body))
	require.Equal(t, apiError{Code: 409, ErrCode: 14009, Description: "kq: stale id x"}, body.Error)

	cause := errors.New("disk")
	e := kqerr.From(kqerr.New(kqerr.Unavailable, cause, "store unavailable"))
	require.True(t, e.Retriable())
	require.ErrorIs(t, e, cause)
	require.Equal(t, kqerr.Internal, kqerr.From(cause).Code)
}

func TestPubAckJSONMatchesEncodingJSON(t *testing.T) {
	for _, a := range []PubAck{
		{Stream: "trade", Seq: 1, ID: "0123456789abcdef0123456789ABCDEF"},
		{Stream: "pay%2Esucc%20200", Seq: 1795627989609051, Duplicate: true, ID: "00000000000000000000000000000000"},
		{Stream: "trade", Seq: 7, ID: "0123456789abcdef0123456789abcdef", Groups: 2},
		{Stream: "t", Seq: math.MaxUint64, ID: "0123456789abcdef0123456789abcdef", Groups: 9999},
	} {
		want, err := json.Marshal(a)
		require.NoError(t, err)
		core := semantics.PubAck{Topic: "ignored: the stream is passed encoded", Seq: a.Seq, Duplicate: a.Duplicate, ID: a.ID, Groups: a.Groups}
		got := appendPubAck(make([]byte, 0, pubAckSize+len(a.Stream)), a.Stream, core)
		require.Equal(t, string(want), string(got))
		require.LessOrEqual(t, len(got), pubAckSize+len(a.Stream), "the reply buffer never grows")
	}
}
