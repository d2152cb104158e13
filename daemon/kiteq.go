package daemon

import (
	"context"
	"log/slog"
	"time"

	"github.com/kitenats/kitenats/compat"
	"github.com/kitenats/kitenats/config"
	"github.com/kitenats/kitenats/semantics"
	"github.com/kitenats/kitenats/store"
	"github.com/kitenats/kitenats/txn"
)

// newKiteQServer builds the KiteQ TCP adapter on cfg.Bind over broker b,
// TLS only when lt is set, with cfg.Secrets as group secrets (none: open mode) and cfg.MaxPayload as
// the decompressed body limit, so KiteQ and NATS publishes share one size
// limit. It opens the listener and starts nothing: the caller runs it with
// Run(ctx), which returns once every connection is closed. Stop it before
// the broker (ARCHITECTURE.md A.3), so that its connections leave their
// groups while the broker still runs.
func newKiteQServer(cfg config.Config, lt *listenerTLS, b *semantics.Broker, tx *txn.Coordinator, log *slog.Logger) (*compat.Server, error) {
	ccfg := compat.Config{
		Addr:            cfg.Bind,
		Secrets:         cfg.Secrets,
		MaxBody:         cfg.MaxPayload,
		MaxConns:        cfg.KiteQMaxConnections,
		MaxConnsPerHost: cfg.KiteQMaxConnectionsPerHost,
		Logger:          log.With("component", "kiteq"),
	}
	if lt != nil {
		ccfg.TLS = lt.config()
	}
	return compat.New(ccfg, kiteqBroker{b: b, tx: tx, log: log.With("component", "kiteq")})
}

// kiteqBroker is compat.Broker over the semantics broker.
type kiteqBroker struct {
	b   *semantics.Broker
	tx  *txn.Coordinator
	log *slog.Logger
}

// ResolveTx applies a producer's TxAck on a connection of group: only to a
// message group published.
func (k kiteqBroker) ResolveTx(ctx context.Context, group, topic, id string, commit bool) error {
	return k.tx.ResolveAs(ctx, group, topic, id, commit)
}

func (k kiteqBroker) Publish(m *store.Message, mode compat.Mode, done func(compat.Result, error)) {
	p := &semantics.Publication{Message: m, Fly: mode == compat.ModeFly, Prepare: mode == compat.ModePrepare}
	m.Prepared = p.Prepare
	k.b.Publish(p, func(ack semantics.PubAck, err error) {
		if err != nil {
			done(compat.Result{}, err)
			return
		}
		done(compat.Result{Duplicate: ack.Duplicate, Seq: ack.Seq, Groups: ack.Groups}, nil)
	})
}

// Join makes a KiteQ connection a consumer of its group. Past the limit of
// consumers per group (maxConsumersPerGroup) the connection is not a
// delivery target: its handshake still succeeds, so that it publishes and
// answers transaction checks as before, because kiteq-client-go gives up on
// a broker for good when its ConnMeta is refused (kiteq-protocol.md §3.1).
// The refusal is counted (STAT's limitRefusals.consumersPerGroup) and
// logged.
func (k kiteqBroker) Join(group, key string, warmup time.Duration, ep compat.Endpoint) string {
	id, err := k.b.Join(semantics.ConsumerSpec{Group: group, Key: key, Warmup: warmup, Endpoint: kiteqEndpoint{ep}})
	if err != nil {
		k.log.Warn("KiteQ connection joined as a publisher only: it gets no deliveries", "group", group, "remote", key, "err", err)
		return ""
	}
	return id
}

func (k kiteqBroker) Leave(group, consumerID string) { k.b.Leave(group, consumerID) }

func (k kiteqBroker) Ack(a compat.Ack, done func(error)) {
	kind := semantics.AckNak
	if a.OK {
		kind = semantics.AckOK
	}
	k.b.Ack(a.Group, a.Consumer, a.Delivery, semantics.Ack{Kind: kind}, done)
}

// kiteqEndpoint is semantics.Endpoint over a KiteQ connection.
type kiteqEndpoint struct{ ep compat.Endpoint }

func (e kiteqEndpoint) Deliver(d *semantics.Delivery) error {
	return e.ep.Deliver(compat.Delivery{ID: d.ID, Consumer: d.Consumer, Attempt: d.Attempt, Message: d.Message})
}

// Full makes the connection's delivery window a semantics.Throttler.
func (e kiteqEndpoint) Full() bool { return e.ep.Full() }
