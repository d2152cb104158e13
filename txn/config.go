package txn

import (
	"errors"
	"fmt"
	"log/slog"
	"time"
)

// Config configures a Coordinator. Zero fields take their defaults.
type Config struct {
	// FirstCheck is the delay after a prepare before its first check-back.
	// Default 5s.
	FirstCheck time.Duration
	// Interval is the delay between two check-backs of one message, and
	// after the last one before the final action. Default 10s (KiteQ's
	// recoverSeconds).
	Interval time.Duration
	// MaxChecks is how many check-backs a message gets; when it is due
	// again after that many, FinalAction applies. Default 10.
	MaxChecks int
	// FinalAction is what happens after MaxChecks: FinalRollback (the
	// default) or FinalDeadLetter.
	FinalAction FinalAction
	// Page is the most messages one Tick reads (Store.DueChecks limit).
	// Default 256.
	Page int
	// CheckTimeout bounds one Checker.Check call; a check that runs out of
	// it counts as unknown. Default 2s.
	CheckTimeout time.Duration
	// Remember is how many decided outcomes are kept in memory, so that
	// resolving a message the other way after it was deleted is still
	// ErrConflict rather than ErrNotFound. Default 65536 (a few MiB).
	Remember int
	// Now is the clock. Default time.Now.
	Now func() time.Time
	// Logger receives warnings and per-message debug lines. Default: discard.
	Logger *slog.Logger
}

// DefaultConfig returns the configuration with every default filled in.
func DefaultConfig() Config {
	var c Config
	c.setDefaults()
	return c
}

func (c *Config) setDefaults() {
	if c.FirstCheck == 0 {
		c.FirstCheck = 5 * time.Second
	}
	if c.Interval == 0 {
		c.Interval = 10 * time.Second
	}
	if c.MaxChecks == 0 {
		c.MaxChecks = 10
	}
	if c.Page == 0 {
		c.Page = 256
	}
	if c.CheckTimeout == 0 {
		c.CheckTimeout = 2 * time.Second
	}
	if c.Remember == 0 {
		c.Remember = 65536
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
}

// Validate reports the first invalid field. Zero values are valid: they
// stand for the defaults.
func (c Config) Validate() error {
	var errs []error
	if c.FirstCheck < 0 {
		errs = append(errs, fmt.Errorf("txn: FirstCheck %v is negative", c.FirstCheck))
	}
	if c.Interval < 0 {
		errs = append(errs, fmt.Errorf("txn: Interval %v is negative", c.Interval))
	}
	if c.MaxChecks < 0 {
		errs = append(errs, fmt.Errorf("txn: MaxChecks %d is negative", c.MaxChecks))
	}
	if c.FinalAction > FinalDeadLetter {
		errs = append(errs, fmt.Errorf("txn: unknown FinalAction %d", uint8(c.FinalAction)))
	}
	if c.Page < 0 {
		errs = append(errs, fmt.Errorf("txn: Page %d is negative", c.Page))
	}
	if c.CheckTimeout < 0 {
		errs = append(errs, fmt.Errorf("txn: CheckTimeout %v is negative", c.CheckTimeout))
	}
	if c.Remember < 0 {
		errs = append(errs, fmt.Errorf("txn: Remember %d is negative", c.Remember))
	}
	return errors.Join(errs...)
}

// tickPeriod is how often Run ticks: a tenth of Interval, within
// [minTick, maxTick], so a due check waits at most a tenth of an interval.
func (c *Config) tickPeriod() time.Duration {
	return min(max(c.Interval/10, minTick), maxTick)
}

const (
	minTick = 100 * time.Millisecond
	maxTick = time.Second
)
