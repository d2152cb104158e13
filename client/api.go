package client

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
)

// DefaultTimeout bounds every request to the broker whose context has no
// deadline (publish acks, $KQ.API calls, acknowledgements).
const DefaultTimeout = 10 * time.Second

// request sends msg and waits for its reply, within ctx or DefaultTimeout.
func request(ctx context.Context, nc *nats.Conn, msg *nats.Msg) (*nats.Msg, error) {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, DefaultTimeout)
		defer cancel()
	}
	reply, err := nc.RequestMsgWithContext(ctx, msg)
	if err != nil {
		return nil, fmt.Errorf("client: %s: %w", msg.Subject, err)
	}
	return reply, nil
}

// call sends a $KQ.API request with in as its JSON body and decodes the
// reply into out (nil: ignored).
func call(ctx context.Context, nc *nats.Conn, subject string, in, out any) error {
	body, err := json.Marshal(in)
	if err != nil {
		return fmt.Errorf("client: %s: encoding request: %w", subject, err)
	}
	reply, err := request(ctx, nc, &nats.Msg{Subject: subject, Data: body})
	if err != nil {
		return err
	}
	return decodeReply(subject, reply.Data, out)
}

// decodeReply reads a broker reply: an empty body is success (acks), an
// "error" member is an *Error, anything else is decoded into out.
func decodeReply(subject string, data []byte, out any) error {
	if len(bytes.TrimSpace(data)) == 0 {
		return nil
	}
	var e struct {
		Error *Error `json:"error"`
	}
	if err := json.Unmarshal(data, &e); err != nil {
		return fmt.Errorf("client: %s: bad reply %q: %w", subject, data, err)
	}
	if e.Error != nil {
		return e.Error
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("client: %s: bad reply %q: %w", subject, data, err)
	}
	return nil
}
