package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/kitenats/kitenats/admin"
	"github.com/kitenats/kitenats/bridge"
	"github.com/kitenats/kitenats/compat"
	"github.com/kitenats/kitenats/config"
	"github.com/kitenats/kitenats/natsproto"
	"github.com/kitenats/kitenats/registry"
	"github.com/kitenats/kitenats/semantics"
	"github.com/kitenats/kitenats/store"
	"github.com/kitenats/kitenats/txn"
)

// Daemon is one wired broker: store, embedded NATS server, semantics,
// transactions, the KiteQ adapter, the registry and the admin HTTP.
type Daemon struct {
	cfg    config.Config
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
	watch  *registry.TopicWatch // registry bindings; nil without a registry
	adv    string               // address advertised in the registry
	tls    *tlsSet              // the listeners' certificates; Reload re-reads them
	cl     *cluster             // routes and peers; nil without -cluster

	// metrics is what the broker's packages observe into, served by the
	// admin HTTP; nil when -pport is -1 (nothing is observed then).
	metrics *admin.Metrics
	// natsConns and natsOpened count the NATS clients connected now and
	// since start (the connection events), for /metrics.
	natsConns  atomic.Int64
	natsOpened atomic.Uint64

	// life bounds what outlives New but belongs to no component (the
	// registry's binding watches); Close ends it.
	life    context.Context
	endLife context.CancelFunc

	runOnce   sync.Once
	closeOnce sync.Once
}

// New opens everything the configuration names, under ctx: the store, the
// embedded NATS server and the broker's connections to it, the registry
// (and the served topics' bindings in it), the KiteQ and admin listeners.
// When ctx ends first (Ctrl-C during a hung ZooKeeper or MySQL connect),
// New releases what it opened and returns an error saying what it was
// waiting for. New starts no goroutine of ours: Run does.
func New(ctx context.Context, cfg config.Config, log *slog.Logger) (_ *Daemon, err error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	d := &Daemon{cfg: cfg, log: log}
	d.life, d.endLife = context.WithCancel(context.WithoutCancel(ctx))
	defer func() {
		if err != nil {
			_ = d.Close()
		}
	}()
	var fsync func(time.Duration)
	if cfg.AdminPort > 0 {
		d.metrics = admin.NewMetrics(admin.MetricsConfig{
			MaxTopics: cfg.MetricTopics, RedeliveryReasons: semantics.RedeliveryReasons,
		})
		fsync = d.metrics.Fsync
	}
	// The certificates first: a bad file is a config error, before any
	// store or listener is opened.
	if d.tls, err = loadTLS(cfg); err != nil {
		return nil, err
	}
	if d.st, err = openStore(ctx, cfg.DB, log, fsync); err != nil {
		return nil, err
	}
	host, port, _ := config.SplitHostPort(cfg.NATS)
	bcfg := bridge.Config{
		Host: host, Port: port, MaxPayload: int32(cfg.MaxPayload),
		MaxConnections: cfg.MaxConnections, MaxPending: cfg.MaxPending,
		MaxConnectionsPerHost: cfg.MaxConnectionsPerHost, PingInterval: cfg.PingInterval,
		Authorizer: authorizer(cfg), Logger: log.With("component", "nats"),
	}
	if d.tls.nats != nil {
		bcfg.TLS, bcfg.TLSVerifyClients = d.tls.nats.config(), cfg.TLS.VerifyClients
	}
	if port == 0 {
		bcfg.Port = -1
	}
	// The registry before the NATS server: with a cluster, the routes it
	// lists are the server's seeds.
	if cfg.Registry != "" {
		if d.reg, err = openRegistry(ctx, cfg.Registry, log); err != nil {
			return nil, err
		}
	}
	routeURL, err := clusterBridgeConfig(cfg, &bcfg)
	if err != nil {
		return nil, err
	}
	if reg, ok := d.reg.(routeRegistry); ok && routeURL != "" {
		bcfg.Routes = append(slices.Clone(bcfg.Routes), registrySeeds(ctx, cfg, reg, routeURL, log)...)
	}
	listeners := "NATS listener (-nats " + cfg.NATS + ")"
	if cfg.Cluster.Listen != "" {
		listeners += " or route listener (-cluster " + cfg.Cluster.Listen + ")"
	}
	if d.br, err = bridge.New(bcfg); err != nil {
		return nil, fmt.Errorf("%s: %w", listeners, err)
	}
	if err = d.br.Start(); err != nil {
		return nil, fmt.Errorf("%s: %w", listeners, err)
	}
	if cfg.Cluster.Listen != "" {
		d.cl = newCluster(cfg, d.br, routeURL, log)
	}
	if err = d.connectBroker(); err != nil {
		return nil, err
	}
	keeper, initial, err := d.bindings(ctx)
	if err != nil {
		return nil, err
	}
	// One group-commit writer for the broker and the transaction
	// coordinator, so that commits and acks share batches.
	wcfg := store.BatcherConfig{DedupWindow: cfg.DedupWindow}
	var observer semantics.Observer // a nil *admin.Metrics would not be a nil Observer
	if d.metrics != nil {
		wcfg.Observe = d.metrics.StoreWrite
		observer = d.metrics
	}
	d.w = store.NewBatcher(d.st, wcfg)
	// The coordinator comes first: the broker takes it at construction.
	// It reaches the broker (to release commits) through the daemon.
	if err = d.newCoordinator(); err != nil {
		return nil, err
	}
	var clusterStat func() *semantics.ClusterStat
	if d.cl != nil {
		clusterStat = d.cl.stat
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
		Observer:        observer,
		Limits: semantics.Limits{
			BindingsPerGroup: cfg.MaxBindingsPerGroup, BindingsPerTopic: cfg.MaxBindingsPerTopic,
			ConsumersPerGroup: cfg.MaxConsumersPerGroup, ConsumersPerConn: cfg.MaxConsumersPerConnection,
		},
		Cluster: clusterStat,
		Logger:  log.With("component", "semantics"),
	}, d.st, d.w, keeper, initial)
	if err != nil {
		return nil, err
	}
	if cfg.Bind != "off" {
		if d.kiteq, err = newKiteQServer(cfg, d.tls.kiteq, d.broker, d.tx, log); err != nil {
			return nil, fmt.Errorf("KiteQ listener (-bind %s): %w", cfg.Bind, err)
		}
		d.adv = withBoundPort(d.adv, d.kiteq.Addr())
	}
	if cfg.AdminPort > 0 {
		addr := net.JoinHostPort(host, strconv.Itoa(cfg.AdminPort))
		acfg := admin.Config{Addr: addr, Metrics: d.metrics, Logger: log, AdminSecret: dashboardSecret(cfg)}
		if d.tls.admin != nil {
			acfg.TLS = d.tls.admin.config()
		}
		if d.admin, err = admin.New(acfg, adminSource{d}); err != nil {
			return nil, fmt.Errorf("admin HTTP listener (-pport %d): %w", cfg.AdminPort, err)
		}
	}
	return d, nil
}

