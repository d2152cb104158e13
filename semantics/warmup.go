package semantics

import "time"

// warmedUp decides whether a consumer that authenticated at authAt with a
// warmup of warmup takes part in one choice at now (kiteq-protocol.md §8.1):
// rate = floor(elapsed seconds × 100 / warmup seconds); under 100 the
// consumer is included when a uniform draw r in [0, 99] is <= rate, so the
// chance rises from 1 % at connect to 100 % after warmup.
func warmedUp(authAt time.Time, warmup time.Duration, now time.Time, draw func(n int) int) bool {
	sec := int64(warmup / time.Second)
	if sec <= 0 {
		return true
	}
	elapsed := int64(now.Sub(authAt) / time.Second)
	if elapsed < 0 {
		elapsed = 0
	}
	rate := elapsed * 100 / sec
	if rate >= 100 {
		return true
	}
	return int64(draw(100)) <= rate
}
