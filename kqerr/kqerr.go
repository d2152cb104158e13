package kqerr

import (
	"errors"
	"fmt"
)

// Code is the HTTP-like class of a refusal, the "code" of an error reply.
type Code int

// The codes. Every one is a row of the table (Rows); all but Unauthorized
// are rows of NATS-PROTOCOL.md §8.
const (
	BadRequest Code = 400
	// Unauthorized refuses a KiteQ ConnMeta in secrets mode. NATS has no
	// equivalent row: there the server refuses the CONNECT itself.
	Unauthorized Code = 401
	// Forbidden refuses a call on another group's message or resource: a
	// group resolves only its own prepared messages.
	Forbidden      Code = 403
	NotFound       Code = 404
	Conflict       Code = 409
	TooLarge       Code = 413
	TooMany        Code = 429
	Internal       Code = 500
	NotImplemented Code = 501
	Unavailable    Code = 503
)

// Row is one row of the error table.
type Row struct {
	Code Code
	// ErrCode is the JetStream-style err_code: 14000 + Code, except 413,
	// which keeps JetStream's 10054 (message too large): the meaning is the
	// same.
	ErrCode int
	// When says which refusals have this code, as §8 words it.
	When string
	// Retriable says whether the same request may succeed later unchanged:
	// the store or the accept limit, not the request, was at fault.
	Retriable bool
	// KiteQOnly marks a code only the KiteQ adapter uses; it has no row in
	// NATS-PROTOCOL.md §8.
	KiteQOnly bool
}

// table is the error table, in the order of NATS-PROTOCOL.md §8.
var table = [...]Row{
	{Code: BadRequest, ErrCode: 14001, When: "bad subject, header, body or request"},
	{Code: Forbidden, ErrCode: 14403, When: "another group's message: a group resolves only its own prepared messages, and prepares only as itself"},
	{Code: NotFound, ErrCode: 14004, When: "topic not served"},
	{Code: Conflict, ErrCode: 14009, When: "conflict, stale or unknown id, static bindings, bindings per group or per topic over their limit"},
	{Code: TooLarge, ErrCode: 10054, When: "message too large; API request over its size or bindings limit"},
	{Code: TooMany, ErrCode: 14029, When: "accept limit reached; the group's API queue full; consumers per group or per connection at their limit", Retriable: true},
	{Code: NotImplemented, ErrCode: 14501, When: "not implemented yet"},
	{Code: Unavailable, ErrCode: 14503, When: "store full or unavailable", Retriable: true},
	{Code: Internal, ErrCode: 14500, When: "internal error"},
	{Code: Unauthorized, ErrCode: 14401, When: "KiteQ handshake refused (secrets mode)", KiteQOnly: true},
}

// Rows returns a copy of the error table.
func Rows() []Row { return append([]Row(nil), table[:]...) }

// row returns c's row; an unknown code has Internal's.
func (c Code) row() *Row {
	for i := range table {
		if table[i].Code == c {
			return &table[i]
		}
	}
	if c != Internal {
		return Internal.row()
	}
	panic("kqerr: no row for Internal")
}

// ErrCode returns the err_code of c; an unknown code has Internal's.
func (c Code) ErrCode() int { return c.row().ErrCode }

// Retriable reports whether a request refused with c may succeed later
// unchanged (429, 503).
func (c Code) Retriable() bool { return c.row().Retriable }

// Error is a refusal with its code. Description is what the client sees,
// verbatim: the "description" of a NATS error reply and the feedback of a
// KiteQ ack. It starts with "kq: ". Match it with errors.As.
type Error struct {
	Code        Code
	Description string
	cause       error // for logs and errors.Is; never sent
}

// New returns an Error with code whose description is "kq: " followed by
// the formatted text. cause (may be nil) is what Unwrap returns.
func New(code Code, cause error, format string, args ...any) *Error {
	return &Error{Code: code, Description: "kq: " + fmt.Sprintf(format, args...), cause: cause}
}

func (e *Error) Error() string { return e.Description }

// Unwrap returns the cause.
func (e *Error) Unwrap() error { return e.cause }

// ErrCode returns the err_code of e's code.
func (e *Error) ErrCode() int { return e.Code.ErrCode() }

// Retriable reports whether the same request may succeed later unchanged.
func (e *Error) Retriable() bool { return e.Code.Retriable() }

// From returns err as an *Error (errors.As), or else a 500 "kq: internal
// error" whose cause is err: a cause that is not a refusal stays in the
// logs, never on the wire.
func From(err error) *Error {
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	return New(Internal, err, "internal error")
}
