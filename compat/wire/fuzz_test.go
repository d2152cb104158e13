package wire

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"testing"

	"google.golang.org/protobuf/proto"
)

// FuzzDecodeFrame reads frames from arbitrary bytes and decodes their bodies.
// It must never panic, never allocate beyond the declared body length (and
// so never beyond MaxBodyLen), and every frame and body it accepts must
// survive a re-encode. Seeds: testdata/fuzz/FuzzDecodeFrame, built from the
// golden frames, Appendix C and lying headers.
func FuzzDecodeFrame(f *testing.F) {
	f.Add(frameHeader(1, CmdBytesMessage, 1<<31-1)) // 2 GiB declared, nothing follows
	f.Fuzz(func(t *testing.T, data []byte) {
		// The default buffer peeks headers; the smallest one reads them byte
		// by byte. Both must agree. The first pass is measured as a whole
		// (ReadMemStats stops the world, too slow to run per frame).
		var a []Frame
		got := allocated(func() { a = readAllFrames(t, bufio.NewReader(bytes.NewReader(data)), data) })
		if bound := allocBound(data, a); got > bound+allocSlack {
			t.Fatalf("reading %d bytes of frames allocated %d bytes, headers declared %d", len(data), got, bound)
		}
		b := readAllFrames(t, bufio.NewReaderSize(bytes.NewReader(data), 16), data)
		requireEqual(t, len(a), len(b))
		for i := range a {
			requireBytes(t, AppendFrame(nil, a[i]), AppendFrame(nil, b[i]))
		}
		for _, fr := range a {
			checkBody(t, fr)
		}
	})
}

// allocBound is what reading data may allocate beyond bookkeeping: the bodies
// of the frames read, plus the declared body of the frame that failed if its
// length was within the limits. A refused length contributes nothing.
func allocBound(data []byte, frames []Frame) uint64 {
	var bound uint64
	off := 0
	for _, fr := range frames {
		bound += uint64(len(fr.Body))
		off += HeaderLen + len(fr.Body)
	}
	if len(data)-off >= HeaderLen {
		if n := int32(binary.BigEndian.Uint32(data[off+15:])); n > 0 && n <= MaxBodyLen {
			bound += uint64(n)
		}
	}
	return bound
}

// readAllFrames reads frames until an error, checks each against the input,
// and returns the frames read.
func readAllFrames(t *testing.T, r *bufio.Reader, data []byte) []Frame {
	var frames []Frame
	off := 0
	for {
		fr, err := ReadFrame(r)
		if err != nil {
			if off == len(data) && err != io.EOF {
				t.Fatalf("clean end of stream gave %v", err)
			}
			if off < len(data) && err == io.EOF {
				t.Fatalf("mid-frame end of stream gave bare %v", err)
			}
			return frames
		}
		if len(fr.Body) > MaxBodyLen {
			t.Fatalf("body of %d bytes accepted", len(fr.Body))
		}
		raw := AppendFrame(nil, fr)
		requireBytes(t, raw, data[off:off+len(raw)])
		off += len(raw)
		frames = append(frames, fr)
	}
}

// checkBody decodes a frame's body and, if it is accepted, checks that the
// message re-encodes (all required fields present) and decodes to itself.
func checkBody(t *testing.T, fr Frame) {
	m, err := Decode(fr)
	if err != nil {
		if !errors.Is(err, ErrUnknownCmd) && !errors.Is(err, ErrMalformedBody) {
			t.Fatalf("Decode error outside the contract: %v", err)
		}
		if fr.Cmd.Known() == errors.Is(err, ErrUnknownCmd) {
			t.Fatalf("Decode of %s gave %v", fr.Cmd, err)
		}
		return
	}
	body, err := Encode(fr.Cmd, m)
	if err != nil {
		t.Fatalf("re-encode of an accepted %s failed: %v", fr.Cmd, err)
	}
	again, err := Decode(Frame{Cmd: fr.Cmd, Body: body})
	if err != nil {
		t.Fatalf("re-decode of %s failed: %v", fr.Cmd, err)
	}
	if !proto.Equal(m, again) {
		t.Fatalf("%s changed in a round trip:\n%v\n%v", fr.Cmd, m, again)
	}
}

// fuzzBodyLimit is small so the fuzzer can reach it.
const fuzzBodyLimit = 1 << 16

// FuzzDecodeBody feeds arbitrary bodies to DecodeBody. It must never panic,
// never return more than the limit, never allocate much beyond the input
// and the limit, and round-trip with EncodeBody. Seeds:
// testdata/fuzz/FuzzDecodeBody, from Appendix C and the golden bodies.
func FuzzDecodeBody(f *testing.F) {
	f.Add(uint8(CmdBytesMessage), true, snappyPreamble(1<<31))
	f.Fuzz(func(t *testing.T, cmd uint8, compressed bool, body []byte) {
		c := Cmd(cmd)
		var raw []byte
		var err error
		bound := uint64(len(body) + fuzzBodyLimit + allocSlack)
		if got := allocated(func() { raw, err = DecodeBody(c, body, compressed, fuzzBodyLimit) }); got > bound {
			t.Fatalf("DecodeBody allocated %d bytes for a %d-byte body", got, len(body))
		}
		isMessage := c == CmdBytesMessage || c == CmdStringMessage
		if !isMessage {
			requireErrorIs(t, err, ErrNotMessageCmd)
			return
		}
		if err != nil {
			if !errors.Is(err, ErrBodyTooLarge) && !errors.Is(err, ErrCorruptBody) {
				t.Fatalf("DecodeBody error outside the contract: %v", err)
			}
			if !compressed && !errors.Is(err, ErrBodyTooLarge) {
				t.Fatalf("uncompressed body gave %v", err)
			}
		} else {
			if len(raw) > fuzzBodyLimit {
				t.Fatalf("DecodeBody returned %d bytes, limit %d", len(raw), fuzzBodyLimit)
			}
			roundTrip(t, c, raw)
		}
		if len(body) <= fuzzBodyLimit {
			roundTrip(t, c, body)
		}
	})
}

func roundTrip(t *testing.T, c Cmd, raw []byte) {
	enc, err := EncodeBody(c, raw)
	requireNoError(t, err)
	dec, err := DecodeBody(c, enc, true, len(raw))
	requireNoError(t, err)
	requireBytes(t, dec, raw)
}
