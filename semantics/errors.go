package semantics

import (
	"encoding/json"
	"errors"
	"fmt"
)

// Code is a wire-visible error class (NATS-PROTOCOL.md §8). It maps to an
// HTTP-like code and a JetStream-style err_code; the KiteQ adapter uses the
// same description as its feedback.
type Code int

// The error table. Every refusal the broker sends is one of these.
const (
	CodeBadRequest     Code = 400
	CodeNotFound       Code = 404
	CodeConflict       Code = 409
	CodeTooLarge       Code = 413
	CodeTooMany        Code = 429
	CodeInternal       Code = 500
	CodeNotImplemented Code = 501
	CodeUnavailable    Code = 503
)

// ErrCode returns the err_code of c from the table of NATS-PROTOCOL.md §8.
// 413 keeps JetStream's 10054 (message too large): the meaning is the same.
func (c Code) ErrCode() int {
	switch c {
	case CodeBadRequest:
		return 14001
	case CodeNotFound:
		return 14004
	case CodeConflict:
		return 14009
	case CodeTooLarge:
		return 10054
	case CodeTooMany:
		return 14029
	case CodeNotImplemented:
		return 14501
	case CodeUnavailable:
		return 14503
	default:
		return 14500
	}
}

// Error is a refusal with its wire code. Description always starts "kq: ".
type Error struct {
	Code        Code
	Description string
	// Retriable says whether the same request may succeed later unchanged
	// (429, 503): the store or the accept limit, not the request, was at
	// fault.
	Retriable bool
	err       error // the cause, for logs; never sent
}

func (e *Error) Error() string { return e.Description }

// Unwrap returns the cause.
func (e *Error) Unwrap() error { return e.err }

// errorf builds an Error; retriability follows from the code.
func errorf(code Code, cause error, format string, args ...any) *Error {
	return &Error{
		Code:        code,
		Description: "kq: " + fmt.Sprintf(format, args...),
		Retriable:   code == CodeTooMany || code == CodeUnavailable,
		err:         cause,
	}
}

// AsError returns err as an *Error, mapping anything else to 500.
func AsError(err error) *Error {
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	return errorf(CodeInternal, err, "internal error")
}

// apiError is the JSON shape of an error reply.
type apiError struct {
	Code        int    `json:"code"`
	ErrCode     int    `json:"err_code"`
	Description string `json:"description"`
}

// errorBody returns {"error":{...}} for err.
func errorBody(err error) []byte {
	e := AsError(err)
	b, _ := json.Marshal(struct {
		Error apiError `json:"error"`
	}{apiError{Code: int(e.Code), ErrCode: e.Code.ErrCode(), Description: e.Description}})
	return b
}
