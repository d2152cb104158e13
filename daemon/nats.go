package daemon

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/kitenats/kitenats/bridge"
	"github.com/kitenats/kitenats/config"
	"github.com/kitenats/kitenats/natsproto"
)

// natsTransport is natsproto.Transport over the broker's own NATS
// connections.
var _ natsproto.Transport = (*natsTransport)(nil)

type natsTransport struct {
	nc   *nats.Conn
	out  *bridge.Publisher
	mu   sync.Mutex
	subs []*nats.Subscription
}

func (t *natsTransport) Publish(m *natsproto.Msg) error {
	hdr := m.RawHeader
	if hdr == nil {
		hdr = natsproto.EncodeHeader(m.Header)
	}
	return t.out.Publish(m.Subject, m.Reply, hdr, m.Data)
}

func (t *natsTransport) Subscribe(subject, queue string, fn func(*natsproto.Msg)) (func() error, error) {
	h := func(m *nats.Msg) {
		fn(&natsproto.Msg{Subject: m.Subject, Reply: m.Reply, Header: m.Header, Data: m.Data})
	}
	var sub *nats.Subscription
	var err error
	if queue == "" {
		sub, err = t.nc.Subscribe(subject, h)
	} else {
		sub, err = t.nc.QueueSubscribe(subject, queue, h)
	}
	if err != nil {
		return nil, err
	}
	// A deep buffer: publishes are cheap to take, and what overflows is a
	// counted drop (STAT), never a blocked server.
	if err := sub.SetPendingLimits(1<<20, 1<<30); err != nil {
		return nil, err
	}
	t.mu.Lock()
	t.subs = append(t.subs, sub)
	t.mu.Unlock()
	return sub.Unsubscribe, nil
}

func (t *natsTransport) Flush() error {
	if err := t.out.Flush(5 * time.Second); err != nil {
		return err
	}
	return t.nc.Flush()
}

// syncFlushTimeout bounds Sync's round trip to the server.
const syncFlushTimeout = 10 * time.Second

// Sync returns once every message the server had routed to the broker's
// subscriptions before the call has been handled. The server queues what it
// routes to a connection in order, and answers a PING in that same stream:
// once the PONG is back (Flush), nats.go has put every earlier message in its
// subscription's queue. nats.go's Barrier then runs after each subscription
// has handled what its queue held.
func (t *natsTransport) Sync(ctx context.Context) error {
	fctx, cancel := context.WithTimeout(ctx, syncFlushTimeout)
	defer cancel()
	if err := t.nc.FlushWithContext(fctx); err != nil {
		return fmt.Errorf("sync: flush: %w", err)
	}
	done := make(chan struct{})
	if err := t.nc.Barrier(func() { close(done) }); err != nil {
		return fmt.Errorf("sync: barrier: %w", err)
	}
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("sync: %w", ctx.Err())
	}
}

// Dropped counts messages the server dropped before the broker took them.
func (t *natsTransport) Dropped() int64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	var n int64
	for _, s := range t.subs {
		if d, err := s.Dropped(); err == nil {
			n += int64(d)
		}
	}
	return n
}

// authorizer builds the NATS auth hook from the configured secrets: nil
// (open mode, like KiteQ) when there are none. A client whose TLS
// certificate was verified is the user its certificate names (certUser),
// and the certificate stands for the secret (NATS-PROTOCOL.md §7).
func authorizer(cfg config.Config) bridge.Authorizer {
	if len(cfg.Secrets) == 0 {
		return nil
	}
	return bridge.AuthorizerFunc(func(user, pass string, info bridge.ConnInfo) (*bridge.Permissions, error) {
		byCert := info.Certificate != nil
		if byCert {
			var err error
			if user, err = certUser(info.Certificate, user); err != nil {
				return nil, err
			}
		}
		if user == "admin" {
			if !byCert && pass != cfg.AdminSecret {
				return nil, errors.New("bad admin secret")
			}
			return bridgePermissions(natsproto.AdminPermissions()), nil
		}
		secret, ok := cfg.Secrets[user]
		switch {
		case !ok && byCert:
			return nil, fmt.Errorf("the client certificate names %q, which is not a configured group", user)
		case !byCert && (!ok || secret != pass):
			return nil, fmt.Errorf("unknown group or wrong secret for %q", user)
		}
		return bridgePermissions(natsproto.GroupPermissions(user)), nil
	})
}

// bridgePermissions is p, the NATS adapter's permission template
// (NATS-PROTOCOL.md §7), as the embedded server takes it.
func bridgePermissions(p natsproto.Permissions) *bridge.Permissions {
	return &bridge.Permissions{Publish: p.Publish, Subscribe: p.Subscribe, AllowResponses: p.AllowResponses}
}
