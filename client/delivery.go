package client

import (
	"context"
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
)

// Message is a stored message as the broker sends it to consumers and to
// transaction check-backs.
type Message struct {
	ID           string            // 32 hex digits
	Topic        string            // decoded, as published
	MessageType  string            // decoded, as published
	Group        string            // the publishing group (Kq-Group), may be empty
	Properties   map[string]string // the publisher's own headers; nil when none
	Body         []byte            // never compressed
	BodyType     string            // "bytes" or "string"
	DeliverLimit int               // maximum attempts per group
	Created      time.Time         // whole seconds
	Expires      time.Time         // whole seconds
}

// messageFrom reads the Kq-* headers of a delivery or check-back.
func messageFrom(m *nats.Msg) Message {
	get := func(k string) string { return m.Header.Get(k) }
	unix := func(k string) time.Time {
		n, err := strconv.ParseInt(get(k), 10, 64)
		if err != nil {
			return time.Time{}
		}
		return time.Unix(n, 0)
	}
	limit, _ := strconv.Atoi(get(hdrDeliverLimit)) // 0 when absent: nothing better to say
	msg := Message{
		ID: get(hdrMsgID), Topic: get(hdrTopic), MessageType: get(hdrMessageType), Group: get(hdrGroup),
		Body: m.Data, BodyType: get(hdrBodyType), DeliverLimit: limit,
		Created: unix(hdrCreated), Expires: unix(hdrExpires),
	}
	for k, v := range m.Header {
		if len(v) == 0 || strings.HasPrefix(k, "Kq-") || strings.HasPrefix(k, "Nats-") {
			continue
		}
		if msg.Properties == nil {
			msg.Properties = make(map[string]string)
		}
		msg.Properties[k] = v[0]
	}
	return msg
}

// Delivery is one delivery attempt of a message to a [Consumer]'s group.
// The consumer acknowledges it from the handler's result; the handler must
// not keep it after returning.
type Delivery struct {
	Message
	// DeliverCount is this group's attempt number: 1 for the first
	// delivery, 2 for the first redelivery, …
	DeliverCount int

	nc  *nats.Conn
	msg *nats.Msg
}

func newDelivery(nc *nats.Conn, m *nats.Msg) *Delivery {
	n, _ := strconv.Atoi(m.Header.Get(hdrDeliverCount)) // 0 when absent: nothing better to say
	return &Delivery{Message: messageFrom(m), DeliverCount: n, nc: nc, msg: m}
}

// InProgress tells the broker the handler is still working (+WPI): the ack
// wait starts again. Call it from a handler that may outlive the ack wait.
func (d *Delivery) InProgress(ctx context.Context) error {
	return d.reply(ctx, "+WPI")
}

// reply sends an ack payload and waits for the broker's answer: nil once
// the outcome is durable, an *Error (409) for a stale delivery.
func (d *Delivery) reply(ctx context.Context, payload string) error {
	if d.msg.Reply == "" {
		return errors.New("client: delivery has no reply subject")
	}
	r, err := request(ctx, d.nc, &nats.Msg{Subject: d.msg.Reply, Data: []byte(payload)})
	if err != nil {
		return err
	}
	return decodeReply(d.msg.Reply, r.Data, nil)
}

// ackPayload maps a handler's result to the ack grammar of
// NATS-PROTOCOL.md §4: nil → +ACK, [Retry] → -NAK with a delay, [Terminate]
// → +TERM, anything else → -NAK (KiteQ's redelivery schedule).
func ackPayload(err error) string {
	if err == nil {
		return "+ACK"
	}
	var term *TerminateError
	if errors.As(err, &term) {
		if term.Reason == "" {
			return "+TERM"
		}
		return "+TERM " + term.Reason
	}
	var retry *RetryError
	if errors.As(err, &retry) && retry.Delay > 0 {
		b, _ := json.Marshal(struct {
			Delay time.Duration `json:"delay"`
		}{retry.Delay}) // cannot fail: one integer
		return "-NAK " + string(b)
	}
	return "-NAK"
}
