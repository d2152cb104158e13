package compat

import (
	"errors"

	"github.com/kitenats/kitenats/compat/wire"
	"github.com/kitenats/kitenats/kqerr"
)

// A refusal a KiteQ client sees is a *kqerr.Error: a MessageStoreAck or
// ConnAuthAck with status false and its Description as the feedback, the
// same text a NATS client gets (NATS-PROTOCOL.md §8). A Broker returns its
// refusals as *kqerr.Error, and the session builds its own for what it
// checks itself (kqerr.Unauthorized, 401, is the one code only KiteQ uses).

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
// feedback from here. A Broker's *kqerr.Error and the session's own refusals pass
// through unchanged; the codec's body errors become 413 and 400; anything
// else is an internal error whose cause stays in the logs, never on the wire
// (the second result says so, for the caller to log).
func asRefusal(err error) (e *kqerr.Error, internal bool) {
	switch {
	case errors.As(err, &e):
		return e, false
	case errors.Is(err, wire.ErrBodyTooLarge):
		return kqerr.New(kqerr.TooLarge, nil, "message too large: the body is over the limit once decompressed"), false
	case errors.Is(err, wire.ErrCorruptBody):
		return kqerr.New(kqerr.BadRequest, nil, "the body is flagged snappy but does not decompress"), false
	default:
		return kqerr.New(kqerr.Internal, nil, "internal error"), true
	}
}

// feedback returns the feedback text for err (see asRefusal).
func feedback(err error) string {
	e, _ := asRefusal(err)
	return e.Description
}
