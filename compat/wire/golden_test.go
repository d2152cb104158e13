package wire

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"google.golang.org/protobuf/encoding/prototext"
	"google.golang.org/protobuf/proto"
)

// goldenFrame is one line of testdata/kiteq/frames.jsonl, frames captured
// between the original broker and the original Go client.
type goldenFrame struct {
	Index     int    `json:"index"`
	Dir       string `json:"dir"`
	Opaque    uint32 `json:"opaque"`
	Cmd       uint8  `json:"cmd"`
	CmdName   string `json:"cmd_name"`
	Version   int16  `json:"version"`
	Extension int64  `json:"extension"`
	BodyLen   int    `json:"body_len"`
	FrameHex  string `json:"frame_hex"`
	// Decoded is the original runtime's text form: "*protocol.Type field:value ...".
	Decoded string `json:"decoded"`
}

func loadGoldenFrames(t testing.TB) []goldenFrame {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", "kiteq", "frames.jsonl"))
	requireNoError(t, err)
	var frames []goldenFrame
	for line := range bytes.Lines(data) {
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		var g goldenFrame
		requireNoError(t, json.Unmarshal(line, &g))
		frames = append(frames, g)
	}
	if len(frames) == 0 {
		t.Fatal("no golden frames")
	}
	return frames
}

// parseDecoded turns the original runtime's text form into a message of the
// type cmd carries, checking the type name it starts with.
func parseDecoded(t testing.TB, cmd Cmd, decoded string) proto.Message {
	t.Helper()
	typeName, text, ok := strings.Cut(decoded, " ")
	if !ok {
		t.Fatalf("decoded %q has no type prefix", decoded)
	}
	want, err := NewMessage(cmd)
	requireNoError(t, err)
	requireEqual(t, typeName, "*"+string(want.ProtoReflect().Descriptor().FullName()))
	requireNoError(t, prototext.Unmarshal([]byte(text), want))
	return want
}

// TestWireGoldenFrames decodes every captured frame to the values the
// original runtime printed and encodes those values back to the same bytes.
func TestWireGoldenFrames(t *testing.T) {
	for _, g := range loadGoldenFrames(t) {
		t.Run(fmt.Sprintf("%02d_%s", g.Index, g.CmdName), func(t *testing.T) {
			raw := mustHex(t, g.FrameHex)
			r := bufio.NewReader(bytes.NewReader(raw))
			f, err := ReadFrame(r)
			requireNoError(t, err)
			requireEqual(t, f.Opaque, g.Opaque)
			requireEqual(t, f.Cmd, Cmd(g.Cmd))
			requireEqual(t, f.Cmd.String(), g.CmdName)
			requireEqual(t, f.Version, g.Version)
			requireEqual(t, f.Extension, g.Extension)
			requireEqual(t, len(f.Body), g.BodyLen)
			_, err = ReadFrame(r)
			requireEqual(t, err, io.EOF)

			got, err := Decode(f)
			requireNoError(t, err)
			want := parseDecoded(t, f.Cmd, g.Decoded)
			requireProtoEqual(t, got, want)

			body, err := Encode(f.Cmd, want)
			requireNoError(t, err)
			requireBytes(t, body, f.Body)
			out := AppendFrame(nil, Frame{Opaque: g.Opaque, Cmd: Cmd(g.Cmd), Version: g.Version, Extension: g.Extension, Body: body})
			requireBytes(t, out, raw)

			var w bytes.Buffer
			requireNoError(t, WriteFrame(&w, f))
			requireBytes(t, w.Bytes(), raw)
		})
	}
}

// TestWireGoldenStream reads the whole captured session as one stream through
// the smallest bufio buffer, so headers and bodies straddle buffer refills.
func TestWireGoldenStream(t *testing.T) {
	frames := loadGoldenFrames(t)
	var stream []byte
	for _, g := range frames {
		stream = append(stream, mustHex(t, g.FrameHex)...)
	}
	r := bufio.NewReaderSize(bytes.NewReader(stream), 16)
	var out []byte
	for i := 0; ; i++ {
		f, err := ReadFrame(r)
		if errors.Is(err, io.EOF) {
			requireEqual(t, i, len(frames))
			break
		}
		requireNoError(t, err)
		requireEqual(t, f.Opaque, frames[i].Opaque)
		_, err = Decode(f)
		requireNoError(t, err)
		out = AppendFrame(out, f)
	}
	requireBytes(t, out, stream)
}

// TestWireGoldenValues pins a few captured values explicitly, independent of
// the text parser used by TestWireGoldenFrames.
func TestWireGoldenValues(t *testing.T) {
	frames := loadGoldenFrames(t)
	decode := func(t *testing.T, index int) proto.Message {
		t.Helper()
		for _, g := range frames {
			if g.Index == index {
				f, err := ReadFrame(bufio.NewReader(bytes.NewReader(mustHex(t, g.FrameHex))))
				requireNoError(t, err)
				m, err := Decode(f)
				requireNoError(t, err)
				return m
			}
		}
		t.Fatalf("no golden frame %d", index)
		return nil
	}
	header := func(id string, expired int64, commit bool) *Header {
		return &Header{
			MessageId:    proto.String(id),
			Topic:        proto.String("user-profile"),
			MessageType:  proto.String("profile-update"),
			ExpiredTime:  proto.Int64(expired),
			DeliverLimit: proto.Int32(100),
			GroupId:      proto.String("go-kite-test"),
			Commit:       proto.Bool(commit),
			Fly:          proto.Bool(false),
			CreateTime:   proto.Int64(1795618940),
		}
	}
	tests := []struct {
		name  string
		index int
		want  proto.Message
	}{
		{"conn_meta", 1, &ConnMeta{GroupId: proto.String("s-mts-test1"), SecretKey: proto.String("123456"), WarmingupSec: proto.Int32(0)}},
		{"conn_auth", 2, &ConnAuthAck{Status: proto.Bool(true), Feedback: proto.String("Auth Succ")}},
		{"publish_string", 5, &StringMessage{Header: header("0000000000000000000000000000a001", -1, true), Body: proto.String("hello world")}},
		{"store_ack", 6, &MessageStoreAck{MessageId: proto.String("0000000000000000000000000000a001"), Status: proto.Bool(true), Feedback: proto.String("Store Result true Cost:0")}},
		{"deliver_string", 7, &StringMessage{Header: header("0000000000000000000000000000a001", 1796223741, true), Body: proto.String("hello world")}},
		{"deliver_ack", 8, &DeliverAck{
			MessageId: proto.String("0000000000000000000000000000a001"), Topic: proto.String("user-profile"),
			MessageType: proto.String("profile-update"), GroupId: proto.String("go-kite-test"),
			Status: proto.Bool(true), Feedback: proto.String(""),
		}},
		{"publish_bytes", 9, &BytesMessage{Header: header("0000000000000000000000000000b002", -1, true), Body: []byte{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15}}},
		{"publish_uncommitted", 13, &BytesMessage{Header: header("0000000000000000000000000000c003", -1, false), Body: []byte("tx-body")}},
		{"tx_commit", 15, &TxACKPacket{Header: header("0000000000000000000000000000c003", -1, false), Status: proto.Int32(TxCommit), Feedback: proto.String("")}},
		{"heartbeat", 18, &HeartBeat{Version: proto.Int64(1795618950)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			requireProtoEqual(t, decode(t, tt.index), tt.want)
		})
	}
}
