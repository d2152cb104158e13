package wire

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"runtime"
	"testing"
	"testing/iotest"

	"github.com/stretchr/testify/require"
)

// frameHeader builds a frame header declaring bodyLen, for streams that lie.
func frameHeader(opaque uint32, cmd Cmd, bodyLen int32) []byte {
	h := AppendFrame(nil, Frame{Opaque: opaque, Cmd: cmd})
	binary.BigEndian.PutUint32(h[15:], uint32(bodyLen))
	return h
}

func TestWireCmdString(t *testing.T) {
	tests := []struct {
		cmd   Cmd
		want  string
		known bool
	}{
		{CmdHeartbeat, "HEARTBEAT", true},
		{CmdConnMeta, "CONN_META", true},
		{CmdConnAuth, "CONN_AUTH", true},
		{CmdMessageStoreAck, "MESSAGE_STORE_ACK", true},
		{CmdDeliverAck, "DELIVER_ACK", true},
		{CmdTxAck, "TX_ACK", true},
		{CmdBytesMessage, "BYTES_MESSAGE", true},
		{CmdStringMessage, "STRING_MESSAGE", true},
		{0x00, "UNKNOWN(0x00)", false},
		{0x07, "UNKNOWN(0x07)", false},
		{0x10, "UNKNOWN(0x10)", false},
		{0xff, "UNKNOWN(0xff)", false},
	}
	for _, tt := range tests {
		t.Run(tt.want, func(t *testing.T) {
			requireEqual(t, tt.cmd.String(), tt.want)
			requireEqual(t, tt.cmd.Known(), tt.known)
			_, err := NewMessage(tt.cmd)
			requireEqual(t, err == nil, tt.known)
		})
	}
}

func TestWireFrameHeaderLayout(t *testing.T) {
	f := Frame{Opaque: 0x80000001, Cmd: CmdTxAck, Version: -2, Extension: -3, Body: []byte{0xaa, 0xbb}}
	raw := AppendFrame([]byte{0xee}, f)
	requireBytes(t, raw, mustHex(t, "ee | 80000001 06 fffe fffffffffffffffd 00000002 | aabb"))

	got, err := ReadFrame(bufio.NewReader(bytes.NewReader(raw[1:])))
	requireNoError(t, err)
	requireEqual(t, got.Opaque, f.Opaque)
	requireEqual(t, got.Cmd, f.Cmd)
	requireEqual(t, got.Version, f.Version)
	requireEqual(t, got.Extension, f.Extension)
	requireBytes(t, got.Body, f.Body)
}

func TestWireReadFrameEmptyBody(t *testing.T) {
	r := bufio.NewReader(bytes.NewReader(frameHeader(5, 0x07, 0)))
	f, err := ReadFrame(r)
	requireNoError(t, err)
	requireEqual(t, len(f.Body), 0)
	requireEqual(t, f.Cmd, Cmd(0x07))
	_, err = Decode(f)
	requireErrorIs(t, err, ErrUnknownCmd)
}

func TestWireReadFrameErrors(t *testing.T) {
	short := append(frameHeader(1, CmdHeartbeat, 6), 0x08, 0x80)
	tests := []struct {
		name string
		in   io.Reader
		want error
	}{
		{"empty_stream", bytes.NewReader(nil), io.EOF},
		{"partial_header", bytes.NewReader(frameHeader(1, CmdHeartbeat, 0)[:7]), io.ErrUnexpectedEOF},
		{"truncated_body", bytes.NewReader(short), io.ErrUnexpectedEOF},
		{"negative_length", bytes.NewReader(frameHeader(1, CmdHeartbeat, -1)), ErrBadLength},
		{"length_2GiB_wraps_negative", bytes.NewReader(frameHeader(1, CmdBytesMessage, -1<<31)), ErrBadLength},
		{"length_max_plus_one", bytes.NewReader(frameHeader(1, CmdBytesMessage, MaxBodyLen+1)), ErrFrameTooLarge},
		{"length_max_int32", bytes.NewReader(frameHeader(1, CmdBytesMessage, 1<<31-1)), ErrFrameTooLarge},
		{"read_error", iotest.ErrReader(errors.New("boom")), nil},
		{"read_error_in_body", io.MultiReader(bytes.NewReader(short), iotest.ErrReader(errors.New("boom"))), nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ReadFrame(bufio.NewReader(tt.in))
			if err == nil {
				t.Fatal("ReadFrame succeeded")
			}
			if tt.want == nil {
				requireEqual(t, err.Error() != "" && !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF), true)
				return
			}
			requireErrorIs(t, err, tt.want)
			if tt.want == io.EOF {
				requireEqual(t, err, io.EOF) // unwrapped, for plain comparisons
			}
		})
	}
}

