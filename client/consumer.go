package client

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/kitenats/kitenats/kqerr"
)

// BindType is how a [Binding] matches messageTypes.
type BindType uint8

// The binding types of NATS-PROTOCOL.md §3 (KiteQ's 0, 1, 2).
const (
	BindDirect BindType = iota // exactly the binding's messageType
	BindRegx                   // an unanchored Go regexp on the messageType
	BindFanout                 // every messageType of the topic
)

// String returns the wire name: direct, regx or fanout.
func (t BindType) String() string {
	switch t {
	case BindDirect:
		return "direct"
	case BindRegx:
		return "regx"
	case BindFanout:
		return "fanout"
	default:
		return fmt.Sprintf("BindType(%d)", uint8(t))
	}
}

// MarshalText writes the wire name.
func (t BindType) MarshalText() ([]byte, error) {
	if t > BindFanout {
		return nil, fmt.Errorf("client: unknown bind type %d", uint8(t))
	}
	return []byte(t.String()), nil
}

// Binding subscribes a group to messages of a topic. Bindings belong to the
// group and are durable on the broker: a persistent binding keeps
// collecting messages while every consumer of the group is offline.
type Binding struct {
	Topic       string   `json:"topic"`
	MessageType string   `json:"messageType"` // the messageType (direct), a pattern (regx), ignored (fanout)
	Type        BindType `json:"bindType"`
	Persistent  bool     `json:"persistent"` // false: messages are dropped for the group while it has no live consumer
	Watermark   int32    `json:"watermark"`  // > 0: at most this many deliveries per second per broker; 0 unlimited
}

// Direct returns a persistent binding to exactly messageType of topic.
func Direct(topic, messageType string) Binding {
	return Binding{Topic: topic, MessageType: messageType, Type: BindDirect, Persistent: true}
}

// Regx returns a persistent binding to the messageTypes of topic that match
// pattern (an unanchored Go regexp).
func Regx(topic, pattern string) Binding {
	return Binding{Topic: topic, MessageType: pattern, Type: BindRegx, Persistent: true}
}

// Fanout returns a persistent binding to every messageType of topic.
func Fanout(topic string) Binding {
	return Binding{Topic: topic, Type: BindFanout, Persistent: true}
}

// ConsumerOption configures a [Consumer].
type ConsumerOption func(*consumerConfig)

type consumerConfig struct {
	warmup      time.Duration
	maxInflight int
	ackWait     time.Duration
	concurrency int
	log         *slog.Logger
}

// WarmingUp sets the warm-up ramp (KiteQ's warmingupSec, rounded up to whole
// seconds): a new consumer gets a growing share of the group's messages over
// d. Default 0: no ramp.
func WarmingUp(d time.Duration) ConsumerOption { return func(c *consumerConfig) { c.warmup = d } }

// MaxInflight sets how many unacknowledged deliveries the broker sends this
// consumer at most. Default 0: the broker's default (1000).
func MaxInflight(n int) ConsumerOption { return func(c *consumerConfig) { c.maxInflight = n } }

// AckWait sets how long the broker waits for an acknowledgement before it
// counts the attempt as failed. Default 0: the broker's (5 s, KiteQ's
// deliverySeconds).
func AckWait(d time.Duration) ConsumerOption { return func(c *consumerConfig) { c.ackWait = d } }

// Concurrency sets how many handlers run at once. Default 1.
func Concurrency(n int) ConsumerOption { return func(c *consumerConfig) { c.concurrency = n } }

// Logger sets where the consumer reports what it cannot return: failed
// acknowledgements and failed re-binds (Warn), re-binds (Info). Default:
// discarded.
func Logger(l *slog.Logger) ConsumerOption { return func(c *consumerConfig) { c.log = l } }

// Re-bind backoff after a failed BIND (the broker may still be starting).
const (
	minRebindBackoff = 50 * time.Millisecond
	maxRebindBackoff = 5 * time.Second
)

// Consumer receives the deliveries of a group's bindings on its own deliver
// subject and acknowledges them from a handler's result. It is safe for
// concurrent use.
//
// Lifecycle: [NewConsumer], [Consumer.Start] once, [Consumer.Close] once
// (more calls return the first result). Goroutines: up to Concurrency
// handler workers and one re-bind loop, all stopped and waited for by
// Close.
type Consumer struct {
	nc       *nats.Conn
	group    string
	bindings []Binding
	cfg      consumerConfig
	deliver  string        // $KQ.DLV.<group>.<random>
	slots    chan struct{} // handler slots, capacity cfg.concurrency
	ctx      context.Context
	cancel   context.CancelFunc // called by Close: stops the loop and waiting callbacks

	loop     sync.WaitGroup // the re-bind loop
	handlers sync.WaitGroup // running handlers

	mu      sync.Mutex // guards the fields below; held by Start during its BIND
	started bool
	closing bool // set by Close: no new handler starts (handlers.Add under mu)
	sub     *nats.Subscription
	status  chan nats.Status
	id      string // consumer id of the last successful BIND
	// conn is cancelled when the connection drops, so that an
	// acknowledgement written to a dead connection does not hold its
	// handler slot until DefaultTimeout: the broker redelivers what it
	// acknowledged anyway. A new one is made at once.
	conn       context.Context
	connCancel context.CancelFunc

	closeOnce sync.Once
	closeErr  error
}

