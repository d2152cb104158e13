package compat

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/proto"

	"github.com/kitenats/kitenats/compat/wire"
	"github.com/kitenats/kitenats/kqerr"
)

func TestCompatNormalize(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	week := now.Unix() + 7*24*3600
	for _, tc := range []struct {
		name                   string
		create, expire         int64
		limit                  int32
		wantCreate, wantExpire int64
		wantLimit              int32
	}{
		{"defaults of BuildByteMessage", now.Unix() - 5, -1, 100, now.Unix() - 5, week, 100},
		{"zero create time is now", 0, 0, 0, now.Unix(), week, 100},
		{"negative create time is now", -7, -7, -7, now.Unix(), week, 100},
		{"limit over 100", 1, now.Unix() + 10, 101, 1, now.Unix() + 10, 100},
		{"limit kept", 1, week, 1, 1, week, 1},
		{"expiry beyond a week is clamped", 1, week + 1, 50, 1, week, 50},
		{"past expiry kept (refused later)", 1, now.Unix(), 50, 1, now.Unix(), 50},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := &wire.Header{CreateTime: proto.Int64(tc.create), ExpiredTime: proto.Int64(tc.expire), DeliverLimit: proto.Int32(tc.limit)}
			c, e, l := normalize(h, now)
			require.Equal(t, []int64{tc.wantCreate, tc.wantExpire, int64(tc.wantLimit)}, []int64{c, e, int64(l)})
		})
	}
}

func TestCompatValidMessageID(t *testing.T) {
	for id, ok := range map[string]bool{
		"26c03f00665862591f696a980b5a6c4f":  true,
		"26C03F00665862591F696A980B5A6C4F":  true,
		"26c03f00665862591f696a980b5a6c4":   false,
		"26c03f00665862591f696a980b5a6c4f0": false,
		"26c03f00-665862591f696a980b5a6c4":  false,
		"":                                  false,
	} {
		require.Equal(t, ok, validMessageID(id), id)
	}
}

func TestCompatOpaqueOf(t *testing.T) {
	require.Equal(t, uint32(0x80000000), opaqueOf(0))
	require.Equal(t, uint32(0x80000001), opaqueOf(1))
	require.Equal(t, uint32(0xffffffff), opaqueOf(0x7fffffff))
	require.Equal(t, uint32(0x80000000), opaqueOf(0x80000000), "wraps within the upper half, never 0")
}

func TestCompatRefusalMapping(t *testing.T) {
	for _, tc := range []struct {
		err      error
		code     kqerr.Code
		internal bool
	}{
		{&kqerr.Error{Code: kqerr.NotFound, Description: "kq: topic not served: x"}, kqerr.NotFound, false},
		{fmt.Errorf("wrapped: %w", &kqerr.Error{Code: kqerr.TooMany, Description: "kq: accept limit"}), kqerr.TooMany, false},
		{fmt.Errorf("compat: m: %w", wire.ErrBodyTooLarge), kqerr.TooLarge, false},
		{fmt.Errorf("compat: m: %w", wire.ErrCorruptBody), kqerr.BadRequest, false},
		{errors.New("disk on fire"), kqerr.Internal, true},
	} {
		e, internal := asRefusal(tc.err)
		require.Equal(t, tc.code, e.Code, tc.err.Error())
		require.Equal(t, tc.internal, internal)
		require.Regexp(t, "^kq: ", e.Description)
		require.Equal(t, e.Description, feedback(tc.err))
	}
	require.Equal(t, "kq: topic not served: x", feedback(&kqerr.Error{Code: kqerr.NotFound, Description: "kq: topic not served: x"}),
		"a broker's description is the feedback verbatim (NATS-PROTOCOL.md §8)")
}

func TestCompatModeString(t *testing.T) {
	require.Equal(t, "store", ModeStore.String())
	require.Equal(t, "fly", ModeFly.String())
	require.Equal(t, "prepare", ModePrepare.String())
	require.Equal(t, "Mode(9)", Mode(9).String())
}
