package txn

import (
	"context"
	"errors"

	"github.com/kitenats/kitenats/store"
)

// ErrNoProducer is what a Checker returns when it has no producer of the
// message's group to ask: no NATS producer answers the group's check
// subject, no KiteQ connection of the group is past its warmup. The check
// counts as Unknown and is tried again at the next interval.
var ErrNoProducer = errors.New("txn: no producer of the group is connected")

// Checkers asks each Checker in turn until one has a producer to ask, and
// returns that one's answer: the first that does not return ErrNoProducer.
// The daemon puts NATS producers first (they answer at once), then KiteQ
// connections (whose answer arrives later as a TxAck), as
// docs/NATS-PROTOCOL.md §5 says.
type Checkers []Checker

// Check implements Checker.
func (cs Checkers) Check(ctx context.Context, m *store.Message) (Action, error) {
	for _, c := range cs {
		a, err := c.Check(ctx, m)
		if !errors.Is(err, ErrNoProducer) {
			return a, err
		}
	}
	return Unknown, ErrNoProducer
}
