package natsproto

import (
	"encoding/json"

	"github.com/kitenats/kitenats/kqerr"
)

// Every refusal the broker sends is a *kqerr.Error: a row of the table of
// NATS-PROTOCOL.md §8 (package kqerr) with its description. This file holds
// the one thing about them that is the NATS adapter's: the JSON of an error
// reply.

// apiError is the JSON shape of an error reply.
type apiError struct {
	Code        int    `json:"code"`
	ErrCode     int    `json:"err_code"`
	Description string `json:"description"`
}

// errorBody returns {"error":{...}} for err; anything that is not a
// *kqerr.Error is a 500.
func errorBody(err error) []byte {
	e := kqerr.From(err)
	b, _ := json.Marshal(struct {
		Error apiError `json:"error"`
	}{apiError{Code: int(e.Code), ErrCode: e.ErrCode(), Description: e.Description}})
	return b
}
