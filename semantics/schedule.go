package semantics

import (
	"fmt"
	"time"
)

// Window is one step of the redelivery schedule: after a failed attempt
// number n with Min <= n < Max (Max 0: no upper bound), wait Delay.
type Window struct {
	Min, Max int
	Delay    time.Duration
}

// KiteQWindows is KiteQ's schedule (kiteq-protocol.md §5.4): three
// immediate attempts, then 5/10/20/40/80/160 s as attempts accumulate.
var KiteQWindows = []Window{
	{Min: 0, Max: 3, Delay: 0},
	{Min: 4, Max: 10, Delay: 5 * time.Second},
	{Min: 10, Max: 20, Delay: 10 * time.Second},
	{Min: 20, Max: 30, Delay: 20 * time.Second},
	{Min: 30, Max: 40, Delay: 40 * time.Second},
	{Min: 40, Max: 50, Delay: 80 * time.Second},
	{Min: 50, Max: 0, Delay: 160 * time.Second},
}

// Schedule maps a failed attempt count to the wait before the next attempt.
//
// Unlike the original (§12 items 8 and 9) the count is persisted after every
// attempt, the wait is exact rather than rounded up to a 10 s in-flight
// registry and a recover scan, and deferrals by the watermark limiter do not
// count as attempts.
type Schedule struct{ windows []Window }

// NewSchedule validates windows: ascending, non-overlapping, delays >= 0.
func NewSchedule(windows []Window) (Schedule, error) {
	if len(windows) == 0 {
		return Schedule{}, fmt.Errorf("semantics: empty redelivery schedule")
	}
	for i, w := range windows {
		if w.Delay < 0 || w.Min < 0 || (w.Max != 0 && w.Max <= w.Min) {
			return Schedule{}, fmt.Errorf("semantics: bad redelivery window %+v", w)
		}
		if i > 0 && w.Min < windows[i-1].Min {
			return Schedule{}, fmt.Errorf("semantics: redelivery windows out of order at %+v", w)
		}
	}
	return Schedule{windows: append([]Window(nil), windows...)}, nil
}

// Delay returns the wait after the failed attempt number attempts: the
// first window's delay, replaced by that of the last window containing
// attempts (KiteQ's rule, so 3 falls in no window and waits 0).
func (s Schedule) Delay(attempts int) time.Duration {
	if len(s.windows) == 0 {
		return 0
	}
	d := s.windows[0].Delay
	for _, w := range s.windows {
		if attempts >= w.Min && (w.Max == 0 || attempts < w.Max) {
			d = w.Delay
		}
	}
	return d
}
