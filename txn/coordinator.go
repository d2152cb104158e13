package txn

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/kitenats/kitenats/kqerr"
	"github.com/kitenats/kitenats/store"
)

// Checker asks a producer of the message's publishing group (m.Group) about
// a prepared message.
//
// It may answer at once (NATS request/reply: Commit, Rollback or Unknown),
// or send the question and return Unknown, letting the answer arrive later
// through Coordinator.Resolve (KiteQ's asynchronous TxAck). An error, or
// running out of ctx (bounded by Config.CheckTimeout), counts as Unknown.
// m is a copy the Checker may keep. Check may call Resolve, from any
// goroutine, even before it returns: the Coordinator holds no lock while it
// checks. Tick calls it for one message at a time, so it should return
// quickly (see the Caveats of the package documentation).
type Checker interface {
	Check(ctx context.Context, m *store.Message) (Action, error)
}

// Releaser makes a committed message deliverable: it computes the groups
// whose bindings match m, writes store.OpCommit with them (none: the store
// deletes m) and dispatches. m is the stored copy, still Prepared, which the
// Releaser may keep and change.
//
// Release must return nil only once the OpCommit is durable, and an error
// only when it was not written (a failed dispatch is not an error: the
// message is stored and the recover loop delivers it). It should dispatch
// what the store holds after the commit (reload m), as KiteQ does: on a
// store shared by several brokers, another broker may have rolled m back
// first, and then the OpCommit is a no-op and nothing must be delivered.
// Release must not call Resolve for m (it would wait for itself).
type Releaser interface {
	Release(ctx context.Context, m *store.Message) error
}

// Writer queues one store update and calls done, if not nil, exactly once
// with its outcome, unless Update itself fails. *store.Batcher satisfies it.
type Writer interface {
	Update(u store.Update, done func(error)) error
}

// Coordinator decides prepared (two-phase) messages: by Resolve (the
// producer's commit or rollback), by the answer of a check-back (Tick), or
// by the final action after Config.MaxChecks unanswered check-backs.
//
// All methods are safe for concurrent use. Run one Coordinator per store
// (per broker when the store is shared): the exclusion of concurrent
// decisions is in memory.
type Coordinator struct {
	cfg Config
	st  store.Store
	w   Writer
	chk Checker
	rel Releaser
	log *slog.Logger

	// mu guards deciding and outcomes. It is a leaf lock: it is never held
	// while calling the store, the Writer, the Checker, the Releaser or
	// the logger.
	mu sync.Mutex
	// deciding holds one entry per message whose decision is being
	// applied. Whoever puts the entry is the only one to decide that
	// message until it removes it: this is the "first decision wins" slot.
	deciding map[key]*decision
	// outcomes remembers the last Config.Remember outcomes, for messages
	// that are gone from the store.
	outcomes *recent
}

// decision is a decision being applied; done is closed when it ends.
type decision struct {
	done chan struct{}
}

// New returns a Coordinator over st, writing updates through w. It starts
// nothing: call Run, or Tick.
func New(cfg Config, st store.Store, w Writer, c Checker, r Releaser) (*Coordinator, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if st == nil || w == nil || c == nil || r == nil {
		return nil, errors.New("txn: New needs a store, a writer, a checker and a releaser")
	}
	cfg.setDefaults()
	return &Coordinator{
		cfg: cfg, st: st, w: w, chk: c, rel: r, log: cfg.Logger,
		deciding: make(map[key]*decision),
		outcomes: newRecent(cfg.Remember),
	}, nil
}

// NextCheck returns the NextCheck to store with a message prepared at now:
// now + Config.FirstCheck.
func (c *Coordinator) NextCheck(now time.Time) time.Time {
	return now.Add(c.cfg.FirstCheck)
}

