package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
)

// lifecycle runs the daemon's components: each is started in the order it
// was added and stopped in the reverse order, and the lifecycle owns the
// goroutine of each and waits for it. Each component gets its own context,
// cancelled when its turn to stop comes, so that stopping one never stops
// another early; a component whose Run returns before it is asked to stop
// ends the daemon (wait returns).
//
// It is NSQ's waitgroup-wrapper and exitFunc put in order: adding a
// component is one call to run, runReady or onStop.
type lifecycle struct {
	log    *slog.Logger
	stages []*stage
	exited chan *stage // a stage whose run returned by itself
}

type stage struct {
	name   string
	cancel context.CancelFunc // nil for an onStop stage
	done   chan struct{}      // closed when run returned
	err    error              // run's result, read after done
	told   bool               // err was returned by wait or runReady
	atStop func()             // an onStop stage's action

	mu       sync.Mutex
	stopping bool // asked to stop: its return is not an exit
}

func newLifecycle(log *slog.Logger) *lifecycle {
	return &lifecycle{log: log, exited: make(chan *stage, 1)}
}

// run starts fn in a goroutine the lifecycle owns; fn must return once its
// ctx ends.
func (l *lifecycle) run(name string, fn func(ctx context.Context) error) *stage {
	ctx, cancel := context.WithCancel(context.Background())
	s := &stage{name: name, cancel: cancel, done: make(chan struct{})}
	l.stages = append(l.stages, s)
	go func() {
		defer close(s.done)
		s.err = fn(ctx)
		s.mu.Lock()
		exit := !s.stopping
		s.mu.Unlock()
		if exit {
			select {
			case l.exited <- s:
			default: // another stage's exit is already ending the daemon
			}
		}
	}()
	return s
}

// runReady starts fn like run and waits until ready is closed, so that the
// stages after it start only once it serves. If fn returns first, runReady
// returns its error.
func (l *lifecycle) runReady(name string, fn func(ctx context.Context) error, ready <-chan struct{}) error {
	s := l.run(name, fn)
	select {
	case <-ready:
		return nil
	case <-s.done:
		<-l.exited // this stage's own exit: it is reported here instead
		s.told = true
		err := s.err
		if err == nil {
			err = errors.New("returned before it was ready")
		}
		return fmt.Errorf("%s stopped at start: %w", name, err)
	}
}

// onStop adds a stage with no goroutine: fn runs at its turn to stop.
func (l *lifecycle) onStop(name string, fn func()) {
	done := make(chan struct{})
	close(done)
	l.stages = append(l.stages, &stage{name: name, done: done, atStop: fn})
}

// wait returns when ctx ends (nil) or when a stage's run returned by itself
// (its error, or one saying it stopped).
func (l *lifecycle) wait(ctx context.Context) error {
	select {
	case <-ctx.Done():
		return nil
	case s := <-l.exited:
		s.told = true
		if s.err != nil {
			return fmt.Errorf("%s stopped: %w", s.name, s.err)
		}
		return fmt.Errorf("%s stopped by itself", s.name)
	}
}

// stop stops the stages in the reverse order of their start, each waited
// for before the next, and returns the errors they returned that wait or
// runReady did not already return.
func (l *lifecycle) stop() error {
	var errs []error
	for i := len(l.stages) - 1; i >= 0; i-- {
		s := l.stages[i]
		if s.atStop != nil {
			s.atStop()
			continue
		}
		s.mu.Lock()
		s.stopping = true
		s.mu.Unlock()
		s.cancel()
		<-s.done
		if s.err != nil && !s.told && !errors.Is(s.err, context.Canceled) {
			l.log.Error("stopped with an error", "component", s.name, "err", s.err)
			errs = append(errs, fmt.Errorf("%s: %w", s.name, s.err))
		}
		l.log.Debug("stopped", "component", s.name)
	}
	return errors.Join(errs...)
}
