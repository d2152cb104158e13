package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/kitenats/kitenats/admin"
	"github.com/kitenats/kitenats/bridge"
	"github.com/kitenats/kitenats/compat"
	"github.com/kitenats/kitenats/natsproto"
	"github.com/kitenats/kitenats/registry"
	"github.com/kitenats/kitenats/semantics"
	"github.com/kitenats/kitenats/store"
	"github.com/kitenats/kitenats/txn"
)

// daemon is one wired broker: store, embedded NATS server, semantics.
type daemon struct {
	cfg    Config
	log    *slog.Logger
	st     store.Store
	br     *bridge.Server
	nc     *nats.Conn        // subscriptions: publishes, acks, API calls
	out    *bridge.Publisher // what the broker sends
	tr     *natsTransport
	nats   *natsproto.Server // the NATS adapter: the broker's Intake and Tap
	w      *store.Batcher    // group commit, shared by the broker and the coordinator
	broker *semantics.Broker
	admin  *admin.Server  // nil when -pport is -1
	kiteq  *compat.Server // nil when -bind is off
	tx     *txn.Coordinator
	reg    registry.Registry
	watch  *bindingWatch // registry bindings; nil without a registry
	adv    string        // address advertised in the registry
}

// newDaemon opens the store, starts the embedded NATS server and builds the
// broker. It starts no goroutine of ours: call run.
func newDaemon(cfg Config, log *slog.Logger) (_ *daemon, err error) {
	d := &daemon{cfg: cfg, log: log}
	defer func() {
		if err != nil {
			d.close()
		}
	}()
	if d.st, err = openStore(cfg.DB, log); err != nil {
		return nil, err
	}
	host, port, _ := splitHostPort(cfg.NATS)
	bcfg := bridge.Config{
		Host: host, Port: port, MaxPayload: int32(cfg.MaxPayload),
		Authorizer: authorizer(cfg), Logger: log.With("component", "nats"),
	}
	if port == 0 {
		bcfg.Port = -1
	}
	if d.br, err = bridge.New(bcfg); err != nil {
		return nil, fmt.Errorf("NATS listener (-nats %s): %w", cfg.NATS, err)
	}
	if err = d.br.Start(); err != nil {
		return nil, fmt.Errorf("NATS listener (-nats %s): %w", cfg.NATS, err)
	}
	// The broker's own connection dials the NATS listener over loopback
	// (bridge.ConnectLoopback says why); a listener on an address loopback
	// does not reach gets an in-process one.
	d.nc, err = d.br.ConnectLoopback("kitenats-broker")
	if errors.Is(err, bridge.ErrNotLoopback) {
		log.Info("the broker's own NATS connection is in-process: the NATS listener is not on a loopback address", "nats", d.br.Addr().String())
		d.nc, err = d.br.Connect("kitenats-broker")
	}
	if err != nil {
		return nil, err
	}
	// Outbound traffic (replies, deliveries) gets its own connection, so
	// that its flushes never hold up the reader of publishes and acks; it
	// writes the client protocol itself, with pre-encoded headers.
	if d.out, err = d.br.ConnectPublisher("kitenats-broker-out"); err != nil {
		return nil, err
	}
	d.tr = &natsTransport{nc: d.nc, out: d.out}
	d.nats = natsproto.New(d.tr, d.br)
	keeper, initial, err := d.bindings()
	if err != nil {
		return nil, err
	}
	// One group-commit writer for the broker and the transaction
	// coordinator, so that commits and acks share batches; run starts it
	// before the broker and stops it after.
	d.w = store.NewBatcher(d.st, store.BatcherConfig{DedupWindow: cfg.DedupWindow})
	// The coordinator comes first: the broker takes it at construction.
	// It reaches the broker (to release commits) through the daemon.
	if err = d.newCoordinator(); err != nil {
		return nil, err
	}
	d.broker, err = semantics.New(semantics.Config{
		BrokerID:     cfg.BrokerID,
		Topics:       cfg.Topics,
		AckWait:      cfg.AckWait,
		MaxInflight:  cfg.MaxInflight,
		AcceptRate:   cfg.AcceptRate,
		TickInterval: cfg.Recover,
		// The broker refuses what the server would refuse anyway, so that
		// KiteQ publishes get the same 413 as NATS ones.
		MaxMessageBytes: cfg.MaxPayload,
		Transactions:    txAdapter{d.tx},
		Intake:          d.nats,
		Tap:             d.nats,
		Logger:          log.With("component", "semantics"),
	}, d.st, d.w, keeper, initial)
	if err != nil {
		return nil, err
	}
	if cfg.Bind != "off" {
		if d.kiteq, err = newKiteQServer(cfg, d.broker, d.tx, log); err != nil {
			return nil, fmt.Errorf("KiteQ listener (-bind %s): %w", cfg.Bind, err)
		}
		d.adv = withBoundPort(d.adv, d.kiteq.Addr())
	}
	if cfg.AdminPort > 0 {
		addr := net.JoinHostPort(host, strconv.Itoa(cfg.AdminPort))
		if d.admin, err = admin.New(admin.Config{Addr: addr, Logger: log}, adminSource{d}); err != nil {
			return nil, fmt.Errorf("admin HTTP listener (-pport %d): %w", cfg.AdminPort, err)
		}
	}
	return d, nil
}

