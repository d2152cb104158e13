package daemon

import (
	"context"
	"errors"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/kitenats/kitenats/bridge"
	"github.com/kitenats/kitenats/compat"
	"github.com/kitenats/kitenats/natsproto"
	"github.com/kitenats/kitenats/semantics"
	"github.com/kitenats/kitenats/store"
	"github.com/kitenats/kitenats/txn"
)

// natsTxCheck asks a NATS producer of the group about a prepared message
// (NATS-PROTOCOL.md §5): a request on $KQ.TXCHECK.<group>, when that
// subject has interest.
type natsTxCheck struct{ d *Daemon }

func (c natsTxCheck) Check(ctx context.Context, m *store.Message) (txn.Action, error) {
	answer, asked, err := natsproto.TxCheck(ctx, natsRequester{br: c.d.br, nc: c.d.nc}, m)
	switch {
	case err != nil:
		return txn.Unknown, err
	case !asked:
		return txn.Unknown, txn.ErrNoProducer
	}
	return txn.ParseAction(answer)
}

// kiteqTxCheck asks a KiteQ connection of the group; its answer arrives
// later as a TxAck. The KiteQ server is built after the coordinator, so
// the check reads it from the daemon when it asks; with -bind off there is
// no KiteQ producer.
type kiteqTxCheck struct{ d *Daemon }

func (c kiteqTxCheck) Check(_ context.Context, m *store.Message) (txn.Action, error) {
	if c.d.kiteq == nil {
		return txn.Unknown, txn.ErrNoProducer
	}
	err := c.d.kiteq.Check(m)
	if errors.Is(err, compat.ErrNoProducer) {
		return txn.Unknown, txn.ErrNoProducer
	}
	return txn.Unknown, err
}

// natsRequester is natsproto.Requester over the embedded server and the
// broker's inbound connection.
var _ natsproto.Requester = natsRequester{}

type natsRequester struct {
	br *bridge.Server
	nc *nats.Conn
}

func (r natsRequester) Interested(subject string) bool { return r.br.Interested(subject) }

func (r natsRequester) Request(ctx context.Context, subject string, hdr map[string][]string, body []byte) ([]byte, error) {
	reply, err := r.nc.RequestMsgWithContext(ctx, &nats.Msg{Subject: subject, Header: nats.Header(hdr), Data: body})
	if err != nil {
		return nil, err
	}
	return reply.Data, nil
}

// txReleaser is txn.Releaser over the broker. The coordinator is built
// before the broker (which takes it at construction), so it reaches the
// broker through the daemon; it releases only once run started them.
type txReleaser struct{ d *Daemon }

func (r txReleaser) Release(ctx context.Context, m *store.Message) error {
	return r.d.broker.Release(ctx, m)
}

// txAdapter is semantics.Transactions over the coordinator.
type txAdapter struct{ c *txn.Coordinator }

func (a txAdapter) NextCheck(now time.Time) time.Time { return a.c.NextCheck(now) }

func (a txAdapter) Resolve(ctx context.Context, topic, id string, commit bool) error {
	return a.c.Resolve(ctx, topic, id, commit)
}

func (a txAdapter) ResolveAs(ctx context.Context, group, topic, id string, commit bool) error {
	return a.c.ResolveAs(ctx, group, topic, id, commit)
}

func (a txAdapter) List(ctx context.Context, offset, limit int) (int, []semantics.PreparedTx, error) {
	ps, total, err := a.c.List(ctx, offset, limit)
	if err != nil {
		return 0, nil, err
	}
	items := make([]semantics.PreparedTx, len(ps))
	for i, p := range ps {
		items[i] = semantics.PreparedTx{Topic: p.Topic, ID: p.ID, MessageType: p.MessageType, Group: p.Group,
			Created: p.Created.Unix(), AgeSeconds: int64(p.Age / time.Second), Checks: p.Checks, NextCheck: p.NextCheck.Unix()}
	}
	return total, items, nil
}

// newCoordinator builds the two-phase-commit coordinator over the daemon's
// group-commit writer. It is called before the broker is built, which takes
// it (through txAdapter) in its Config. It asks NATS producers first, then
// KiteQ connections.
func (d *Daemon) newCoordinator() error {
	cfg := txn.DefaultConfig()
	cfg.Logger = d.log.With("component", "txn")
	if t := d.cfg.Tx; t.FirstCheck > 0 {
		cfg.FirstCheck = t.FirstCheck
	}
	if d.cfg.Tx.Interval > 0 {
		cfg.Interval = d.cfg.Tx.Interval
	}
	if d.cfg.Tx.MaxChecks > 0 {
		cfg.MaxChecks = d.cfg.Tx.MaxChecks
	}
	cfg.FinalAction = d.cfg.Tx.Final
	c, err := txn.New(cfg, d.st, d.w, txn.Checkers{natsTxCheck{d}, kiteqTxCheck{d}}, txReleaser{d})
	if err != nil {
		return err
	}
	d.tx = c
	return nil
}

var _ compat.Broker = kiteqBroker{}