// connectBroker opens the broker's own two connections to the embedded
// server: one that subscribes (publishes, acks, API calls) and one that
// sends (replies, deliveries), so that the sender's flushes never hold up
// the reader.
func (d *Daemon) connectBroker() (err error) {
	// The reader dials the NATS listener over loopback (bridge.ConnectLoopback
	// says why); a listener on an address loopback does not reach gets an
	// in-process one.
	d.nc, err = d.br.ConnectLoopback("kitenats-broker")
	if errors.Is(err, bridge.ErrNotLoopback) {
		d.log.Info("the broker's own NATS connection is in-process: the NATS listener is not on a loopback address", "nats", d.br.Addr().String())
		d.nc, err = d.br.Connect("kitenats-broker")
	}
	if err != nil {
		return err
	}
	// The sender writes the client protocol itself, with pre-encoded headers.
	if d.out, err = d.br.ConnectPublisher("kitenats-broker-out"); err != nil {
		return err
	}
	d.tr = &natsTransport{nc: d.nc, out: d.out}
	d.nats = natsproto.New(d.tr, d.br, natsproto.Config{
		APIWorkers: d.cfg.APIWorkers, APIQueue: d.cfg.APIQueuePerGroup,
		MaxBindingsPerRequest: d.cfg.MaxBindingsPerRequest, MaxRequestBytes: d.cfg.MaxRequestBytes,
	})
	if len(d.cfg.Secrets) > 0 {
		d.nats.RequireGroupInboxes()
	}
	return nil
}

// bindings returns where BIND keeps bindings and the bindings known at
// start: the registry's when one is configured, else the store's.
func (d *Daemon) bindings(ctx context.Context) (semantics.BindingKeeper, map[string][]registry.Binding, error) {
	if d.cfg.Registry == "" {
		lctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		return semantics.StoreBindings(lctx, d.st)
	}
	var err error
	if d.cfg.Bind != "off" {
		if d.adv, err = advertisedAddr(d.cfg); err != nil {
			return nil, nil, err
		}
	}
	w, initial, err := registry.WatchTopics(ctx, d.life, d.reg, d.cfg.Topics, registryWaitInitial, d.log)
	if err != nil {
		return nil, nil, err
	}
	d.watch = w
	return semantics.RegistryBindings{Registry: d.reg}, initial, nil
}