// NewConsumer returns a consumer of group on nc, bound to bindings (added
// to the group's durable set at Start; none: the group's existing set). It
// does no I/O and starts nothing. nc should be connected as group (see the
// package Caveats).
func NewConsumer(nc *nats.Conn, group string, bindings []Binding, opts ...ConsumerOption) (*Consumer, error) {
	cfg := consumerConfig{concurrency: 1}
	for _, o := range opts {
		o(&cfg)
	}
	switch {
	case nc == nil:
		return nil, errors.New("client: consumer: nil connection")
	case group == "":
		return nil, errors.New("client: consumer: empty group")
	case cfg.warmup < 0 || cfg.maxInflight < 0 || cfg.ackWait < 0:
		return nil, errors.New("client: consumer: WarmingUp, MaxInflight and AckWait must not be negative")
	case cfg.concurrency < 1:
		return nil, errors.New("client: consumer: Concurrency must be at least 1")
	}
	for _, b := range bindings {
		if _, err := b.Type.MarshalText(); err != nil {
			return nil, err
		}
	}
	if cfg.log == nil {
		cfg.log = slog.New(slog.DiscardHandler)
	}
	cfg.log = cfg.log.With("group", group)
	ctx, cancel := context.WithCancel(context.Background())
	return &Consumer{
		nc: nc, group: group, bindings: append([]Binding(nil), bindings...), cfg: cfg,
		deliver: "$KQ.DLV." + EncodeToken(group) + "." + NewMessageID(),
		slots:   make(chan struct{}, cfg.concurrency),
		ctx:     ctx, cancel: cancel,
	}, nil
}

// Start subscribes to the consumer's deliver subject, binds (within ctx, or
// [DefaultTimeout]) and returns; from then on handler runs for every
// delivery until Close. A nil result acknowledges the delivery, [Retry] and
// other errors ask for a redelivery, [Terminate] dead-letters it. After
// every reconnect the consumer binds again, retrying until it succeeds.
//
// A failed Start (a refused BIND is an [*Error]) unsubscribes and may be
// retried. Close waits for a Start in progress.
func (c *Consumer) Start(ctx context.Context, handler func(*Delivery) error) error {
	if handler == nil {
		return errors.New("client: consumer: nil handler")
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case c.closing:
		return ErrClosed
	case c.started:
		return ErrStarted
	}
	sub, err := c.nc.Subscribe(c.deliver, func(m *nats.Msg) { c.onMsg(m, handler) })
	if err != nil {
		return fmt.Errorf("client: subscribing %s: %w", c.deliver, err)
	}
	// Listen before binding, so that a reconnect during BIND is not missed.
	status := c.nc.StatusChanged(nats.CONNECTED, nats.RECONNECTING, nats.DISCONNECTED, nats.CLOSED)
	id, err := c.bind(ctx)
	if err != nil {
		c.nc.RemoveStatusListener(status)
		_ = sub.Unsubscribe() // best effort: the BIND failed, nothing is delivered here
		return err
	}
	c.started, c.sub, c.status, c.id = true, sub, status, id
	c.conn, c.connCancel = context.WithCancel(context.Background())
	c.loop.Add(1)
	go c.rebindLoop(status)
	return nil
}

// bindRequest is the body of $KQ.API.BIND.<group>.
type bindRequest struct {
	Deliver      string        `json:"deliver"`
	Bindings     []Binding     `json:"bindings"`
	WarmingupSec int           `json:"warmingupSec"`
	MaxInflight  int           `json:"maxInflight"`
	AckWait      time.Duration `json:"ackWait"`
}

// bind sends BIND (idempotent per group and deliver subject) and returns
// the consumer id.
func (c *Consumer) bind(ctx context.Context) (string, error) {
	req := bindRequest{
		Deliver: c.deliver, Bindings: c.bindings,
		WarmingupSec: int((c.cfg.warmup + time.Second - 1) / time.Second),
		MaxInflight:  c.cfg.maxInflight, AckWait: c.cfg.ackWait,
	}
	if req.Bindings == nil {
		req.Bindings = []Binding{}
	}
	var r struct {
		Consumer string `json:"consumer"`
	}
	if err := call(ctx, c.nc, "$KQ.API.BIND."+EncodeToken(c.group), req, &r); err != nil {
		return "", fmt.Errorf("client: bind %s: %w", c.group, err)
	}
	return r.Consumer, nil
}