// Resolve applies a producer's decision about (topic, id): commit hands the
// message to the Releaser, rollback deletes it (store.OpRollback). It returns
// once the decision is durable.
//
// Resolving a message already decided the same way is a no-op (nil), also
// while that decision is still being applied (Resolve then waits for it).
// Resolving it the other way is ErrConflict; a committed message that is no
// longer prepared counts as committed. An id the store does not hold is
// ErrConflict or nil when its outcome is remembered, else ErrNotFound. Any
// other error is a store or Releaser failure: nothing was decided, and the
// caller may retry.
//
// Resolve decides for any publishing group (the admin's call); a group's
// own decision goes through ResolveAs.
func (c *Coordinator) Resolve(ctx context.Context, topic, id string, commit bool) error {
	_, err := c.decide(ctx, topic, id, wantOf(commit), false, nil)
	return err
}

// ResolveAs is Resolve on behalf of group: it refuses, with ErrForbidden
// and changing nothing, a message whose publishing group (store.Message.Group)
// is not group, whether the message is still prepared or its outcome is
// remembered. An unknown id is ErrNotFound, as for Resolve.
func (c *Coordinator) ResolveAs(ctx context.Context, group, topic, id string, commit bool) error {
	_, err := c.decide(ctx, topic, id, wantOf(commit), false, &group)
	return err
}

func wantOf(commit bool) Action {
	if commit {
		return Commit
	}
	return Rollback
}

// decide applies want to (topic, id) unless it is already decided, and
// returns the outcome: want, or the other action with ErrConflict, or
// Unknown when nothing was decided (an error, or a final action that no
// longer applies). final marks the final action of a Tick. as, when not nil,
// is the only publishing group whose message may be decided (ResolveAs).
//
// Concurrent decisions of one message are serialised by the deciding slot:
// the first claims it, reads the message from the store and applies its
// decision; the others wait for it to end and then find the message no
// longer prepared. Hence the invariant: the Releaser is called for a message
// only while the store holds it prepared and its slot is held for a commit,
// and a rollback is written only under the same slot; so a message is never
// released before a commit decision, never released after a rollback, and
// released at most once per prepare.
func (c *Coordinator) decide(ctx context.Context, topic, id string, want Action, final bool, as *string) (Action, error) {
	k := key{topic, id}
	for {
		c.mu.Lock()
		if d := c.deciding[k]; d != nil {
			c.mu.Unlock()
			select {
			case <-d.done:
				continue // decided, or failed: look again
			case <-ctx.Done():
				return Unknown, fmt.Errorf("txn: resolve %s/%s: %w", topic, id, ctx.Err())
			}
		}
		c.deciding[k] = &decision{done: make(chan struct{})}
		c.mu.Unlock()
		got, err := c.applyClaimed(ctx, k, want, final, as)
		switch {
		case err != nil:
			return Unknown, err
		case got != Unknown && got != want:
			return got, kqerr.New(kqerr.Conflict, ErrConflict, "txn: %s %s/%s: already %s: %v", want, topic, id, past(got), ErrConflict)
		}
		return got, nil
	}
}

// applyClaimed applies want under the slot of k, which the caller has just
// claimed, and gives the slot up, recording the outcome, even if the
// Releaser panics.
func (c *Coordinator) applyClaimed(ctx context.Context, k key, want Action, final bool, as *string) (got Action, err error) {
	var group string // the message's publishing group, once read
	defer func() {
		c.mu.Lock()
		defer c.mu.Unlock()
		d := c.deciding[k]
		delete(c.deciding, k)
		if err == nil && got != Unknown {
			c.outcomes.add(k, outcome{action: got, group: group})
		}
		close(d.done)
	}()
	return c.apply(ctx, k, want, final, as, &group)
}

// forbidden is ResolveAs's refusal of another group's message.
func forbidden(want Action, k key) error {
	return kqerr.New(kqerr.Forbidden, ErrForbidden, "txn: %s %s/%s: %v", want, k.topic, k.id, ErrForbidden)
}

