package txn

import (
	"context"
	"errors"
	"time"

	"github.com/kitenats/kitenats/store"
)

// Run ticks at once, then every Config.Interval/10 (at least 100ms, at most
// 1s), until ctx ends; then it returns nil. It starts no goroutine: each
// Tick runs on the caller's.
func (c *Coordinator) Run(ctx context.Context) error {
	t := time.NewTicker(c.cfg.tickPeriod())
	defer t.Stop()
	for {
		if ctx.Err() != nil {
			return nil
		}
		c.Tick(ctx)
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// Tick does one pass at the clock's now over up to Config.Page prepared
// messages whose check is due, earliest first:
//
//   - one checked MaxChecks times already gets the final action;
//   - any other is checked; Commit or Rollback is applied as by Resolve
//     (a conflict means Resolve was first, and is ignored); Unknown, an
//     error or a timeout records one more check and the next one at
//     now+Interval (store.OpCheck).
//
// A message that a Resolve is deciding at the moment is skipped. Tick
// returns once every update it made is durable, or ctx ends. Failures are
// logged; what failed is retried on a later Tick. Concurrent Ticks are safe
// (decisions stay exclusive) but wasteful: run one, through Run.
func (c *Coordinator) Tick(ctx context.Context) {
	now := c.cfg.Now()
	due, err := c.st.DueChecks(ctx, now, c.cfg.Page)
	if err != nil {
		c.log.Warn("txn: reading due checks", "err", err)
		return
	}
	w := writes{done: make(chan error, len(due))}
	for _, m := range due {
		if ctx.Err() != nil {
			break
		}
		if u, ok := c.step(ctx, now, m); ok {
			w.add(c, u)
		}
	}
	w.wait(ctx, c)
}

// step handles one due message and returns the OpCheck to write, if any.
func (c *Coordinator) step(ctx context.Context, now time.Time, m *store.Message) (store.Update, bool) {
	c.mu.Lock()
	busy := c.deciding[key{m.Topic, m.ID}] != nil
	c.mu.Unlock()
	if busy {
		return store.Update{}, false
	}
	next := store.Update{Op: store.OpCheck, Topic: m.Topic, ID: m.ID, Attempts: m.Checks + 1, Next: now.Add(c.cfg.Interval)}
	switch {
	case m.NextCheck.IsZero():
		// Stored without a NextCheck: give the producer its FirstCheck.
		next.Attempts, next.Next = m.Checks, c.NextCheck(now)
		return next, true
	case m.Checks >= c.cfg.MaxChecks:
		if _, err := c.decide(ctx, m.Topic, m.ID, Rollback, true, nil); err != nil && !decided(err) && ctx.Err() == nil {
			c.log.Warn("txn: final action", "topic", m.Topic, "msg_id", m.ID, "group", m.Group,
				"action", c.cfg.FinalAction.String(), "err", err)
		}
		return store.Update{}, false
	}
	a := c.check(ctx, m)
	if a == Commit || a == Rollback {
		_, err := c.decide(ctx, m.Topic, m.ID, a, false, nil)
		if err == nil || decided(err) {
			return store.Update{}, false
		}
		if ctx.Err() != nil {
			return store.Update{}, false // shutting down: checked again after restart
		}
		c.log.Warn("txn: applying a check answer", "topic", m.Topic, "msg_id", m.ID, "group", m.Group,
			"action", a.String(), "err", err)
	}
	return next, true
}

// check asks the Checker about m within Config.CheckTimeout. An error or an
// answer out of range is Unknown.
func (c *Coordinator) check(ctx context.Context, m *store.Message) Action {
	cctx, cancel := context.WithTimeout(ctx, c.cfg.CheckTimeout)
	defer cancel()
	a, err := c.chk.Check(cctx, m)
	if err != nil {
		c.log.Debug("txn: check failed", "topic", m.Topic, "msg_id", m.ID, "group", m.Group,
			"checks", m.Checks+1, "err", err)
		return Unknown
	}
	if a > Rollback {
		c.log.Warn("txn: checker answered an unknown action", "topic", m.Topic, "msg_id", m.ID,
			"group", m.Group, "action", a.String())
		return Unknown
	}
	c.log.Debug("txn: checked", "topic", m.Topic, "msg_id", m.ID, "group", m.Group,
		"checks", m.Checks+1, "action", a.String())
	return a
}

// decided reports whether err means that the message needs nothing more
// from a Tick: another decision came first, or it is gone.
func decided(err error) bool {
	return errors.Is(err, ErrConflict) || errors.Is(err, ErrNotFound)
}

// writes collects the OpChecks of one Tick, queued together so they share
// the Batcher's writes, and waits for them.
type writes struct {
	done chan error // capacity: the Tick's page, so callbacks never block
	n    int
}

func (w *writes) add(c *Coordinator, u store.Update) {
	if err := c.w.Update(u, func(err error) { w.done <- err }); err != nil {
		c.log.Warn("txn: queueing a check update", "topic", u.Topic, "msg_id", u.ID, "err", err)
		return
	}
	w.n++
}

func (w *writes) wait(ctx context.Context, c *Coordinator) {
	for ; w.n > 0; w.n-- {
		select {
		case err := <-w.done:
			if err != nil {
				c.log.Warn("txn: writing a check update", "err", err)
			}
		case <-ctx.Done():
			return
		}
	}
}
