package txn

import (
	"context"
	"fmt"
	"math"
	"time"
)

// Prepared describes one prepared message for `kitenats tx list` and
// $KQ.ADMIN.TX.LIST.
type Prepared struct {
	Topic       string
	ID          string
	MessageType string
	Group       string        // publishing group, the target of check-backs
	Created     time.Time     // when the producer made it
	Age         time.Duration // since Created, at the clock's now (0 if unknown)
	Checks      int           // check-backs sent so far
	NextCheck   time.Time     // when the next check-back (or the final action) is due
}

// farFuture is later than any NextCheck, and representable by every backend.
var farFuture = time.Unix(0, math.MaxInt64)

// List returns up to limit prepared messages from offset, in the order of
// their next check (earliest first), and the total number of prepared
// messages as the store counts them (Store.Stats). The order changes as checks are made, so pages of a busy store
// may overlap. It costs O((offset+limit) log n): admin use only.
func (c *Coordinator) List(ctx context.Context, offset, limit int) ([]Prepared, int, error) {
	if offset < 0 || limit < 0 {
		return nil, 0, fmt.Errorf("txn: list: offset %d and limit %d must not be negative", offset, limit)
	}
	stats, err := c.st.Stats(ctx)
	if err != nil {
		return nil, 0, fmt.Errorf("txn: list: %w", err)
	}
	total := 0
	for _, t := range stats.Topics {
		total += int(t.Prepared)
	}
	if limit == 0 {
		return nil, total, nil
	}
	ms, err := c.st.DueChecks(ctx, farFuture, offset+min(limit, math.MaxInt-offset))
	if err != nil {
		return nil, 0, fmt.Errorf("txn: list: %w", err)
	}
	now := c.cfg.Now()
	var out []Prepared
	for i := offset; i < len(ms); i++ {
		m := ms[i]
		p := Prepared{Topic: m.Topic, ID: m.ID, MessageType: m.MessageType, Group: m.Group,
			Created: m.Created, Checks: m.Checks, NextCheck: m.NextCheck}
		if !m.Created.IsZero() && now.After(m.Created) {
			p.Age = now.Sub(m.Created)
		}
		out = append(out, p)
	}
	return out, total, nil
}
