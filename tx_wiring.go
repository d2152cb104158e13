package main

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

// txChecker asks producers about prepared messages (NATS-PROTOCOL.md §5):
// NATS producers when $KQ.TXCHECK.<group> has interest, else a KiteQ
// connection of the group, whose answer arrives later as a TxAck.
type txChecker struct{ d *daemon }

func (c txChecker) Check(ctx context.Context, m *store.Message) (txn.Action, error) {
	answer, asked, err := natsproto.TxCheck(ctx, natsRequester{br: c.d.br, nc: c.d.nc}, m)
	if err != nil {
		return txn.Unknown, err
	}
	if asked {
		return txn.ParseAction(answer)
	}
	if c.d.kiteq != nil {
		if err := c.d.kiteq.Check(m); err != nil {
			return txn.Unknown, err
		}
		return txn.Unknown, nil // the producer answers with a TxAck
	}
	return txn.Unknown, errors.New("no producer of the group is connected")
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
type txReleaser struct{ d *daemon }

func (r txReleaser) Release(ctx context.Context, m *store.Message) error {
	return r.d.broker.Release(ctx, m)
}

// txAdapter is semantics.Transactions over the coordinator.
type txAdapter struct{ c *txn.Coordinator }

func (a txAdapter) NextCheck(now time.Time) time.Time { return a.c.NextCheck(now) }

func (a txAdapter) Resolve(ctx context.Context, topic, id string, commit bool) error {
	return a.c.Resolve(ctx, topic, id, commit)
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
// it (through txAdapter) in its Config.
func (d *daemon) newCoordinator() error {
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
	if d.cfg.Tx.Final != "" {
		if err := cfg.FinalAction.UnmarshalText([]byte(d.cfg.Tx.Final)); err != nil {
			return err
		}
	}
	c, err := txn.New(cfg, d.st, d.w, txChecker{d}, txReleaser{d})
	if err != nil {
		return err
	}
	d.tx = c
	return nil
}

var _ compat.Broker = kiteqBroker{}
