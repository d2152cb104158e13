package semantics

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/kitenats/kitenats/kqerr"
	"github.com/kitenats/kitenats/store"
)

// Transactions resolves prepared messages (Config.Transactions; satisfied by
// an adapter over txn.Coordinator that main builds before the broker). Its refusals should be *kqerr.Error values
// (409 for an unknown id or the other way already); anything else is a 500.
type Transactions interface {
	// NextCheck is the first check-back time of a message prepared at now.
	NextCheck(now time.Time) time.Time
	// Resolve commits or rolls back a prepared message.
	Resolve(ctx context.Context, topic, id string, commit bool) error
	// List pages through prepared messages for $KQ.API.TX.LIST.
	List(ctx context.Context, offset, limit int) (total int, items []PreparedTx, err error)
}

// PreparedTx is one prepared message as $KQ.API.TX.LIST shows it.
type PreparedTx struct {
	Topic       string `json:"topic"`
	ID          string `json:"id"`
	MessageType string `json:"messageType"`
	Group       string `json:"groupId"` // publishing group: who is asked
	Created     int64  `json:"created"` // Unix seconds
	AgeSeconds  int64  `json:"ageSeconds"`
	Checks      int    `json:"checks"`    // check-backs sent so far
	NextCheck   int64  `json:"nextCheck"` // Unix seconds
}

// Release makes a committed message deliverable: it plans its groups as a
// fresh publish would, writes the commit with them and, once that is
// durable, sends the deliveries (a commit that no group takes counts as
// unmatched, as a publish would). It implements txn.Releaser. It blocks until
// the commit is written, so it must not be called from a store callback.
func (b *Broker) Release(ctx context.Context, prepared *store.Message) error {
	now := b.cfg.Now()
	m := prepared.Clone()
	m.Prepared, m.Groups = false, nil
	flights := b.plan(m, now)
	done := make(chan error, 1)
	b.update(store.Update{Op: store.OpCommit, Topic: m.Topic, ID: m.ID, Groups: m.Groups}, func(err error) { done <- err })
	var err error
	select {
	case err = <-done:
	case <-ctx.Done():
		err = ctx.Err()
	}
	if err != nil {
		b.mu.Lock()
		for _, f := range flights {
			b.unreserve(f)
		}
		b.mu.Unlock()
		return storeError(err)
	}
	b.counters.published.Add(1)
	if len(m.Groups) == 0 {
		b.unmatched.add(&b.counters, m.Topic)
	}
	b.tap(m)
	b.send(flights)
	return nil
}

// txRequest is the body of $KQ.API.TX.<group>.
type txRequest struct {
	Topic  string `json:"topic"`
	ID     string `json:"id"`
	Action string `json:"action"`
}

// handleTx serves $KQ.API.TX.<group>: commit or roll back a prepared message.
func (b *Broker) handleTx(ctx context.Context, body []byte) (any, error) {
	if b.tx == nil {
		return nil, kqerr.New(kqerr.NotImplemented, nil, "two-phase commit is not implemented yet")
	}
	var req txRequest
	if err := json.Unmarshal(body, &req); err != nil {
		return nil, kqerr.New(kqerr.BadRequest, err, "bad TX request: %v", err)
	}
	var commit bool
	switch req.Action {
	case "commit":
		commit = true
	case "rollback":
	default:
		return nil, kqerr.New(kqerr.BadRequest, nil, "action %q is not commit or rollback", req.Action)
	}
	if req.Topic == "" || !ValidMessageID(req.ID) {
		return nil, kqerr.New(kqerr.BadRequest, nil, "TX needs a topic and a 32-hex-digit id")
	}
	if err := b.tx.Resolve(ctx, req.Topic, req.ID, commit); err != nil {
		return nil, err
	}
	return map[string]string{"id": req.ID, "action": req.Action}, nil
}

// listTx serves $KQ.API.TX.LIST.
func (b *Broker) listTx(ctx context.Context, body []byte) (page[PreparedTx], error) {
	if b.tx == nil {
		return page[PreparedTx]{}, kqerr.New(kqerr.NotImplemented, nil, "two-phase commit is not implemented yet")
	}
	r, err := parsePageRequest(body)
	if err != nil {
		return page[PreparedTx]{}, err
	}
	total, items, err := b.tx.List(ctx, r.Offset, r.Limit)
	if err != nil {
		return page[PreparedTx]{}, fmt.Errorf("listing prepared messages: %w", err)
	}
	return page[PreparedTx]{Total: total, Offset: r.Offset, Limit: r.Limit, Items: items}, nil
}