// apply reads the message and applies want to it if it is still prepared.
// It returns what the message's outcome is afterwards, and sets *group to
// the message's publishing group. A message of another group than *as (when
// as is not nil) is refused before anything else is looked at.
// caller must hold the deciding slot of k
func (c *Coordinator) apply(ctx context.Context, k key, want Action, final bool, as, group *string) (Action, error) {
	m, err := c.st.Get(ctx, k.topic, k.id)
	switch {
	case errors.Is(err, store.ErrNotFound):
		c.mu.Lock()
		got, ok := c.outcomes.get(k)
		c.mu.Unlock()
		if ok {
			if as != nil && got.group != *as {
				return Unknown, forbidden(want, k)
			}
			*group = got.group
			return got.action, nil
		}
		if final {
			return Unknown, nil
		}
		return Unknown, kqerr.New(kqerr.Conflict, ErrNotFound, "txn: %s %s/%s: %v", want, k.topic, k.id, ErrNotFound)
	case err != nil:
		return Unknown, fmt.Errorf("txn: %s %s/%s: %w", want, k.topic, k.id, err)
	case as != nil && m.Group != *as:
		return Unknown, forbidden(want, k)
	}
	*group = m.Group
	switch {
	case !m.Prepared:
		// Committed, by this Coordinator before a restart or because it was
		// never prepared: it is deliverable, so it counts as a commit.
		return Commit, nil
	case final && m.Checks < c.cfg.MaxChecks:
		return Unknown, nil // prepared again since the Tick read it
	case want == Commit:
		if err := c.rel.Release(ctx, m); err != nil {
			return Unknown, fmt.Errorf("txn: release %s/%s: %w", k.topic, k.id, err)
		}
	case final && c.cfg.FinalAction == FinalDeadLetter:
		if err := c.deadLetter(ctx, m); err != nil {
			return Unknown, err
		}
	default:
		u := store.Update{Op: store.OpRollback, Topic: m.Topic, ID: m.ID}
		if err := c.update(ctx, u); err != nil {
			return Unknown, err
		}
	}
	c.log.Debug("txn: decided", "topic", m.Topic, "msg_id", m.ID, "group", m.Group,
		"action", want.String(), "final", final, "checks", m.Checks)
	return want, nil
}

// deadLetter moves the prepared m to the dead letters of its publishing
// group, in one atomic Store.Write (see FinalDeadLetter). It bypasses the
// Writer on purpose: the two updates must not be split across batches, and
// a final action is rare.
func (c *Coordinator) deadLetter(ctx context.Context, m *store.Message) error {
	now := c.cfg.Now()
	b := &store.Batch{Now: now, Updates: []store.Update{
		{Op: store.OpCommit, Topic: m.Topic, ID: m.ID, Groups: []store.GroupState{{Group: m.Group, NextAttempt: now}}},
		{Op: store.OpDead, Topic: m.Topic, ID: m.ID, Group: m.Group,
			Reason: fmt.Sprintf("txn: no commit or rollback after %d checks", m.Checks)},
	}}
	if _, err := c.st.Write(ctx, b); err != nil {
		return fmt.Errorf("txn: dead-letter %s/%s: %w", m.Topic, m.ID, err)
	}
	return nil
}

// update writes u through the Writer and waits for it to be durable.
func (c *Coordinator) update(ctx context.Context, u store.Update) error {
	done := make(chan error, 1)
	if err := c.w.Update(u, func(err error) { done <- err }); err != nil {
		return fmt.Errorf("txn: %s %s/%s: %w", u.Op, u.Topic, u.ID, err)
	}
	select {
	case err := <-done:
		if err != nil {
			return fmt.Errorf("txn: %s %s/%s: %w", u.Op, u.Topic, u.ID, err)
		}
		return nil
	case <-ctx.Done():
		return fmt.Errorf("txn: %s %s/%s: %w", u.Op, u.Topic, u.ID, ctx.Err())
	}
}

// past returns "committed" or "rolled back".
func past(a Action) string {
	if a == Commit {
		return "committed"
	}
	return "rolled back"
}
