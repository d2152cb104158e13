package wire

import (
	"bytes"
	"encoding/base64"
	"testing"

	"github.com/golang/snappy"
)

// TestWireSnappyVector is the Snappy vector of Appendix C.
func TestWireSnappyVector(t *testing.T) {
	raw := []byte("hello hello hello hello")
	tests := []struct {
		name string
		cmd  Cmd
		want []byte
	}{
		{"bytes_block", CmdBytesMessage, mustHex(t, "171468656c6c6f20420600")},
		{"string_base64", CmdStringMessage, []byte("FxRoZWxsbyBCBgA=")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			enc, err := EncodeBody(tt.cmd, raw)
			requireNoError(t, err)
			requireBytes(t, enc, tt.want)
			dec, err := DecodeBody(tt.cmd, tt.want, true, len(raw))
			requireNoError(t, err)
			requireBytes(t, dec, raw)
		})
	}
}

func TestWireDecodeBodyUncompressed(t *testing.T) {
	body := []byte("plain")
	got, err := DecodeBody(CmdBytesMessage, body, false, 5)
	requireNoError(t, err)
	requireBytes(t, got, body)
	_, err = DecodeBody(CmdStringMessage, body, false, 4)
	requireErrorIs(t, err, ErrBodyTooLarge)
}

func TestWireDecodeBodyErrors(t *testing.T) {
	// A preamble claiming 1 GiB followed by nothing.
	huge := snappyPreamble(1 << 30)
	tests := []struct {
		name   string
		cmd    Cmd
		body   []byte
		maxLen int
		want   error
	}{
		{"bytes_over_limit", CmdBytesMessage, mustHex(t, "171468656c6c6f20420600"), 22, ErrBodyTooLarge},
		{"string_over_limit", CmdStringMessage, []byte("FxRoZWxsbyBCBgA="), 22, ErrBodyTooLarge},
		{"bytes_huge_preamble", CmdBytesMessage, huge, 0, ErrBodyTooLarge},
		{"string_huge_preamble", CmdStringMessage, b64(huge), 0, ErrBodyTooLarge},
		{"string_huge_preamble_long_text", CmdStringMessage, b64(append(huge, bytes.Repeat([]byte{0}, 1<<20)...)), 0, ErrBodyTooLarge},
		{"bytes_empty", CmdBytesMessage, nil, 0, ErrCorruptBody},
		{"bytes_truncated", CmdBytesMessage, mustHex(t, "1714"), 0, ErrCorruptBody},
		{"bytes_not_snappy", CmdBytesMessage, []byte("hello"), 0, ErrCorruptBody},
		{"string_bad_base64", CmdStringMessage, []byte("FxRo!!!!"), 0, ErrCorruptBody},
		{"string_raw_block", CmdStringMessage, mustHex(t, "171468656c6c6f20420600"), 0, ErrCorruptBody},
		{"heartbeat", CmdHeartbeat, []byte("x"), 0, ErrNotMessageCmd},
		{"unknown", 0x07, []byte("x"), 0, ErrNotMessageCmd},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var err error
			n := allocated(func() { _, err = DecodeBody(tt.cmd, tt.body, true, tt.maxLen) })
			requireErrorIs(t, err, tt.want)
			// Nothing near the declared size is allocated, and an oversize
			// string body is refused before its base64 text is decoded.
			if n > allocSlack {
				t.Fatalf("DecodeBody allocated %d bytes for a %d-byte body", n, len(tt.body))
			}
		})
	}
}

// TestWireDecodeBodyLimitDefault checks that maxLen <= 0 means MaxBodyLen.
func TestWireDecodeBodyLimitDefault(t *testing.T) {
	raw := bytes.Repeat([]byte("a"), MaxBodyLen)
	for _, cmd := range []Cmd{CmdBytesMessage, CmdStringMessage} {
		enc, err := EncodeBody(cmd, raw)
		requireNoError(t, err)
		got, err := DecodeBody(cmd, enc, true, 0)
		requireNoError(t, err)
		requireEqual(t, len(got), MaxBodyLen)

		enc, err = EncodeBody(cmd, append(raw, 'a'))
		requireNoError(t, err)
		_, err = DecodeBody(cmd, enc, true, -1)
		requireErrorIs(t, err, ErrBodyTooLarge)
	}
}

// TestWireDecodeBodyBase64LineBreaks checks that the early size check does
// not refuse base64 that the standard decoder accepts.
func TestWireDecodeBodyBase64LineBreaks(t *testing.T) {
	got, err := DecodeBody(CmdStringMessage, []byte("Fx\r\nRoZWxsbyBCBgA="), true, 0)
	requireNoError(t, err)
	requireBytes(t, got, []byte("hello hello hello hello"))
}

func TestWireEncodeBodyNotMessage(t *testing.T) {
	_, err := EncodeBody(CmdTxAck, []byte("x"))
	requireErrorIs(t, err, ErrNotMessageCmd)
}

// snappyPreamble is a Snappy block that only declares n decoded bytes.
func snappyPreamble(n int) []byte {
	var b []byte
	for ; n >= 0x80; n >>= 7 {
		b = append(b, byte(n)|0x80)
	}
	b = append(b, byte(n))
	if got, err := snappy.DecodedLen(b); err != nil || got < 0 {
		panic("bad preamble")
	}
	return b
}

func b64(b []byte) []byte {
	return []byte(base64.StdEncoding.EncodeToString(b))
}