// bindings returns where BIND keeps bindings and the bindings known at
// start: the registry's when one is configured, else the store's.
func (d *daemon) bindings() (semantics.BindingKeeper, map[string][]registry.Binding, error) {
	if d.cfg.Registry == "" {
		return bindingKeeper(d.st)
	}
	ctx, cancel := context.WithTimeout(context.Background(), registryWaitInitial)
	defer cancel()
	var err error
	if d.reg, err = openRegistry(ctx, d.cfg.Registry, d.log); err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			err = fmt.Errorf("%w (nothing within %s: is the registry reachable?)", err, registryWaitInitial)
		}
		return nil, nil, err
	}
	if d.cfg.Bind != "off" {
		if d.adv, err = advertisedAddr(d.cfg); err != nil {
			return nil, nil, err
		}
	}
	w, initial, err := watchTopics(context.Background(), d.reg, d.cfg.Topics, d.log)
	if err != nil {
		return nil, nil, err
	}
	d.watch = w
	return registryKeeper{d.reg}, initial, nil
}

// adminSource lets the admin endpoints read the broker.
type adminSource struct{ d *daemon }

// Stat is $KQ.API.STAT's reply, encoded.
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

// run serves until ctx ends, then shuts down in order (ARCHITECTURE.md
// A.3): withdraw the registry advertisement, stop the KiteQ listener and
// its sessions, let the broker stop taking publishes and drain deliveries,
// then close the NATS server, the store and the registry.
func (d *daemon) run(ctx context.Context) error {
	ectx, stopEvents := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	if d.watch != nil {
		wg.Add(1)
		go func() { defer wg.Done(); d.watch.run(d.broker) }()
	}
	kctx, stopKiteQ := context.WithCancel(context.Background())
	kdone := make(chan struct{})
	if d.kiteq != nil {
		go func() {
			defer close(kdone)
			if err := d.kiteq.Run(kctx); err != nil {
				d.log.Error("KiteQ adapter stopped", "err", err)
			}
		}()
	} else {
		close(kdone)
	}
	// The writer outlives the broker and the coordinator: it is stopped
	// once both returned, and writes what they queued first.
	wctx, stopWriter := context.WithCancel(context.Background())
	wdone := make(chan struct{})
	go func() { defer close(wdone); _ = d.w.Run(wctx) }()
	bctx, stopBroker := context.WithCancel(context.Background())
	bdone := make(chan error, 1)
	go func() { bdone <- d.broker.Run(bctx) }()
	tctx, stopTx := context.WithCancel(context.Background())
	tdone := make(chan struct{})
	go func() { defer close(tdone); _ = d.tx.Run(tctx) }()
	select {
	case <-d.broker.Ready():
	case err := <-bdone:
		stopTx()
		<-tdone
		stopBroker()
		stopWriter()
		<-wdone
		stopKiteQ()
		<-kdone
		stopEvents()
		if d.reg != nil {
			_ = d.reg.Close() // ends the binding watches
		}
		wg.Wait()
		d.close()
		return fmt.Errorf("broker stopped at start: %w", err)
	}
	if d.reg != nil && d.adv != "" {
		if err := d.reg.PublishServer(ctx, d.adv, d.cfg.Topics); err != nil {
			d.log.Error("registry: advertising the broker", "addr", d.adv, "err", err)
		}
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		err := d.br.Events(ectx, func(e bridge.Event) {
			if e.Kind == bridge.Disconnect {
				d.broker.ConnClosed(e.ConnID)
			}
		})
		if err != nil {
			d.log.Error("connection events stopped", "err", err)
		}
	}()
	if d.admin != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := d.admin.Run(ectx); err != nil {
				d.log.Error("admin HTTP stopped", "err", err)
			}
		}()
	}
	d.logListeners()
	d.log.Info("kitenats serving", "store", redactURI(d.cfg.DB), "broker", d.broker.ID())
	var err error
	select {
	case <-ctx.Done():
	case err = <-bdone:
		bdone <- err
	}
	if d.reg != nil && d.adv != "" {
		uctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		if uerr := d.reg.UnpublishServer(uctx, d.adv, d.cfg.Topics); uerr != nil {
			d.log.Warn("registry: withdrawing the broker", "err", uerr)
		}
		cancel()
	}
	stopKiteQ()
	<-kdone
	stopTx()
	<-tdone
	stopBroker()
	err = <-bdone
	stopWriter()
	<-wdone
	stopEvents()
	if d.reg != nil {
		_ = d.reg.Close() // ends the binding watches
	}
	wg.Wait()
	d.close()
	return err
}

