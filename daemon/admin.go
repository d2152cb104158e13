package daemon

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/nats-io/nats.go"

	"github.com/kitenats/kitenats/store"
)

// adminSource lets the admin endpoints read the broker.
type adminSource struct{ d *Daemon }

// Stat is $KQ.ADMIN.STAT's reply, encoded.
func (a adminSource) Stat(ctx context.Context) (json.RawMessage, error) {
	st, err := a.d.broker.Stat(ctx)
	if err != nil {
		return nil, err
	}
	return json.Marshal(st)
}

// Bindings is every group's bindings, encoded.
func (a adminSource) Bindings() (json.RawMessage, error) { return json.Marshal(a.d.broker.Bindings()) }

// Health reports the broker's own NATS connections (without them it takes
// no publish and sends nothing) and a store that failed until a restart.
func (a adminSource) Health() error {
	if err := a.d.out.Err(); err != nil {
		return fmt.Errorf("broker's outbound connection: %w", err)
	}
	if st := a.d.nc.Status(); st != nats.CONNECTED {
		return fmt.Errorf("broker's inbound connection: %s", st)
	}
	if f, ok := a.d.st.(store.Failer); ok {
		if err := f.Failed(); err != nil {
			return fmt.Errorf("store (restart the broker to recover): %w", err)
		}
	}
	return nil
}
