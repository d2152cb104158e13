package wire

import "errors"

// Sentinel errors. They are returned wrapped with context, so match them with
// errors.Is.
var (
	// ErrBadLength is returned by ReadFrame when the header declares a
	// negative body length. The stream can no longer be trusted to be
	// aligned on frame boundaries, so the caller must close the connection.
	ErrBadLength = errors.New("wire: negative frame body length")

	// ErrFrameTooLarge is returned by ReadFrame when the header declares a
	// body longer than MaxBodyLen (the caller must close the connection,
	// because the body is not consumed), and by WriteFrame when asked to
	// write such a body (nothing is written).
	ErrFrameTooLarge = errors.New("wire: frame body too large")

	// ErrUnknownCmd is returned by Decode, Encode and NewMessage for a
	// command code outside the KiteQ table. Both original peers ignore such
	// frames silently, and so should callers of Decode.
	ErrUnknownCmd = errors.New("wire: unknown command")

	// ErrCmdMismatch is returned by Encode when the message's type is not the
	// one the command code carries (for example a HeartBeat for
	// CmdDeliverAck).
	ErrCmdMismatch = errors.New("wire: message type does not match command")

	// ErrMalformedBody is returned by Decode when the body is not a valid
	// protobuf encoding of the command's message, including when a required
	// field is missing. The original peers drop such a frame without a
	// reply; the connection stays usable.
	ErrMalformedBody = errors.New("wire: malformed body")

	// ErrNotMessageCmd is returned by DecodeBody and EncodeBody for a command
	// other than CmdBytesMessage and CmdStringMessage.
	ErrNotMessageCmd = errors.New("wire: command carries no message body")

	// ErrBodyTooLarge is returned by DecodeBody when the result would be
	// longer than the caller's limit. It is detected before the result is
	// allocated.
	ErrBodyTooLarge = errors.New("wire: message body too large")

	// ErrCorruptBody is returned by DecodeBody when a body flagged as Snappy
	// is not valid Snappy block data (or, for a string message, not valid
	// standard base64).
	ErrCorruptBody = errors.New("wire: corrupt compressed body")
)