// Run serves until ctx ends or a component stops by itself, then stops
// the components in the reverse order of their start, waiting for each,
// and closes the daemon. It returns the error of the component that
// stopped the daemon, if any. Run may be called once.
//
// The order (ARCHITECTURE.md A.3): the group-commit writer, the registry's
// binding watches, the connection events, the broker (waited for until it
// serves), the transaction coordinator, the KiteQ listener, the admin HTTP,
// and last the registry advertisement. So at shutdown KiteQ clients are
// told to go elsewhere first, the KiteQ sessions leave their groups while
// the broker still runs, the broker drains its deliveries while it still
// learns of consumers that leave, and the writer writes what they all
// queued before the store closes.
func (d *Daemon) Run(ctx context.Context) error {
	err := errors.New("daemon: Run called twice")
	d.runOnce.Do(func() { err = d.run(ctx) })
	return err
}

func (d *Daemon) run(ctx context.Context) error {
	defer func() { _ = d.Close() }()
	l := newLifecycle(d.log)
	err := d.start(l)
	if err == nil {
		d.logListeners()
		d.log.Info("kitenats serving", "name", d.cfg.BrokerName(), "store", redactURI(d.cfg.DB), "broker", d.broker.ID())
		err = l.wait(ctx)
	}
	if serr := l.stop(); err == nil {
		err = serr
	}
	return err
}

// start starts the components in order. Adding one is adding a line here.
func (d *Daemon) start(l *lifecycle) error {
	l.run("group-commit writer", d.w.Run)
	if d.watch != nil {
		l.run("registry binding watch", func(ctx context.Context) error {
			d.watch.Run(ctx, d.broker.SetTopicBindings)
			return nil
		})
	}
	l.run("connection events", d.connectionEvents)
	if d.cl != nil {
		d.startCluster(l)
	}
	if err := l.runReady("broker", d.broker.Run, d.broker.Ready()); err != nil {
		return err
	}
	l.run("transactions", d.tx.Run)
	if d.kiteq != nil {
		l.run("KiteQ listener", d.kiteq.Run)
	}
	if d.admin != nil {
		l.run("admin HTTP", d.admin.Run)
	}
	if d.reg != nil && d.adv != "" {
		d.advertise(l)
	}
	return nil
}

// startCluster adds the cluster's stages: the peers' watch, and route
// discovery when the registry has it.
func (d *Daemon) startCluster(l *lifecycle) {
	l.run("cluster peers", d.cl.watchPeers)
	if d.reg == nil {
		return
	}
	reg, ok := d.reg.(routeRegistry)
	if !ok {
		d.log.Info("cluster: this registry does not list routes (zk:// does): routes come from -routes only", "registry", d.cfg.Registry)
		return
	}
	l.run("cluster registry routes", func(ctx context.Context) error { return d.cl.followRegistry(ctx, reg) })
}

// connectionEvents tells the broker of every NATS client that goes, so
// that its consumers leave their groups, and counts the NATS clients.
func (d *Daemon) connectionEvents(ctx context.Context) error {
	return d.br.Events(ctx, func(e bridge.Event) {
		switch e.Kind {
		case bridge.Connect:
			d.natsConns.Add(1)
			d.natsOpened.Add(1)
		case bridge.Disconnect:
			d.natsConns.Add(-1)
			d.broker.ConnClosed(e.ConnID)
		}
	})
}

// advertise registers the KiteQ listener in the registry for the served
// topics, and withdraws it first thing at shutdown.
func (d *Daemon) advertise(l *lifecycle) {
	// A failure is logged, not fatal: NATS clients are served anyway, and
	// KiteQ clients that know the address still reach it.
	if err := d.reg.PublishServer(d.life, d.adv, d.cfg.Topics); err != nil {
		d.log.Error("registry: advertising the broker", "addr", d.adv, "err", err)
	}
	l.onStop("registry advertisement", func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := d.reg.UnpublishServer(ctx, d.adv, d.cfg.Topics); err != nil {
			d.log.Warn("registry: withdrawing the broker", "err", err)
		}
	})
}

