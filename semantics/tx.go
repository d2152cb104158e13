package semantics

import (
	"context"
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
	// Resolve commits or rolls back a prepared message of any publishing
	// group (the admin's call).
	Resolve(ctx context.Context, topic, id string, commit bool) error
	// ResolveAs is Resolve on behalf of group: a message another group
	// published is refused with a 403 *kqerr.Error and left as it is.
	ResolveAs(ctx context.Context, group, topic, id string, commit bool) error
	// List pages through prepared messages (PreparedTxs).
	List(ctx context.Context, offset, limit int) (total int, items []PreparedTx, err error)
}

// PreparedTx is one prepared message, as the NATS adapter's TX.LIST shows
// it.
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

// ResolveTx commits or rolls back a prepared message of any publishing
// group, for the admin, through Config.Transactions (501 without them).
func (b *Broker) ResolveTx(ctx context.Context, topic, id string, commit bool) error {
	if b.tx == nil {
		return kqerr.New(kqerr.NotImplemented, nil, "two-phase commit is not implemented yet")
	}
	return b.tx.Resolve(ctx, topic, id, commit)
}

// ResolveTxAs is ResolveTx on behalf of group: a group resolves only the
// prepared messages it published (their store.Message.Group); another
// group's is refused with 403 and left as it is.
func (b *Broker) ResolveTxAs(ctx context.Context, group, topic, id string, commit bool) error {
	if b.tx == nil {
		return kqerr.New(kqerr.NotImplemented, nil, "two-phase commit is not implemented yet")
	}
	return b.tx.ResolveAs(ctx, group, topic, id, commit)
}

// PreparedTxs pages through the prepared messages (501 without
// Config.Transactions).
func (b *Broker) PreparedTxs(ctx context.Context, offset, limit int) (total int, items []PreparedTx, err error) {
	if b.tx == nil {
		return 0, nil, kqerr.New(kqerr.NotImplemented, nil, "two-phase commit is not implemented yet")
	}
	total, items, err = b.tx.List(ctx, offset, limit)
	if err != nil {
		return 0, nil, fmt.Errorf("listing prepared messages: %w", err)
	}
	return total, items, nil
}
