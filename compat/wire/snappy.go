package wire

import (
	"encoding/base64"
	"fmt"

	"github.com/golang/snappy"
)

// DecodeBody returns the raw body of a bytes (cmd CmdBytesMessage) or string
// (CmdStringMessage) message, given the body as carried in the message and the
// header's snappy flag (kiteq-protocol.md §1.5). A string body is passed as
// its bytes and its raw form is returned as UTF-8 bytes.
//
// Without the flag the body is returned as it is (aliasing body). With it, a
// bytes body is Snappy block data and a string body is standard padded
// base64 of Snappy block data. A body that does not decode gives
// ErrCorruptBody; the original client delivers such a bytes body unchanged
// and drops such a string message, which is the caller's policy to copy.
//
// A result longer than maxLen gives ErrBodyTooLarge, detected from the Snappy
// length preamble before anything is allocated for it. maxLen <= 0 means
// MaxBodyLen. A command other than the two message commands gives
// ErrNotMessageCmd.
func DecodeBody(cmd Cmd, body []byte, compressed bool, maxLen int) ([]byte, error) {
	if cmd != CmdBytesMessage && cmd != CmdStringMessage {
		return nil, fmt.Errorf("%w: %s", ErrNotMessageCmd, cmd)
	}
	if maxLen <= 0 {
		maxLen = MaxBodyLen
	}
	if !compressed {
		if len(body) > maxLen {
			return nil, fmt.Errorf("%w (%d > %d)", ErrBodyTooLarge, len(body), maxLen)
		}
		return body, nil
	}
	block := body
	if cmd == CmdStringMessage {
		// Refuse an oversize result from the first base64 quanta before
		// decoding the whole text: the varint preamble is at most 5 bytes,
		// which 8 base64 characters cover. A prefix that does not give a
		// length (line breaks, corruption) is left to the full decode.
		if n, err := snappy.DecodedLen(base64Prefix(body)); err == nil && n > maxLen {
			return nil, fmt.Errorf("%w (%d > %d, %s)", ErrBodyTooLarge, n, maxLen, cmd)
		}
		block = make([]byte, base64.StdEncoding.DecodedLen(len(body)))
		n, err := base64.StdEncoding.Decode(block, body)
		if err != nil {
			return nil, fmt.Errorf("%w: %s base64: %w", ErrCorruptBody, cmd, err)
		}
		block = block[:n]
	}
	if err := checkDecodedLen(cmd, block, maxLen); err != nil {
		return nil, err
	}
	n, _ := snappy.DecodedLen(block) // checked above
	raw, err := snappy.Decode(make([]byte, n), block)
	if err != nil {
		return nil, fmt.Errorf("%w: %s snappy: %w", ErrCorruptBody, cmd, err)
	}
	return raw, nil
}

// checkDecodedLen reads the Snappy length preamble of block and refuses it if
// it exceeds maxLen. block may be just a prefix of the Snappy data.
func checkDecodedLen(cmd Cmd, block []byte, maxLen int) error {
	n, err := snappy.DecodedLen(block)
	if err != nil {
		return fmt.Errorf("%w: %s snappy: %w", ErrCorruptBody, cmd, err)
	}
	if n > maxLen {
		return fmt.Errorf("%w (%d > %d, %s)", ErrBodyTooLarge, n, maxLen, cmd)
	}
	return nil
}

// base64Prefix decodes the first (at most 8) characters of a base64 body,
// enough for the Snappy length preamble. Decoding errors are left to the full
// decode; whatever decoded before the error is returned.
func base64Prefix(body []byte) []byte {
	var buf [6]byte
	src := body[:min(len(body), 8)]
	n, _ := base64.StdEncoding.Decode(buf[:], src)
	return buf[:n]
}

// EncodeBody is the inverse of DecodeBody with the snappy flag set: it
// returns raw as Snappy block data for CmdBytesMessage and as standard padded
// base64 of Snappy block data for CmdStringMessage, byte-identical to the
// original client. Any other command gives ErrNotMessageCmd.
func EncodeBody(cmd Cmd, raw []byte) ([]byte, error) {
	switch cmd {
	case CmdBytesMessage:
		return snappy.Encode(nil, raw), nil
	case CmdStringMessage:
		block := snappy.Encode(nil, raw)
		out := make([]byte, base64.StdEncoding.EncodedLen(len(block)))
		base64.StdEncoding.Encode(out, block)
		return out, nil
	default:
		return nil, fmt.Errorf("%w: %s", ErrNotMessageCmd, cmd)
	}
}
