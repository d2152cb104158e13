package wire

import (
	"errors"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"
)

// TestWireEncodeRequired checks that a message missing any required field is
// refused, as the original client refuses to publish it (§2.3).
func TestWireEncodeRequired(t *testing.T) {
	full := func() *Header { return vectorHeader(true) }
	without := func(clear func(h *Header)) *Header {
		h := full()
		clear(h)
		return h
	}
	tests := []struct {
		name    string
		cmd     Cmd
		msg     proto.Message
		missing string
	}{
		{"heartbeat_version", CmdHeartbeat, &HeartBeat{}, "protocol.HeartBeat.version"},
		{"conn_meta_secret", CmdConnMeta, &ConnMeta{GroupId: proto.String("g")}, "protocol.ConnMeta.secretKey"},
		{"conn_auth_feedback", CmdConnAuth, &ConnAuthAck{Status: proto.Bool(true)}, "protocol.ConnAuthAck.feedback"},
		{"conn_auth_status", CmdConnAuth, &ConnAuthAck{Feedback: proto.String("")}, "protocol.ConnAuthAck.status"},
		{"store_ack_id", CmdMessageStoreAck, &MessageStoreAck{Status: proto.Bool(true), Feedback: proto.String("")}, "protocol.MessageStoreAck.messageId"},
		{"deliver_ack_group", CmdDeliverAck, &DeliverAck{
			MessageId: proto.String(vectorID), Topic: proto.String("t"), MessageType: proto.String("m"), Status: proto.Bool(true),
		}, "protocol.DeliverAck.groupId"},
		{"tx_header", CmdTxAck, &TxACKPacket{Status: proto.Int32(0), Feedback: proto.String("")}, "protocol.TxACKPacket.header"},
		{"bytes_body", CmdBytesMessage, &BytesMessage{Header: full()}, "protocol.BytesMessage.body"},
		{"header_topic", CmdStringMessage, &StringMessage{Header: &Header{MessageId: proto.String(vectorID)}, Body: proto.String("")}, "protocol.Header.topic"},
		{"header_expired", CmdStringMessage, &StringMessage{Header: without(func(h *Header) { h.ExpiredTime = nil }), Body: proto.String("")}, "protocol.Header.expiredTime"},
		{"header_deliver_limit", CmdBytesMessage, &BytesMessage{Header: without(func(h *Header) { h.DeliverLimit = nil }), Body: nil}, "protocol.Header.deliverLimit"},
		{"header_commit", CmdBytesMessage, &BytesMessage{Header: without(func(h *Header) { h.Commit = nil }), Body: []byte{}}, "protocol.Header.commit"},
		{"header_fly", CmdBytesMessage, &BytesMessage{Header: without(func(h *Header) { h.Fly = nil }), Body: []byte{}}, "protocol.Header.fly"},
		{"entry_value", CmdBytesMessage, &BytesMessage{Header: func() *Header {
			h := full()
			h.Properties = []*Entry{{Key: proto.String("k")}}
			return h
		}(), Body: []byte{}}, "protocol.Entry.value"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Encode(tt.cmd, tt.msg)
			if err == nil {
				t.Fatal("Encode succeeded")
			}
			requireErrorIs(t, err, proto.Error)
			if !strings.Contains(err.Error(), "required field "+tt.missing+" not set") {
				t.Fatalf("error %q does not name %s", err, tt.missing)
			}
			if !strings.HasPrefix(err.Error(), "wire: ") {
				t.Fatalf("error %q lacks the package prefix", err)
			}
		})
	}
}

// TestWireDecodeRequired checks that a body missing a required field is
// refused, as the original client drops it (§2.3, Appendix C).
func TestWireDecodeRequired(t *testing.T) {
	tests := []struct {
		name    string
		cmd     Cmd
		body    string
		missing string
	}{
		{"conn_auth_without_feedback", CmdConnAuth, "0801", "protocol.ConnAuthAck.feedback"},
		{"heartbeat_empty", CmdHeartbeat, "", "protocol.HeartBeat.version"},
		// A BytesMessage whose header has only messageId, as in Appendix C's
		// check, and an empty body.
		{"header_only_message_id", CmdBytesMessage, "0a22 0a20" + vectorIDHex + "1200", "protocol.Header.topic"},
		{"store_ack_without_feedback", CmdMessageStoreAck, "0a00 1001", "protocol.MessageStoreAck.feedback"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Decode(Frame{Opaque: 4, Cmd: tt.cmd, Body: mustHex(t, tt.body)})
			requireErrorIs(t, err, ErrMalformedBody)
			requireErrorIs(t, err, proto.Error)
			if !strings.Contains(err.Error(), "required field "+tt.missing+" not set") {
				t.Fatalf("error %q does not name %s", err, tt.missing)
			}
		})
	}
}

