package client

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/nats-io/nats.go"
)

// TxProducer publishes transactional messages (two-phase commit,
// NATS-PROTOCOL.md §5, KiteQ's SendTxMessage): a message is prepared
// (stored, not delivered), the producer runs its local transaction, then
// commits (delivers) or rolls back (deletes) the message. If the producer
// dies undecided, the broker asks the group's producers later
// ([TxProducer.HandleChecks]). It also publishes plain messages through
// the embedded [Producer]. It is safe for concurrent use.
type TxProducer struct {
	*Producer
}

// NewTxProducer returns a transactional producer of group on nc. The group
// is required: it is whom the broker's check-backs ask.
func NewTxProducer(nc *nats.Conn, group string) *TxProducer {
	return &TxProducer{Producer: NewProducer(nc, group)}
}

// Prepare publishes a prepared message (Kq-Tx: prepare): stored durably,
// delivered only once committed with [TxProducer.Resolve] or by a
// check-back. The id is [MessageID]'s, else a new one; the Ack carries it.
// [Fly] is refused (400). Most callers want [TxProducer.PublishTx].
func (p *TxProducer) Prepare(ctx context.Context, topic, messageType string, body []byte, opts ...PublishOption) (Ack, error) {
	if p.group == "" {
		return Ack{}, errors.New("client: prepare: a transactional producer needs a group")
	}
	var cfg publishConfig
	for _, o := range opts {
		o(&cfg)
	}
	if len(cfg.hdr[hdrMsgID]) == 0 {
		cfg.set(hdrMsgID, NewMessageID())
	}
	cfg.set(hdrTx, "prepare")
	return p.publish(ctx, topic, messageType, body, &cfg)
}

// Resolve commits (delivers) or rolls back (deletes) the prepared message
// id of topic. Resolving twice the same way is a no-op; the other way is a
// 409 [*Error].
func (p *TxProducer) Resolve(ctx context.Context, topic, id string, commit bool) error {
	action := "rollback"
	if commit {
		action = "commit"
	}
	req := map[string]string{"topic": topic, "id": id, "action": action}
	if err := call(ctx, p.nc, "$KQ.API.TX."+EncodeToken(p.group), req, nil); err != nil {
		return fmt.Errorf("client: %s %s/%s: %w", action, topic, id, err)
	}
	return nil
}

// PublishTx prepares body for (topic, messageType), runs the local
// transaction doTx, and resolves the message by its result: commit when
// doTx returns (true, nil), rollback when it returns false or an error.
// It returns the prepare's error, doTx's error (joined with a failed
// rollback's), or the resolution's error; in that last case the broker's
// check-back resolves the message later. Pass [MessageID] to know the id
// inside doTx (to record it with the local transaction, for the check-back).
//
// The resolution is sent even if ctx is cancelled during doTx (within
// [DefaultTimeout]), because the local transaction has happened. If doTx
// panics, nothing is resolved and the panic goes on: the message stays
// prepared and the check-back decides, as if the process had died.
func (p *TxProducer) PublishTx(ctx context.Context, topic, messageType string, body []byte,
	doTx func(ctx context.Context) (commit bool, err error), opts ...PublishOption,
) error {
	if doTx == nil {
		return errors.New("client: publish tx: nil doTx")
	}
	ack, err := p.Prepare(ctx, topic, messageType, body, opts...)
	if err != nil {
		return err
	}
	commit, txErr := doTx(ctx)
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), DefaultTimeout)
	defer cancel()
	err = p.Resolve(rctx, topic, ack.ID, commit && txErr == nil)
	if txErr != nil {
		return errors.Join(txErr, err)
	}
	return err
}

// Decision is a producer's answer to a transaction check-back.
type Decision uint8

// The answers of NATS-PROTOCOL.md §5. The zero value is Unknown.
const (
	Unknown  Decision = iota // not decided yet: the broker asks again later
	Commit                   // deliver the message
	Rollback                 // delete the message
)

// String returns the wire form: unknown, commit or rollback.
func (d Decision) String() string {
	switch d {
	case Commit:
		return "commit"
	case Rollback:
		return "rollback"
	default:
		return "unknown"
	}
}

// CheckRequest is the broker asking about a message the group prepared and
// did not resolve.
type CheckRequest struct {
	Message
}

// HandleChecks answers the broker's check-backs for the group's prepared
// messages: it subscribes to $KQ.TXCHECK.<group> with queue group <group>
// (one producer of the group is asked each time) and replies fn's
// decision. fn runs on nats.go's subscription goroutine, one call at a
// time; it should answer quickly (the broker's check has a timeout), and
// [Unknown] when it cannot tell yet. Call HandleChecks once per connection.
// stop unsubscribes and waits for a running fn; it is idempotent and must
// not be called from fn.
func (p *TxProducer) HandleChecks(fn func(CheckRequest) Decision) (stop func() error, err error) {
	if fn == nil {
		return nil, errors.New("client: handle checks: nil fn")
	}
	if p.group == "" {
		return nil, errors.New("client: handle checks: a transactional producer needs a group")
	}
	var (
		mu      sync.Mutex // guards stopped and running.Add
		stopped bool
		running sync.WaitGroup
	)
	subject := "$KQ.TXCHECK." + EncodeToken(p.group)
	sub, err := p.nc.QueueSubscribe(subject, EncodeToken(p.group), func(m *nats.Msg) {
		mu.Lock()
		if stopped {
			mu.Unlock()
			return // no answer: the broker asks again later
		}
		running.Add(1)
		mu.Unlock()
		defer running.Done()
		d := fn(CheckRequest{Message: messageFrom(m)})
		_ = m.Respond([]byte(d.String())) // a lost answer is a timeout: the broker asks again
	})
	if err != nil {
		return nil, fmt.Errorf("client: subscribing %s: %w", subject, err)
	}
	var once sync.Once
	var stopErr error
	return func() error {
		once.Do(func() {
			mu.Lock()
			stopped = true
			mu.Unlock()
			if err := sub.Unsubscribe(); err != nil && !errors.Is(err, nats.ErrConnectionClosed) {
				stopErr = fmt.Errorf("client: unsubscribing %s: %w", subject, err)
			}
			running.Wait()
		})
		return stopErr
	}, nil
}
