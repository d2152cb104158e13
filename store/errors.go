package store

import "errors"

var (
	// ErrNotFound is returned by Get when no message has that topic and id.
	ErrNotFound = errors.New("store: message not found")
	// ErrFull is set in SaveResult.Err when a bounded backend has no room for
	// the message. The message is not stored; nothing is ever evicted.
	ErrFull = errors.New("store: full")
	// ErrClosed is returned by every method after Close, and by the Batcher
	// for work it could not write before it stopped.
	ErrClosed = errors.New("store: closed")
	// ErrBusy is returned by the Batcher when its queue is full: the caller
	// should refuse the publish at once rather than wait.
	ErrBusy = errors.New("store: write queue full")
)