func TestWireDecodeMalformed(t *testing.T) {
	tests := []struct {
		name string
		body string
	}{
		{"truncated_varint", "0880"},
		{"truncated_string", "0a0561"},
		{"bad_wire_type", "0f"},
		{"field_zero", "0001"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Decode(Frame{Cmd: CmdDeliverAck, Body: mustHex(t, tt.body)})
			requireErrorIs(t, err, ErrMalformedBody)
		})
	}
}

func TestWireDecodeUnknownCmd(t *testing.T) {
	for _, c := range []Cmd{0x00, 0x07, 0x10, 0x13, 0xff} {
		_, err := Decode(Frame{Cmd: c, Body: mustHex(t, "0880e2cfaa06")})
		requireErrorIs(t, err, ErrUnknownCmd)
		if errors.Is(err, ErrMalformedBody) {
			t.Fatalf("unknown cmd reported as malformed: %v", err)
		}
	}
}

func TestWireEncodeMismatch(t *testing.T) {
	hb := &HeartBeat{Version: proto.Int64(1)}
	_, err := Encode(CmdDeliverAck, hb)
	requireErrorIs(t, err, ErrCmdMismatch)
	_, err = Encode(0x07, hb)
	requireErrorIs(t, err, ErrUnknownCmd)
	_, err = Encode(CmdHeartbeat, (*HeartBeat)(nil))
	if err == nil {
		t.Fatal("Encode of a nil message succeeded")
	}
	_, err = Encode(CmdHeartbeat, &Entry{Key: proto.String("k"), Value: proto.String("v")})
	requireErrorIs(t, err, ErrCmdMismatch)
}

// TestWireOptionalFieldOrder pins the encoding of the fields no golden frame
// carries: properties (9), createTime (10) and snappy (11), in that order
// after the required header fields.
func TestWireOptionalFieldOrder(t *testing.T) {
	h := vectorHeader(true)
	h.Properties = []*Entry{
		{Key: proto.String("k1"), Value: proto.String("v")},
		{Key: proto.String(""), Value: proto.String("")},
	}
	h.Snappy = proto.Bool(true)
	msg := &BytesMessage{Header: h, Body: mustHex(t, "171468656c6c6f20420600")}
	body, err := Encode(CmdBytesMessage, msg)
	requireNoError(t, err)

	hdr := strings.TrimSuffix(vectorHeaderHex(true), "5080e2cfaa06") +
		"4a07 0a026b31 120176" + "4a04 0a00 1200" + "5080e2cfaa06" + "5801"
	want := "0a" + "64" + hdr + "120b" + "171468656c6c6f20420600"
	requireBytes(t, body, mustHex(t, want))

	got, err := Decode(Frame{Cmd: CmdBytesMessage, Body: body})
	requireNoError(t, err)
	requireProtoEqual(t, got, msg)
}

// TestWireUnknownFieldsKept checks that fields a newer peer might add survive
// a decode and re-encode, as with the original runtime.
func TestWireUnknownFieldsKept(t *testing.T) {
	body := mustHex(t, "0880e2cfaa06 7801") // version, then field 15 varint 1
	m, err := Decode(Frame{Cmd: CmdHeartbeat, Body: body})
	requireNoError(t, err)
	out, err := Encode(CmdHeartbeat, m)
	requireNoError(t, err)
	requireBytes(t, out, body)
}

// TestWireDefaults checks the proto2 defaults of §2.2 through the getters.
func TestWireDefaults(t *testing.T) {
	requireEqual(t, (&ConnAuthAck{}).GetStatus(), true)
	requireEqual(t, (&MessageStoreAck{}).GetStatus(), true)
	requireEqual(t, (&DeliverAck{}).GetStatus(), true)
	requireEqual(t, (&TxACKPacket{}).GetStatus(), int32(0))
	requireEqual(t, (&ConnMeta{}).GetWarmingupSec(), int32(0))
	requireEqual(t, (&Header{}).GetExpiredTime(), int64(-1))
	requireEqual(t, (&Header{}).GetDeliverLimit(), int32(100))
	requireEqual(t, (&Header{}).GetFly(), false)
	requireEqual(t, (&Header{}).GetCommit(), false)
}

// TestWireDecodeDoesNotAlias checks that a decoded body survives reuse of the
// frame's buffer.
func TestWireDecodeDoesNotAlias(t *testing.T) {
	msg := &BytesMessage{Header: vectorHeader(true), Body: []byte("payload")}
	body, err := Encode(CmdBytesMessage, msg)
	requireNoError(t, err)
	m, err := Decode(Frame{Cmd: CmdBytesMessage, Body: body})
	requireNoError(t, err)
	for i := range body {
		body[i] = 0
	}
	requireBytes(t, m.(*BytesMessage).GetBody(), []byte("payload"))
}