// logListeners logs one line per listener with the address it actually
// bound (the port obtained for :0), and says which ones are off.
func (d *Daemon) logListeners() {
	d.log.Info("listening: NATS clients", append([]any{"addr", d.br.Addr().String(), "url", d.br.ClientURL()}, tlsAttrs(d.tls.nats)...)...)
	if d.cl != nil {
		d.log.Info("listening: NATS routes", "addr", d.br.ClusterAddr().String(), "url", d.cl.url, "name", d.cl.name,
			"cluster", d.cl.clusterName, "seeds", len(d.cfg.Cluster.Routes), "auth", d.cfg.Cluster.RouteUser != "", "tls", d.cfg.TLS.Route.On)
	} else {
		d.log.Info("NATS routes off (no -cluster): a broker alone", "name", d.cfg.BrokerName())
	}
	if d.kiteq != nil {
		d.log.Info("listening: KiteQ TCP", append([]any{"addr", d.kiteq.Addr().String()}, tlsAttrs(d.tls.kiteq)...)...)
	} else {
		d.log.Info("KiteQ TCP off (-bind off)")
	}
	if d.admin != nil {
		addr, scheme := d.admin.Addr().String(), "http://"
		if d.tls.admin != nil {
			scheme = "https://"
		}
		d.log.Info("listening: admin HTTP", append([]any{"addr", addr, "url", scheme + addr}, tlsAttrs(d.tls.admin)...)...)
	} else {
		d.log.Info("admin HTTP off (-pport -1)")
	}
}

// tlsAttrs are the log attributes of a listener's TLS: none when it is
// plain.
func tlsAttrs(l *listenerTLS) []any {
	if l == nil {
		return nil
	}
	return []any{"tls", true, "cert", l.files.Cert, "serial", *l.serial.Load(), "client_ca", l.files.CA != "", "verify_clients", l.files.VerifyClients}
}

// Reload re-reads the certificate, key and client CA files of every
// listener with TLS on (SIGHUP): new handshakes use them, connections
// already up keep theirs. A listener whose files do not load (missing, a
// key that is not the certificate's, an expired certificate) keeps its
// certificate; the error is logged and returned. Safe to call at any time
// after New, concurrently with serving.
func (d *Daemon) Reload() error {
	if len(d.tls.listeners()) == 0 {
		d.log.Info("reload: no listener has TLS on; nothing to reload")
		return nil
	}
	return d.tls.reload(d.log)
}

// Close releases what New opened, whatever it got to, in the reverse order
// of opening: the admin and KiteQ listeners, the registry session, the
// broker's connections, the NATS server, the store. Run closes the daemon
// when it returns; call Close yourself only when Run is never called.
// Idempotent; it returns the store's close error, the one that can lose
// data.
func (d *Daemon) Close() error {
	var err error
	d.closeOnce.Do(func() {
		d.endLife()
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
			if err = d.st.Close(); err != nil {
				d.log.Error("closing store", "err", err)
			}
		}
	})
	return err
}

// Ready is closed once the broker serves: its subscriptions are in place.
func (d *Daemon) Ready() <-chan struct{} { return d.broker.Ready() }

// ClientURL is the URL NATS clients connect to (nats://host:port, the port
// the listener was given for :0).
func (d *Daemon) ClientURL() string { return d.br.ClientURL() }

// KiteQAddr is the KiteQ listener's address; nil with -bind off.
func (d *Daemon) KiteQAddr() net.Addr {
	if d.kiteq == nil {
		return nil
	}
	return d.kiteq.Addr()
}

// AdminAddr is the admin HTTP listener's address; nil with -pport -1.
func (d *Daemon) AdminAddr() net.Addr {
	if d.admin == nil {
		return nil
	}
	return d.admin.Addr()
}

// Name is this broker's name in its cluster (-name; nats-server's server
// name).
func (d *Daemon) Name() string { return d.cfg.BrokerName() }

// ClusterURL is this broker's route URL (nats-route://host:port, the port
// the route listener was given for :0); "" without -cluster.
func (d *Daemon) ClusterURL() string {
	if d.cl == nil {
		return ""
	}
	return d.cl.url
}

// BrokerID is the token of this broker's ack subjects
// ($KQ.ACK.<group>.<broker id>.…).
func (d *Daemon) BrokerID() string { return d.broker.ID() }

// Bind adds bindings to a group's set, durably, as a KiteQ consumer does
// by writing them to the registry: for tools that drive KiteQ clients
// without a registry (the benchmark).
func (d *Daemon) Bind(ctx context.Context, group string, bs []registry.Binding) error {
	return d.broker.AddBindings(ctx, group, bs)
}

// Stat is the broker's $KQ.ADMIN.STAT.
func (d *Daemon) Stat(ctx context.Context) (*semantics.Stat, error) { return d.broker.Stat(ctx) }

// Start builds a daemon from cfg and runs it in the background. It
// returns once the broker serves; stop shuts it down in order and returns
// Run's error. Tools (the benchmark) and tests use it.
func Start(ctx context.Context, cfg config.Config, log *slog.Logger) (d *Daemon, stop func() error, err error) {
	if d, err = New(ctx, cfg, log); err != nil {
		return nil, nil, err
	}
	rctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	done := make(chan error, 1)
	go func() { done <- d.Run(rctx) }()
	select {
	case <-d.Ready():
	case err := <-done:
		cancel()
		return nil, nil, err
	}
	return d, func() error { cancel(); return <-done }, nil
}
