package wire

import (
	"fmt"

	"google.golang.org/protobuf/proto"
)

// marshalOpts keeps required-field checking on (AllowPartial is false), as the
// original client does on publish. Deterministic only matters for maps, which
// the schema has none of; fields are written in field-number order either
// way, which is what makes the output byte-identical to the original runtime.
var marshalOpts = proto.MarshalOptions{Deterministic: true}

// unmarshalOpts keeps required-field checking on (AllowPartial is false), so a
// frame the original client would drop is an error here too. Unknown fields
// are kept and re-emitted on Encode, as the original runtime does.
var unmarshalOpts = proto.UnmarshalOptions{}

// NewMessage returns a new, empty message of the type that cmd carries:
// *HeartBeat for CmdHeartbeat, *ConnMeta for CmdConnMeta, *ConnAuthAck for
// CmdConnAuth, *MessageStoreAck, *DeliverAck, *TxACKPacket (CmdTxAck),
// *BytesMessage and *StringMessage. An unknown code gives ErrUnknownCmd.
func NewMessage(cmd Cmd) (proto.Message, error) {
	switch cmd {
	case CmdHeartbeat:
		return new(HeartBeat), nil
	case CmdConnMeta:
		return new(ConnMeta), nil
	case CmdConnAuth:
		return new(ConnAuthAck), nil
	case CmdMessageStoreAck:
		return new(MessageStoreAck), nil
	case CmdDeliverAck:
		return new(DeliverAck), nil
	case CmdTxAck:
		return new(TxACKPacket), nil
	case CmdBytesMessage:
		return new(BytesMessage), nil
	case CmdStringMessage:
		return new(StringMessage), nil
	default:
		return nil, fmt.Errorf("%w 0x%02x", ErrUnknownCmd, uint8(cmd))
	}
}

// cmdOf returns the command code that carries m's type.
func cmdOf(m proto.Message) (Cmd, bool) {
	switch m.(type) {
	case *HeartBeat:
		return CmdHeartbeat, true
	case *ConnMeta:
		return CmdConnMeta, true
	case *ConnAuthAck:
		return CmdConnAuth, true
	case *MessageStoreAck:
		return CmdMessageStoreAck, true
	case *DeliverAck:
		return CmdDeliverAck, true
	case *TxACKPacket:
		return CmdTxAck, true
	case *BytesMessage:
		return CmdBytesMessage, true
	case *StringMessage:
		return CmdStringMessage, true
	default:
		return 0, false
	}
}

// Encode returns the protobuf encoding of m, the body of a cmd frame. m must
// be of the type cmd carries (see NewMessage), otherwise the error wraps
// ErrCmdMismatch or ErrUnknownCmd. Like the original client, and unlike the
// original broker, it fails when a required field is unset; such an error
// matches proto.Error under errors.Is. The output is byte-identical to the
// original runtime's for the same field values.
func Encode(cmd Cmd, m proto.Message) ([]byte, error) {
	if !cmd.Known() {
		return nil, fmt.Errorf("%w 0x%02x", ErrUnknownCmd, uint8(cmd))
	}
	if c, ok := cmdOf(m); !ok || c != cmd {
		return nil, fmt.Errorf("%w: %T for %s", ErrCmdMismatch, m, cmd)
	}
	if !m.ProtoReflect().IsValid() {
		return nil, fmt.Errorf("wire: encode %s: nil %T", cmd, m)
	}
	b, err := marshalOpts.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("wire: encode %s: %w", cmd, err)
	}
	return b, nil
}

// Decode parses f.Body as the message f.Cmd carries and returns it (the
// concrete types are listed at NewMessage). The result does not alias
// f.Body.
//
// An unknown command code gives ErrUnknownCmd; the original peers ignore such
// frames and so should the caller. A body that is not valid protobuf, or that
// lacks a required field, gives an error wrapping both ErrMalformedBody and
// the protobuf runtime's error; the original client drops such a frame
// without replying.
func Decode(f Frame) (proto.Message, error) {
	m, err := NewMessage(f.Cmd)
	if err != nil {
		return nil, err
	}
	if err := unmarshalOpts.Unmarshal(f.Body, m); err != nil {
		return nil, fmt.Errorf("%w: %s opaque %d: %w", ErrMalformedBody, f.Cmd, f.Opaque, err)
	}
	return m, nil
}
