package client

import (
	"errors"
	"fmt"
	"time"

	"github.com/kitenats/kitenats/kqerr"
)

// Error is a refusal from the broker: the "error" member of a publish ack,
// an ack reply or a $KQ.API reply (NATS-PROTOCOL.md §8). Match it with
// errors.As:
//
//	var e *client.Error
//	if errors.As(err, &e) && e.Code == 404 { ... }
type Error struct {
	// Code is the HTTP-like class: 400 bad request, 404 topic not served,
	// 409 conflict, 413 too large, 429 accept limit, 500 internal, 501 not
	// implemented, 503 store full or unavailable (kqerr's constants; compare
	// with kqerr.Code(e.Code) == kqerr.NotFound, or with the number).
	Code int `json:"code"`
	// ErrCode is the JetStream-style code, 14000..14999 (10054 for 413).
	ErrCode int `json:"err_code"`
	// Description is the broker's text, starting "kq: ".
	Description string `json:"description"`
}

// Error returns the broker's description and code.
func (e *Error) Error() string {
	if e.Description == "" {
		return fmt.Sprintf("kq: error %d (%d)", e.Code, e.ErrCode)
	}
	return fmt.Sprintf("%s (%d)", e.Description, e.Code)
}

// Retriable reports whether the same request may succeed later unchanged:
// the accept limit (429) or the store (503) was at fault, not the request.
func (e *Error) Retriable() bool { return kqerr.Code(e.Code).Retriable() }

// ErrClosed is returned by [Consumer.Start] after [Consumer.Close].
var ErrClosed = errors.New("client: consumer closed")

// ErrStarted is returned by a second [Consumer.Start].
var ErrStarted = errors.New("client: consumer already started")

// RetryError is the error of [Retry]: a handler returning it (or an error
// wrapping it) asks for a redelivery not before Delay.
type RetryError struct {
	Delay time.Duration // no redelivery before this; 0: KiteQ's schedule alone
}

func (e *RetryError) Error() string { return fmt.Sprintf("client: retry after %v", e.Delay) }

// Retry returns an error that makes a [Consumer] answer the delivery with
// -NAK and a delay (nats.go's NakWithDelay): the broker redelivers it per
// KiteQ's schedule, not before delay. Wrap it to keep a cause:
// fmt.Errorf("db down: %w", client.Retry(time.Second)).
func Retry(delay time.Duration) error { return &RetryError{Delay: delay} }

// TerminateError is the error of [Terminate]: a handler returning it (or an
// error wrapping it) makes the delivery a dead letter for the group.
type TerminateError struct {
	Reason string // recorded with the dead letter
}

func (e *TerminateError) Error() string { return "client: terminate: " + e.Reason }

// Terminate returns an error that makes a [Consumer] answer the delivery
// with +TERM: the message is never redelivered to this group and becomes a
// dead letter for it ($KQ.ADMIN.DLQ.LIST, `kitenats dlq`), with reason.
func Terminate(reason string) error { return &TerminateError{Reason: reason} }