// logListeners logs one line per listener with the address it actually
// bound (the port obtained for :0), and says which ones are off.
func (d *daemon) logListeners() {
	d.log.Info("listening: NATS clients", "addr", d.br.Addr().String(), "url", d.br.ClientURL())
	if d.kiteq != nil {
		d.log.Info("listening: KiteQ TCP", "addr", d.kiteq.Addr().String())
	} else {
		d.log.Info("KiteQ TCP off (-bind off)")
	}
	if d.admin != nil {
		addr := d.admin.Addr().String()
		d.log.Info("listening: admin HTTP", "addr", addr, "url", "http://"+addr)
	} else {
		d.log.Info("admin HTTP off (-pport -1)")
	}
}

// close releases what newDaemon opened, whatever it got to, in the reverse
// order of opening: the admin and KiteQ listeners, the registry session,
// the broker's connections, the NATS server, the store. Idempotent.
func (d *daemon) close() {
	if d.admin != nil {
		_ = d.admin.Close()
	}
	if d.kiteq != nil {
		_ = d.kiteq.Close()
	}
	if d.reg != nil {
		_ = d.reg.Close()
	}
	if d.out != nil {
		_ = d.out.Close()
	}
	if d.nc != nil {
		d.nc.Close()
	}
	if d.br != nil {
		_ = d.br.Close()
	}
	if d.st != nil {
		if err := d.st.Close(); err != nil {
			d.log.Error("closing store", "err", err)
		}
	}
}

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

// storeKeeper keeps bindings in the store while no registry is configured.
type storeKeeper struct{ bs store.BindingStore }

func (k storeKeeper) KeepBindings(ctx context.Context, group string, bs []registry.Binding) error {
	var doc []byte
	if len(bs) > 0 {
		var err error
		if doc, err = registry.MarshalBindings(bs); err != nil {
			return err
		}
	}
	return k.bs.SaveBindings(ctx, group, doc)
}

// bindingKeeper returns the keeper for st and the bindings it holds.
func bindingKeeper(st store.Store) (semantics.BindingKeeper, map[string][]registry.Binding, error) {
	bs, ok := st.(store.BindingStore)
	if !ok {
		return nil, nil, errors.New("the store cannot keep bindings and no registry is configured")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	docs, err := bs.LoadBindings(ctx)
	if err != nil {
		return nil, nil, fmt.Errorf("loading bindings: %w", err)
	}
	initial := make(map[string][]registry.Binding, len(docs))
	for g, doc := range docs {
		if initial[g], err = registry.UnmarshalBindings(doc); err != nil {
			return nil, nil, fmt.Errorf("bindings of %s: %w", g, err)
		}
	}
	return storeKeeper{bs}, initial, nil
}

// authorizer builds the NATS auth hook from the configured secrets: nil
// (open mode, like KiteQ) when there are none.
func authorizer(cfg Config) bridge.Authorizer {
	if len(cfg.Secrets) == 0 {
		return nil
	}
	return bridge.AuthorizerFunc(func(user, pass string, _ bridge.ConnInfo) (*bridge.Permissions, error) {
		if user == "admin" {
			if pass != cfg.AdminSecret {
				return nil, errors.New("bad admin secret")
			}
			return bridgePermissions(natsproto.AdminPermissions()), nil
		}
		secret, ok := cfg.Secrets[user]
		if !ok || secret != pass {
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

// startDaemon builds a daemon from cfg and runs it in the background. It
// returns once the broker serves; stop shuts it down in order and returns
// run's error. The benchmark and the end-to-end tests use it.
func startDaemon(cfg Config, log *slog.Logger) (d *daemon, stop func() error, err error) {
	if d, err = newDaemon(cfg, log); err != nil {
		return nil, nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.run(ctx) }()
	select {
	case <-d.broker.Ready():
	case err := <-done:
		cancel()
		return nil, nil, err
	}
	return d, func() error { cancel(); return <-done }, nil
}
