package compat

import (
	"errors"
	"fmt"

	"github.com/kitenats/kitenats/compat/wire"
)

// Code is the class of a refusal: the http-like code of the error table of
// NATS-PROTOCOL.md §8, so that a KiteQ publisher and a NATS publisher are
// refused for the same reason with the same text. Only the description
// reaches the KiteQ wire (as a feedback string); the code is for callers,
// logs and tests.
type Code int

// The refusal classes. Every value except CodeUnauthorized is a row of
// NATS-PROTOCOL.md §8.
const (
	CodeBadRequest Code = 400
	// CodeUnauthorized refuses a ConnMeta in secrets mode. NATS has no
	// equivalent row: there the server refuses the CONNECT itself.
	CodeUnauthorized   Code = 401
	CodeNotFound       Code = 404
	CodeConflict       Code = 409
	CodeTooLarge       Code = 413
	CodeTooMany        Code = 429
	CodeInternal       Code = 500
	CodeNotImplemented Code = 501
	CodeUnavailable    Code = 503
)

// Error is a refusal a KiteQ client sees: a MessageStoreAck or ConnAuthAck
// with status false and Description as its feedback. A Broker returns its
// refusals as *Error (main converts the broker's own error type), and the
// session builds its own for what it checks itself.
type Error struct {
	Code Code
	// Description is the feedback text, verbatim. It starts with "kq: ",
	// like the descriptions of NATS-PROTOCOL.md §8.
	Description string
}

func (e *Error) Error() string { return e.Description }

// refusal builds an *Error; the description gets the "kq: " prefix.
func refusal(code Code, format string, args ...any) *Error {
	return &Error{Code: code, Description: "kq: " + fmt.Sprintf(format, args...)}
}

// Errors returned by Endpoint.Deliver. The broker treats either as a
// refused send: not an attempt, offered again after a pause.
var (
	// ErrQueueFull is returned when the connection's write queue
	// (Config.WriteQueue frames) is full: the client does not read fast
	// enough.
	ErrQueueFull = errors.New("compat: write queue full")
	// ErrTooLarge is returned for a message that does not fit in a KiteQ
	// frame (wire.MaxBodyLen) even Snappy-compressed.
	ErrTooLarge = errors.New("compat: message too large for a KiteQ frame")
)

// errClosed is returned when queueing on a closing or closed connection.
var errClosed = errors.New("compat: connection closed")

// asRefusal is THE mapping from an error to what a KiteQ client is told:
// every status=false reply (store acks, handshake refusals) takes its
// feedback from here. A Broker's *Error and the session's own refusals pass
// through unchanged; the codec's body errors become 413 and 400; anything
// else is an internal error whose cause stays in the logs, never on the wire
// (the second result says so, for the caller to log).
func asRefusal(err error) (e *Error, internal bool) {
	switch {
	case errors.As(err, &e):
		return e, false
	case errors.Is(err, wire.ErrBodyTooLarge):
		return refusal(CodeTooLarge, "message too large: the body is over the limit once decompressed"), false
	case errors.Is(err, wire.ErrCorruptBody):
		return refusal(CodeBadRequest, "the body is flagged snappy but does not decompress"), false
	default:
		return refusal(CodeInternal, "internal error"), true
	}
}

// feedback returns the feedback text for err (see asRefusal).
func feedback(err error) string {
	e, _ := asRefusal(err)
	return e.Description
}
