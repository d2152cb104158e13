package semantics

import "time"

// warmedUp decides whether a consumer that authenticated at authAt with a
// warmup of warmup takes part in one choice at now (kiteq-protocol.md §8.1):
// rate = floor(elapsed seconds × 100 / warmup seconds); under 100 the
// consumer is included when a uniform draw r in [0, 99] is <= rate, so the
// chance rises from 1 % at connect to 100 % after warmup.
func warmedUp(authAt time.Time, warmup time.Duration, now time.Time, draw func(n int) int) bool {
	rate := warmupRate(authAt, warmup, now)
	if rate >= 100 {
		return true
	}
	return draw(100) <= rate
}

// warmupRate is the ramp's rate at now, from 0 at authAt to 100 once warmup
// has elapsed (100 without a warmup): floor(elapsed seconds × 100 / warmup
// seconds), capped at 100.
func warmupRate(authAt time.Time, warmup time.Duration, now time.Time) int {
	sec := int64(warmup / time.Second)
	if sec <= 0 {
		return 100
	}
	elapsed := max(int64(now.Sub(authAt)/time.Second), 0)
	return int(min(elapsed*100/sec, 100))
}
