package rocksdb

import (
	"bytes"
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kitenats/kitenats/store"
)

var oddStrings = []string{"", "a", "ab", "a\x00", "a\x00b", "a\x00\x00", "a\x01", "a\xff", "\x00", "\xff", "a:b", "a/b", "ünï"}

func TestStoreRocksDBKeyComponentsOrderAndRoundTrip(t *testing.T) {
	for _, a := range oddStrings {
		enc := appendStr(nil, a)
		got, rest, err := readStr(append(enc, 'x'))
		require.NoError(t, err)
		require.Equal(t, a, got)
		require.Equal(t, []byte("x"), rest)
		for _, b := range oddStrings {
			// Byte order of (a, "z") keys is the order of a, whatever follows.
			ka := appendStr(appendStr(nil, a), "z")
			kb := appendStr(appendStr(nil, b), "")
			want := cmpSign(strings.Compare(a, b))
			if a == b {
				want = 1 // then the next component decides
			}
			require.Equal(t, want, cmpSign(bytes.Compare(ka, kb)), "%q vs %q", a, b)
			if a != b {
				require.False(t, bytes.HasPrefix(appendStr(nil, b), appendStr(nil, a)), "%q prefixes %q", a, b)
			}
		}
	}
	for _, bad := range [][]byte{nil, {'a'}, {0}, {0, 2}, {'a', 0, 0x01 + 1}} {
		_, _, err := readStr(bad)
		require.ErrorIs(t, err, errCorrupt, "%q", bad)
	}
}

func cmpSign(n int) int { return max(-1, min(1, n)) }

func TestStoreRocksDBTimeKeyOrder(t *testing.T) {
	times := []time.Time{
		time.Date(1, 1, 1, 0, 0, 0, 1, time.UTC), // before the UnixNano range: clamped
		time.Date(1500, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Date(1969, 12, 31, 23, 59, 59, 0, time.UTC),
		{}, // zero sorts as the epoch
		time.Unix(0, 1),
		t0,
		t0.Add(time.Nanosecond),
		time.Date(2262, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC), // clamped
	}
	keys := make([]uint64, len(times))
	for i, tm := range times {
		keys[i] = timeKey(tm)
	}
	require.True(t, slices.IsSorted(keys))
	require.Equal(t, uint64(1<<63), timeKey(time.Time{}))
	require.Equal(t, uint64(0), keys[0])
	require.Equal(t, uint64(math.MaxUint64), keys[len(keys)-1])
	require.Equal(t, timeKey(t0.In(time.FixedZone("x", 3600))), timeKey(t0), "zones do not matter")
}

func TestStoreRocksDBRecordRoundTrip(t *testing.T) {
	m := &store.Message{
		Topic: "a\x00b", ID: "0123456789abcdef0123456789abcdef", MessageType: "ünï", Group: "p:g/x",
		BodyType: store.BodyString, Body: []byte("body\x00"),
		Properties:   []store.Property{{Key: "b", Value: "2"}, {Key: "", Value: ""}, {Key: "a", Value: "1"}},
		Created:      time.Date(1, 1, 1, 0, 0, 0, 5, time.UTC),
		Expires:      time.Date(9999, 12, 31, 23, 59, 59, 999999999, time.UTC),
		DeliverLimit: 100, Seq: math.MaxUint64, Prepared: true, Checks: -3,
		NextCheck: time.Unix(0, 0).UTC(),
		Groups: []store.GroupState{
			{Group: "s-a", Attempts: 7, NextAttempt: time.Date(1950, 6, 1, 0, 0, 0, 1, time.UTC)},
			{Group: "", Attempts: 0},
		},
	}
	got, err := decodeMessage(encodeMessage(m))
	require.NoError(t, err)
	require.Equal(t, m, got)
	seq, err := recordSeq(encodeMessage(m))
	require.NoError(t, err)
	require.Equal(t, m.Seq, seq)

	empty := &store.Message{}
	got, err = decodeMessage(encodeMessage(empty))
	require.NoError(t, err)
	require.Empty(t, got.Body)
	got.Body = nil
	require.Equal(t, empty, got)

	dl := store.DeadLetter{Message: m, Group: "g", Reason: "deliver limit", At: t0}
	gotDL, err := decodeDead(encodeDead(dl))
	require.NoError(t, err)
	require.Equal(t, dl, gotDL)
}

func TestStoreRocksDBRecordRejectsDamage(t *testing.T) {
	rec := encodeMessage(testMsg("x", "g"))
	for i := range rec {
		_, _ = decodeMessage(rec[:i]) // must not panic
		_, err := decodeMessage(rec[:i])
		require.Error(t, err, "truncated at %d", i)
	}
	_, err := decodeMessage(append(bytes.Clone(rec), 0))
	require.ErrorIs(t, err, errCorrupt, "trailing bytes")
	bad := bytes.Clone(rec)
	bad[0] = 9
	_, err = decodeMessage(bad)
	require.ErrorIs(t, err, errCorrupt, "unknown version")
	_, err = decodeSeqs([]byte{1, 2, 3})
	require.ErrorIs(t, err, errCorrupt)
	_, _, err = decodeDedup([]byte{1})
	require.ErrorIs(t, err, errCorrupt)
}

func FuzzStoreRocksDBDecodeMessage(f *testing.F) {
	f.Add(encodeMessage(testMsg("x", "g", "h")))
	f.Add(encodeDead(store.DeadLetter{Message: testMsg("y"), Group: "g", At: t0}))
	f.Add([]byte{recordVersion, 0, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x01})
	f.Fuzz(func(t *testing.T, b []byte) {
		if m, err := decodeMessage(b); err == nil {
			again, err := decodeMessage(encodeMessage(m))
			require.NoError(t, err)
			require.Equal(t, m.Seq, again.Seq)
		}
		_, _ = decodeDead(b)
		_, _ = recordSeq(b)
	})
}

func FuzzStoreRocksDBKeyComponent(f *testing.F) {
	for _, s := range oddStrings {
		f.Add(s, "x")
	}
	f.Fuzz(func(t *testing.T, a, b string) {
		ka, kb := appendStr(nil, a), appendStr(nil, b)
		require.Equal(t, cmpSign(strings.Compare(a, b)), cmpSign(bytes.Compare(ka, kb)))
		got, rest, err := readStr(append(ka, kb...))
		require.NoError(t, err)
		require.Equal(t, a, got)
		require.Equal(t, kb, rest)
	})
}
