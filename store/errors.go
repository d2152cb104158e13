package store

import "errors"

var (
	// ErrNotFound is returned by Get when no message has that topic and id.
	ErrNotFound = errors.New("store: message not found")
	// ErrFull is set in SaveResult.Err when a bounded backend has no room for
	// the message. The message is not stored; nothing is ever evicted.
	ErrFull = errors.New("store: full")
	// ErrNoSpace is returned (wrapped, with the backend's reason) when the
	// disk the store writes to has no room: as a SaveResult.Err for a save
	// refused while free space is below the backend's reserve (the rest of
	// the batch, acks included, is still applied), or by Write when a write
	// ran out of space (nothing of the batch is applied). Unlike a failure,
	// it passes by itself once space returns; see Reporter.
	ErrNoSpace = errors.New("store: no space left on device")
	// ErrClosed is returned by every method after Close, and by the Batcher
	// for work it could not write before it stopped.
	ErrClosed = errors.New("store: closed")
	// ErrBusy is returned by the Batcher when its queue is full: the caller
	// should refuse the publish at once rather than wait.
	ErrBusy = errors.New("store: write queue full")
)