// rebindLoop binds again after every reconnect (a restarted broker has
// forgotten the consumer; a reconnected connection is a new one), retrying
// with backoff until it succeeds or Close. Status events may be dropped
// when nats.go finds the channel full, so any event marks a BIND as
// pending and the connection's current state decides when to send it.
func (c *Consumer) rebindLoop(status chan nats.Status) {
	defer c.loop.Done()
	var (
		pending bool
		retry   <-chan time.Time
		backoff = minRebindBackoff
	)
	for {
		select {
		case <-c.ctx.Done():
			return
		case s, ok := <-status:
			if !ok || s == nats.CLOSED {
				return
			}
			if s != nats.CONNECTED {
				c.connDropped()
			}
			pending, retry, backoff = true, nil, minRebindBackoff
		case <-retry:
			retry = nil
		}
		if !pending || !c.nc.IsConnected() {
			continue // the next status event brings us back
		}
		ctx, cancel := context.WithTimeout(c.ctx, DefaultTimeout)
		id, err := c.bind(ctx)
		cancel()
		if err != nil {
			if c.ctx.Err() != nil {
				return
			}
			c.cfg.log.Warn("client: re-bind failed, retrying", "err", err, "backoff", backoff)
			retry = time.After(backoff)
			backoff = min(2*backoff, maxRebindBackoff)
			continue
		}
		pending = false
		c.mu.Lock()
		c.id = id
		c.mu.Unlock()
		c.cfg.log.Info("client: re-bound after reconnect", "consumer", id)
	}
}

// connDropped aborts the acknowledgements waiting on the dropped connection.
func (c *Consumer) connDropped() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.connCancel()
	c.conn, c.connCancel = context.WithCancel(context.Background())
}

// onMsg runs on the subscription's goroutine: it waits for a handler slot
// (so nats.go queues what the handlers cannot take yet) and hands the
// delivery to a worker goroutine.
func (c *Consumer) onMsg(m *nats.Msg, handler func(*Delivery) error) {
	select {
	case c.slots <- struct{}{}:
	case <-c.ctx.Done():
		return // closing: the broker redelivers it once the consumer is deleted
	}
	c.mu.Lock()
	if c.closing {
		c.mu.Unlock()
		<-c.slots
		return
	}
	c.handlers.Add(1)
	c.mu.Unlock()
	go func() {
		defer c.handlers.Done()
		defer func() { <-c.slots }()
		c.handle(m, handler)
	}()
}

// handle runs the handler and sends the acknowledgement it implies.
func (c *Consumer) handle(m *nats.Msg, handler func(*Delivery) error) {
	d := newDelivery(c.nc, m)
	payload := ackPayload(handler(d))
	c.mu.Lock()
	ctx := c.conn
	c.mu.Unlock()
	if ctx == nil { // a delivery that raced a failed Start: acknowledged all the same
		ctx = context.Background()
	}
	if err := d.reply(ctx, payload); err != nil {
		c.cfg.log.Warn("client: acknowledgement failed; the broker will redeliver", "msg_id", d.ID, "topic", d.Topic, "ack", payload, "err", err)
	}
}

// Close stops the consumer: no new deliveries are handled, running handlers
// are waited for (their acknowledgements sent), then the broker is told
// ($KQ.API.CONSUMER.DELETE) so that unacknowledged deliveries go to other
// consumers of the group at once. The bindings stay: they belong to the
// group. Close does not close the connection. It is idempotent; a consumer
// the broker no longer knows (connection closed, broker restarted) closes
// without error.
func (c *Consumer) Close() error {
	c.closeOnce.Do(func() { c.closeErr = c.close() })
	return c.closeErr
}

func (c *Consumer) close() error {
	c.mu.Lock()
	c.closing = true
	started, sub, status := c.started, c.sub, c.status
	c.mu.Unlock()
	c.cancel()
	if !started {
		c.handlers.Wait() // deliveries that raced a failed Start
		return nil
	}
	c.nc.RemoveStatusListener(status)
	c.loop.Wait()
	var errs []error
	if err := sub.Unsubscribe(); err != nil && !errors.Is(err, nats.ErrConnectionClosed) {
		errs = append(errs, fmt.Errorf("client: unsubscribing %s: %w", c.deliver, err))
	}
	c.handlers.Wait()
	c.mu.Lock()
	c.connCancel()
	id := c.id
	c.mu.Unlock()
	if c.nc.IsClosed() {
		return errors.Join(errs...) // the consumer ended with its connection
	}
	err := call(context.Background(), c.nc, "$KQ.API.CONSUMER.DELETE."+EncodeToken(c.group), map[string]string{"consumer": id}, nil)
	var e *Error
	if err != nil && !(errors.As(err, &e) && kqerr.Code(e.Code) == kqerr.Conflict) {
		errs = append(errs, fmt.Errorf("client: deleting consumer %s: %w", id, err))
	}
	return errors.Join(errs...)
}