// TestWireReadFrameAllocBound checks that a lying length is refused without
// allocating it, and that an honest length never costs more than itself.
func TestWireReadFrameAllocBound(t *testing.T) {
	tests := []struct {
		name    string
		declare int32
		want    error
		bound   uint64
	}{
		{"2GiB_minus_1_short_stream", 1<<31 - 1, ErrFrameTooLarge, 0},
		{"max_plus_one_short_stream", MaxBodyLen + 1, ErrFrameTooLarge, 0},
		{"max_short_stream", MaxBodyLen, io.ErrUnexpectedEOF, MaxBodyLen},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := append(frameHeader(9, CmdBytesMessage, tt.declare), "only a few bytes"...)
			r := bufio.NewReader(bytes.NewReader(in))
			var err error
			n := allocated(func() { _, err = ReadFrame(r) })
			requireErrorIs(t, err, tt.want)
			if n > tt.bound+allocSlack {
				t.Fatalf("ReadFrame allocated %d bytes, bound %d", n, tt.bound)
			}
		})
	}
}

func TestWireReadFrameAllocs(t *testing.T) {
	raw := AppendFrame(nil, Frame{Opaque: 1, Cmd: CmdHeartbeat, Body: mustHex(t, "0880e2cfaa06")})
	src := bytes.NewReader(raw)
	r := bufio.NewReader(src)
	allocs := testing.AllocsPerRun(100, func() {
		src.Reset(raw)
		r.Reset(src)
		if _, err := ReadFrame(r); err != nil {
			t.Fatal(err)
		}
	})
	// Only the body: the header is read into a stack array.
	requireEqual(t, allocs, 1.0)
}

func TestWireFrameMaxBody(t *testing.T) {
	body := bytes.Repeat([]byte{0x5a}, MaxBodyLen)
	var w bytes.Buffer
	requireNoError(t, WriteFrame(&w, Frame{Opaque: 3, Cmd: CmdBytesMessage, Body: body}))
	requireEqual(t, w.Len(), HeaderLen+MaxBodyLen)
	f, err := ReadFrame(bufio.NewReader(&w))
	requireNoError(t, err)
	requireBytes(t, f.Body, body)

	w.Reset()
	err = WriteFrame(&w, Frame{Opaque: 3, Cmd: CmdBytesMessage, Body: append(body, 0)})
	requireErrorIs(t, err, ErrFrameTooLarge)
	requireEqual(t, w.Len(), 0)
}

// shortWriter fails every write.
type shortWriter struct{}

func (shortWriter) Write([]byte) (int, error) { return 0, io.ErrShortWrite }

func TestWireWriteFrameError(t *testing.T) {
	err := WriteFrame(shortWriter{}, Frame{Cmd: CmdHeartbeat})
	requireErrorIs(t, err, io.ErrShortWrite)
}

// A body over growStep grows as it arrives: a header announcing the largest
// body, followed by a few bytes, costs growStep, not MaxBodyLen; a whole
// large body still reads back exactly.
func TestReadFrameBodyGrowsAsItArrives(t *testing.T) {
	hdr := AppendFrame(nil, Frame{Opaque: 1, Cmd: CmdBytesMessage, Body: make([]byte, MaxBodyLen)})[:HeaderLen]
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	_, err := ReadFrame(bufio.NewReader(io.MultiReader(bytes.NewReader(hdr), bytes.NewReader([]byte("partial")))))
	runtime.ReadMemStats(&after)
	require.ErrorIs(t, err, io.ErrUnexpectedEOF)
	require.Less(t, after.TotalAlloc-before.TotalAlloc, uint64(growStep+growStep/2), "allocated for a body that never came")

	body := make([]byte, 3*growStep+17)
	for i := range body {
		body[i] = byte(i * 7)
	}
	f, err := ReadFrame(bufio.NewReader(bytes.NewReader(AppendFrame(nil, Frame{Opaque: 2, Cmd: CmdBytesMessage, Body: body}))))
	require.NoError(t, err)
	require.Equal(t, body, f.Body)
	require.Equal(t, len(body), cap(f.Body), "never more than the declared length")
}

// ReadFrameMax refuses a body over its bound before reading it.
func TestReadFrameMax(t *testing.T) {
	frame := AppendFrame(nil, Frame{Opaque: 3, Cmd: CmdHeartbeat, Body: make([]byte, 100)})
	_, err := ReadFrameMax(bufio.NewReader(bytes.NewReader(frame)), 99)
	require.ErrorIs(t, err, ErrFrameTooLarge)
	f, err := ReadFrameMax(bufio.NewReader(bytes.NewReader(frame)), 100)
	require.NoError(t, err)
	require.Len(t, f.Body, 100)
}
