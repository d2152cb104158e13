// Package kqerr owns the wire errors of kitenats: the one table of
// NATS-PROTOCOL.md §8 (code, err_code, when, retriable) and the error type
// that carries a row's code with its description.
//
// A refusal is the same everywhere: a NATS client gets Code, ErrCode and
// Description in the "error" member of a reply, and a KiteQ client gets
// Description verbatim as its feedback. semantics, compat, txn and client
// share this package instead of mirroring it; franz-go's kerr is the model.
//
// kqerr imports nothing of ours (it is a leaf) and knows no encoding: the
// JSON shape of an error reply belongs to semantics.
package kqerr
