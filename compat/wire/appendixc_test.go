package wire

import (
	"bufio"
	"bytes"
	"testing"

	"google.golang.org/protobuf/proto"
)

// Appendix C of kiteq-protocol.md: frames made with the original libraries.
const (
	// vectorID is the 32 ASCII bytes of the message id 26c03f00665862591f696a980b5a6c4f.
	vectorIDHex = "3236633033663030363635383632353931663639366139383062356136633466"
	vectorID    = "26c03f00665862591f696a980b5a6c4f"
)

// vectorHeaderHex is the 83-byte header H of Appendix C, field by field.
func vectorHeaderHex(commit bool) string {
	c := "3801"
	if !commit {
		c = "3800"
	}
	return "0a20" + vectorIDHex + "12057472616465" + "1a087061792d73756363" + "20ffffffffffffffffff01" +
		"2864" + "3207702d7472616465" + c + "4000" + "5080e2cfaa06"
}

func vectorHeader(commit bool) *Header {
	return &Header{
		MessageId:    proto.String(vectorID),
		Topic:        proto.String("trade"),
		MessageType:  proto.String("pay-succ"),
		ExpiredTime:  proto.Int64(-1),
		DeliverLimit: proto.Int32(100),
		GroupId:      proto.String("p-trade"),
		Commit:       proto.Bool(commit),
		Fly:          proto.Bool(false),
		CreateTime:   proto.Int64(1700000000),
	}
}

// TestWireAppendixC decodes each Appendix C vector to its values and encodes
// the values back to the identical bytes.
func TestWireAppendixC(t *testing.T) {
	const zeroExt = "0000 0000000000000000"
	tests := []struct {
		name   string
		opaque uint32
		cmd    Cmd
		msg    proto.Message
		hex    string // header | body, as written in the appendix
	}{
		{
			name: "conn_meta", opaque: 1, cmd: CmdConnMeta,
			msg: &ConnMeta{GroupId: proto.String("s-user-profile"), SecretKey: proto.String("123456"), WarmingupSec: proto.Int32(0)},
			hex: "00000001 02 " + zeroExt + " 0000001a | 0a0e732d757365722d70726f66696c6512063132333435361800",
		},
		{
			name: "conn_auth_ack", opaque: 1, cmd: CmdConnAuth,
			msg: &ConnAuthAck{Status: proto.Bool(true), Feedback: proto.String("Auth Succ")},
			hex: "00000001 03 " + zeroExt + " 0000000d | 08011209417574682053756363",
		},
		{
			name: "unauthorized", opaque: 0, cmd: CmdConnAuth,
			msg: &ConnAuthAck{Status: proto.Bool(false), Feedback: proto.String("Unauthorized,Connection broken!")},
			hex: "00000000 03 " + zeroExt + " 00000023 | 0800121f556e617574686f72697a65642c436f6e6e656374696f6e2062726f6b656e21",
		},
		{
			name: "heartbeat", opaque: 2, cmd: CmdHeartbeat,
			msg: &HeartBeat{Version: proto.Int64(1700000000)},
			hex: "00000002 01 " + zeroExt + " 00000006 | 0880e2cfaa06",
		},
		{
			name: "string_message", opaque: 3, cmd: CmdStringMessage,
			msg: &StringMessage{Header: vectorHeader(true), Body: proto.String("hello")},
			hex: "00000003 12 " + zeroExt + " 0000005c | 0a53" + vectorHeaderHex(true) + "120568656c6c6f",
		},
		{
			name: "message_store_ack", opaque: 3, cmd: CmdMessageStoreAck,
			msg: &MessageStoreAck{MessageId: proto.String(vectorID), Status: proto.Bool(true), Feedback: proto.String("Store Result true Cost:0")},
			hex: "00000003 04 " + zeroExt + " 0000003e | 0a20" + vectorIDHex + "1001" + "1a18" + "53746f726520526573756c74207472756520436f73743a30",
		},
		{
			name: "deliver_ack", opaque: 7, cmd: CmdDeliverAck,
			msg: &DeliverAck{
				MessageId: proto.String(vectorID), Topic: proto.String("trade"), MessageType: proto.String("pay-succ"),
				GroupId: proto.String("p-trade"), Status: proto.Bool(true), Feedback: proto.String(""),
			},
			hex: "00000007 05 " + zeroExt + " 00000040 | 0a20" + vectorIDHex + "120574726164651a087061792d737563632207702d747261646528013200",
		},
		{
			name: "tx_check", opaque: 9, cmd: CmdTxAck,
			msg: &TxACKPacket{Header: vectorHeader(true), Status: proto.Int32(TxUnknown), Feedback: proto.String("Server Check")},
			hex: "00000009 06 " + zeroExt + " 00000065 | 0a53" + vectorHeaderHex(true) + "1000" + "1a0c53657276657220436865636b",
		},
		{
			name: "tx_commit", opaque: 0, cmd: CmdTxAck,
			msg: &TxACKPacket{Header: vectorHeader(false), Status: proto.Int32(TxCommit), Feedback: proto.String("")},
			hex: "00000000 06 " + zeroExt + " 00000059 | 0a53" + vectorHeaderHex(false) + "1001" + "1a00",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			raw := mustHex(t, tt.hex)

			f, err := ReadFrame(bufio.NewReader(bytes.NewReader(raw)))
			requireNoError(t, err)
			requireEqual(t, f.Opaque, tt.opaque)
			requireEqual(t, f.Cmd, tt.cmd)
			requireEqual(t, f.Version, int16(0))
			requireEqual(t, f.Extension, int64(0))
			got, err := Decode(f)
			requireNoError(t, err)
			requireProtoEqual(t, got, tt.msg)

			body, err := Encode(tt.cmd, tt.msg)
			requireNoError(t, err)
			requireBytes(t, AppendFrame(nil, Frame{Opaque: tt.opaque, Cmd: tt.cmd, Body: body}), raw)
		})
	}
}

// TestWireAppendixCHeader checks the 83-byte header H on its own, including
// the 10-byte varint of expiredTime -1.
func TestWireAppendixCHeader(t *testing.T) {
	for _, commit := range []bool{true, false} {
		b, err := proto.MarshalOptions{}.Marshal(vectorHeader(commit))
		requireNoError(t, err)
		requireEqual(t, len(b), 83)
		requireBytes(t, b, mustHex(t, vectorHeaderHex(commit)))
	}
}
