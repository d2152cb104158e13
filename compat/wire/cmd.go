package wire

import "fmt"

// Cmd is a KiteQ command code, the CmdType byte of the frame header. It
// selects the protobuf message carried in the body (kiteq-protocol.md §2.1).
type Cmd uint8

// The KiteQ command codes. No other value is valid; frames carrying one are
// ignored by both original peers.
const (
	// CmdHeartbeat carries a HeartBeat: the client's ping and the broker's
	// pong with the same opaque.
	CmdHeartbeat Cmd = 0x01
	// CmdConnMeta carries a ConnMeta, the client's handshake request.
	CmdConnMeta Cmd = 0x02
	// CmdConnAuth carries a ConnAuthAck, the broker's handshake reply.
	CmdConnAuth Cmd = 0x03
	// CmdMessageStoreAck carries a MessageStoreAck, the reply to a publish.
	CmdMessageStoreAck Cmd = 0x04
	// CmdDeliverAck carries a DeliverAck, the consumer's reply to a delivery.
	CmdDeliverAck Cmd = 0x05
	// CmdTxAck carries a TxACKPacket: the broker's transaction check, the
	// producer's answer to it, or the producer's spontaneous commit/rollback.
	CmdTxAck Cmd = 0x06
	// CmdBytesMessage carries a BytesMessage: a publish or a delivery.
	CmdBytesMessage Cmd = 0x11
	// CmdStringMessage carries a StringMessage: a publish or a delivery.
	CmdStringMessage Cmd = 0x12
)

// String returns the original library's name for c ("HEARTBEAT",
// "CONN_META", ...). Unknown codes give "UNKNOWN(0xNN)".
func (c Cmd) String() string {
	switch c {
	case CmdHeartbeat:
		return "HEARTBEAT"
	case CmdConnMeta:
		return "CONN_META"
	case CmdConnAuth:
		return "CONN_AUTH"
	case CmdMessageStoreAck:
		return "MESSAGE_STORE_ACK"
	case CmdDeliverAck:
		return "DELIVER_ACK"
	case CmdTxAck:
		return "TX_ACK"
	case CmdBytesMessage:
		return "BYTES_MESSAGE"
	case CmdStringMessage:
		return "STRING_MESSAGE"
	default:
		return fmt.Sprintf("UNKNOWN(0x%02x)", uint8(c))
	}
}

// Known reports whether c is one of the KiteQ command codes.
func (c Cmd) Known() bool {
	switch c {
	case CmdHeartbeat, CmdConnMeta, CmdConnAuth, CmdMessageStoreAck,
		CmdDeliverAck, CmdTxAck, CmdBytesMessage, CmdStringMessage:
		return true
	default:
		return false
	}
}

// TxStatus values of TxACKPacket.status (kiteq-protocol.md §2.1).
const (
	// TxUnknown means the producer has not decided yet.
	TxUnknown int32 = 0
	// TxCommit commits a 2-phase message.
	TxCommit int32 = 1
	// TxRollback rolls a 2-phase message back.
	TxRollback int32 = 2
)
