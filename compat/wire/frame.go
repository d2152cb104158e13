package wire

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// HeaderLen is the length of the fixed frame header: opaque (4), command (1),
// version (2), extension (8) and body length (4). There is no leading total
// length field.
const HeaderLen = 19

// MaxBodyLen is the largest body a frame may carry, 2 MiB (turbo's
// MAX_PACKET_BYTES). It bounds the body only, not the header.
const MaxBodyLen = 2 << 20

// Frame is one KiteQ frame: the decoded 19-byte header and the raw body.
type Frame struct {
	// Opaque is the request id; a response echoes the request's value.
	Opaque uint32
	// Cmd selects the body's message type.
	Cmd Cmd
	// Version is reserved; peers write 0 and never interpret it.
	Version int16
	// Extension is reserved; peers write 0 and never interpret it.
	Extension int64
	// Body is the protobuf encoding of the message for Cmd. Its length is
	// the header's body length field.
	Body []byte
}

// ReadFrame reads one frame from r. The header is big-endian; the returned
// Body is a fresh slice owned by the caller.
//
// At a clean end of stream (no byte of a new frame read) it returns io.EOF
// unwrapped. A stream that ends inside a frame gives a wrapped
// io.ErrUnexpectedEOF. A declared body length that is negative gives
// ErrBadLength and one above MaxBodyLen gives ErrFrameTooLarge; in both cases
// nothing is allocated for the body, the stream is left misaligned, and the
// caller must close the connection. Other read errors are returned wrapped.
// After any error other than io.EOF the position in the stream is undefined
// (part of a header or body may have been consumed), so a read deadline is
// not a way to poll: the connection must be closed.
//
// The body's buffer grows with what arrives: a header that announces 2 MiB
// and is followed by nothing holds 64 KiB, not 2 MiB. A body up to
// growStep is allocated at its declared length at once, and the buffer
// never exceeds the declared length; the header is read without
// allocating.
func ReadFrame(r *bufio.Reader) (Frame, error) { return ReadFrameMax(r, MaxBodyLen) }

// growStep is the largest body allocated at once; a larger one grows as it
// arrives, doubling from it.
const growStep = 64 << 10

// ReadFrameMax is ReadFrame with a smaller bound on the body length: a
// longer body gives ErrFrameTooLarge, before anything is allocated for it.
// A KiteQ server reads with a small bound until the handshake.
func ReadFrameMax(r *bufio.Reader, max int) (Frame, error) {
	if max > MaxBodyLen {
		max = MaxBodyLen
	}
	var hdr [HeaderLen]byte
	n, err := readHeader(r, &hdr)
	if err != nil {
		if n == 0 && errors.Is(err, io.EOF) {
			return Frame{}, io.EOF
		}
		return Frame{}, fmt.Errorf("wire: read frame header: %w", eofToUnexpected(err))
	}
	f, bodyLen := parseHeader(&hdr)
	if bodyLen < 0 {
		return Frame{}, fmt.Errorf("%w (%d, %s opaque %d)", ErrBadLength, bodyLen, f.Cmd, f.Opaque)
	}
	if int(bodyLen) > max {
		return Frame{}, fmt.Errorf("%w (%d > %d, %s opaque %d)", ErrFrameTooLarge, bodyLen, max, f.Cmd, f.Opaque)
	}
	if f.Body, err = readBody(r, int(bodyLen)); err != nil {
		return Frame{}, fmt.Errorf("wire: read %s body (%d bytes): %w", f.Cmd, bodyLen, eofToUnexpected(err))
	}
	return f, nil
}

// readBody reads a body of n bytes, into a buffer that grows as the bytes
// arrive when n is over growStep.
func readBody(r *bufio.Reader, n int) ([]byte, error) {
	if n <= growStep {
		b := make([]byte, n)
		return b, readFull(r, b)
	}
	b := make([]byte, 0, growStep)
	for len(b) < n {
		if len(b) == cap(b) {
			grown := make([]byte, len(b), min(2*cap(b), n))
			copy(grown, b)
			b = grown
		}
		chunk := b[len(b):min(cap(b), n)]
		if err := readFull(r, chunk); err != nil {
			return nil, err
		}
		b = b[:len(b)+len(chunk)]
	}
	return b, nil
}

// parseHeader decodes the fixed header; the body length is returned apart
// because it is not part of Frame.
func parseHeader(hdr *[HeaderLen]byte) (Frame, int32) {
	f := Frame{
		Opaque:    binary.BigEndian.Uint32(hdr[0:4]),
		Cmd:       Cmd(hdr[4]),
		Version:   int16(binary.BigEndian.Uint16(hdr[5:7])),
		Extension: int64(binary.BigEndian.Uint64(hdr[7:15])),
	}
	return f, int32(binary.BigEndian.Uint32(hdr[15:19]))
}

// readHeader fills hdr without letting it escape to the heap: from the
// reader's buffer through Peek, or byte by byte when the buffer is smaller
// than a header. It returns how many header bytes it consumed.
func readHeader(r *bufio.Reader, hdr *[HeaderLen]byte) (int, error) {
	if r.Size() < HeaderLen {
		for i := range hdr {
			b, err := r.ReadByte()
			if err != nil {
				return i, err
			}
			hdr[i] = b
		}
		return HeaderLen, nil
	}
	b, err := r.Peek(HeaderLen)
	n := copy(hdr[:], b)
	if _, derr := r.Discard(n); err == nil {
		err = derr
	}
	return n, err
}

// readFull is io.ReadFull on the concrete *bufio.Reader.
func readFull(r *bufio.Reader, p []byte) error {
	for n := 0; n < len(p); {
		m, err := r.Read(p[n:])
		n += m
		if err != nil && n < len(p) {
			return err
		}
	}
	return nil
}

func eofToUnexpected(err error) error {
	if errors.Is(err, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	return err
}

// AppendFrame appends the encoding of f (header then body) to dst and
// returns the extended slice. The body length field is len(f.Body).
//
// AppendFrame does not check the size: a body longer than MaxBodyLen gives a
// frame every KiteQ peer rejects. Use WriteFrame, or check the length, when
// the body's size is not already known to be within the limit.
func AppendFrame(dst []byte, f Frame) []byte {
	dst = binary.BigEndian.AppendUint32(dst, f.Opaque)
	dst = append(dst, byte(f.Cmd))
	dst = binary.BigEndian.AppendUint16(dst, uint16(f.Version))
	dst = binary.BigEndian.AppendUint64(dst, uint64(f.Extension))
	dst = binary.BigEndian.AppendUint32(dst, uint32(len(f.Body)))
	return append(dst, f.Body...)
}

// WriteFrame writes f to w with a single Write call, so a frame is never
// interleaved with another writer's bytes by this function (callers sharing
// w must still serialise their calls). A body longer than MaxBodyLen is
// refused with ErrFrameTooLarge before anything is written, as the original
// writer does.
func WriteFrame(w io.Writer, f Frame) error {
	if len(f.Body) > MaxBodyLen {
		return fmt.Errorf("%w (%d > %d, %s opaque %d)", ErrFrameTooLarge, len(f.Body), MaxBodyLen, f.Cmd, f.Opaque)
	}
	buf := AppendFrame(make([]byte, 0, HeaderLen+len(f.Body)), f)
	if _, err := w.Write(buf); err != nil {
		return fmt.Errorf("wire: write %s frame: %w", f.Cmd, err)
	}
	return nil
}
