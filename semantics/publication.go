package semantics

import (
	"time"

	"github.com/kitenats/kitenats/store"
)

// Limits of a message (kiteq-protocol.md §4.2): an adapter that builds a
// message uses them as its defaults and bounds.
const (
	MaxDeliverLimit = 100
	MaxExpiry       = 7 * 24 * time.Hour
)

// MaxWarmup is the longest warmup ramp a consumer gets: a longer one (a
// KiteQ ConnMeta may say up to 2^31-1 seconds) is clamped to it, and the
// NATS BIND refuses more than MaxWarmup's seconds.
const MaxWarmup = 24 * time.Hour

// Publication is a validated publish: the message to store and how.
type Publication struct {
	Message *store.Message
	Fly     bool // deliver without persisting
	Prepare bool // two-phase: store, deliver nothing until commit
	// NewID is set when the broker made the message id (NewMessageID): no
	// publish before this one can have used it, so the save cannot be a
	// duplicate.
	NewID bool
}

// ValidMessageID reports whether id is exactly 32 hex digits (any case).
func ValidMessageID(id string) bool {
	if len(id) != 32 {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F') {
			return false
		}
	}
	return true
}
