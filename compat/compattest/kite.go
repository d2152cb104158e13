package compattest

import (
	"bufio"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/kitenats/kitenats/compat/wire"
)

// The socket and concurrency figures of kiteq-client-go (kite.go's
// turbo.NewTConfig and turbo's tsession.go, tclient.go, gopool.go).
const (
	// KiteBuffer is the client's SO_RCVBUF and SO_SNDBUF, set after the
	// connection is made, and the size of its bufio reader and writer.
	KiteBuffer = 16 << 10
	// KiteDispatchers is the client's dispatch pool: its reader hands each
	// frame to one of at most this many goroutines and blocks while all
	// are busy.
	KiteDispatchers = 50
	// KiteWriteQueue is the client's write channel, drained by one writer.
	KiteWriteQueue = 10000
	// KiteHeartbeatPeriod, KiteHeartbeatTimeout and KiteHeartbeatTries are
	// the client's keep-alive: every period, up to three pings, each
	// waiting timeout for its echo; three failures close the connection
	// and reconnect.
	KiteHeartbeatPeriod  = 10 * time.Second
	KiteHeartbeatTimeout = 5 * time.Second
	KiteHeartbeatTries   = 3
)

// KiteConfig configures a Kite.
type KiteConfig struct {
	Group, Secret string
	WarmingupSec  int32
	// HeartbeatPeriod and HeartbeatTimeout default to the client's
	// (KiteHeartbeatPeriod, KiteHeartbeatTimeout); tests shorten them to
	// see a stall sooner.
	HeartbeatPeriod, HeartbeatTimeout time.Duration
	// OnMessage is the listener; its answer is the DeliverAck's status.
	// Default: true. It runs on the dispatch pool.
	OnMessage func(Delivery) bool
	// TLS, when set, wraps every connection in a TLS client with this
	// configuration (a broker with compat.Config.TLS; the original client
	// has no TLS). Default nil: plain TCP.
	TLS *tls.Config
}

// KiteStats counts what a Kite saw.
type KiteStats struct {
	Received          int64 // deliveries, duplicates included
	Unique            int64 // distinct message ids
	HeartbeatFailures int64 // pings without an echo in time
	Reconnects        int64
}

// Kite plays kiteq-client-go's connection to one broker the way its source
// does it, so that tests meet what the unmodified client does to a broker:
// a 16 KiB receive buffer set after connecting, a reader that hands frames
// to a pool of 50 dispatchers and stops reading while they are all busy,
// DeliverAcks written by one writer through a 10,000-frame queue, heartbeats
// every 10 s with a 5 s timeout and three tries, and a reconnect that writes
// what the old connection left in the queue before its handshake.
//
// Unlike Client, a Kite runs goroutines of its own; Close (also run when
// the test ends) stops and waits for them all.
type Kite struct {
	t    testing.TB
	addr string
	cfg  KiteConfig

	out  chan []byte   // the write queue; outlives connections, as the client's does
	quit chan struct{} // closed by Close
	wg   sync.WaitGroup
	once sync.Once

	opaque  atomic.Uint32 // the client's request ids, from 1
	mu      sync.Mutex    // guards conn, stop, written, waits, seen
	conn    net.Conn
	stop    chan struct{} // closed to stop the current connection's writer
	written chan struct{} // closed when that writer has returned
	waits   map[uint32]chan struct{}
	seen    map[string]bool

	received, unique, hbFailures, reconnects atomic.Int64
}

// StartKite connects to addr, completes the handshake and starts the
// client's goroutines.
func StartKite(t testing.TB, addr string, cfg KiteConfig) (*Kite, error) {
	if cfg.HeartbeatPeriod == 0 {
		cfg.HeartbeatPeriod = KiteHeartbeatPeriod
	}
	if cfg.HeartbeatTimeout == 0 {
		cfg.HeartbeatTimeout = KiteHeartbeatTimeout
	}
	if cfg.OnMessage == nil {
		cfg.OnMessage = func(Delivery) bool { return true }
	}
	k := &Kite{
		t: t, addr: addr, cfg: cfg,
		out:   make(chan []byte, KiteWriteQueue),
		quit:  make(chan struct{}),
		waits: make(map[uint32]chan struct{}),
		seen:  make(map[string]bool),
	}
	if err := k.connect(); err != nil {
		k.Close()
		return nil, err
	}
	k.wg.Add(1)
	go func() { defer k.wg.Done(); k.heartbeatLoop() }()
	t.Cleanup(k.Close)
	return k, nil
}

// Stats returns the counts so far.
func (k *Kite) Stats() KiteStats {
	return KiteStats{
		Received: k.received.Load(), Unique: k.unique.Load(),
		HeartbeatFailures: k.hbFailures.Load(), Reconnects: k.reconnects.Load(),
	}
}

// Close closes the connection and waits for every goroutine.
func (k *Kite) Close() {
	k.once.Do(func() {
		close(k.quit)
		k.mu.Lock()
		if k.conn != nil {
			_ = k.conn.Close()
		}
		k.mu.Unlock()
	})
	k.wg.Wait()
}

// connect dials, sets the client's socket options, starts a reader and a
// writer for the new connection, and performs the handshake. Whatever the
// write queue still holds goes out first, before the ConnMeta, as with
// turbo's reconnect.
func (k *Kite) connect() error {
	c, err := net.DialTimeout("tcp", k.addr, 5*time.Second)
	if err != nil {
		return err
	}
	tc := c.(*net.TCPConn)
	_ = tc.SetNoDelay(true)
	_ = tc.SetReadBuffer(KiteBuffer)
	_ = tc.SetWriteBuffer(KiteBuffer)
	if k.cfg.TLS != nil {
		tc := k.cfg.TLS
		if tc.ServerName == "" { // as tls.Dial: the name is the address's host
			tc = tc.Clone()
			tc.ServerName, _, _ = net.SplitHostPort(k.addr)
		}
		c = tls.Client(c, tc)
	}
	stop, written := make(chan struct{}), make(chan struct{})
	k.mu.Lock()
	k.conn, k.stop, k.written = c, stop, written
	k.mu.Unlock()
	k.wg.Add(2)
	go func() { defer k.wg.Done(); k.readLoop(c) }()
	go func() { defer k.wg.Done(); defer close(written); k.writeLoop(c, stop) }()

	auth := make(chan struct{})
	o := k.request(auth)
	k.queue(o, wire.CmdConnMeta, &wire.ConnMeta{
		GroupId: proto.String(k.cfg.Group), SecretKey: proto.String(k.cfg.Secret), WarmingupSec: proto.Int32(k.cfg.WarmingupSec),
	})
	select {
	case <-auth:
		return nil
	case <-time.After(k.cfg.HeartbeatTimeout):
		return fmt.Errorf("compattest: kite: no ConnAuthAck within %s", k.cfg.HeartbeatTimeout)
	case <-k.quit:
		return errors.New("compattest: kite: closed")
	}
}

// request registers a wait for the answer to a fresh opaque.
func (k *Kite) request(done chan struct{}) uint32 {
	o := k.opaque.Add(1)
	k.mu.Lock()
	k.waits[o] = done
	k.mu.Unlock()
	return o
}

// queue encodes m and puts it on the write queue; a full queue drops it,
// as turbo's Write does after its timeout.
func (k *Kite) queue(opaque uint32, cmd wire.Cmd, m proto.Message) {
	body, err := wire.Encode(cmd, m)
	if err != nil {
		k.t.Errorf("compattest: kite: encode %s: %v", cmd, err)
		return
	}
	buf := wire.AppendFrame(nil, wire.Frame{Opaque: opaque, Cmd: cmd, Body: body})
	select {
	case k.out <- buf:
	default:
	}
}

// writeLoop writes the queue to c, a batch at a time through a 16 KiB
// buffer flushed after each batch, until c fails or the Kite closes.
func (k *Kite) writeLoop(c net.Conn, stop chan struct{}) {
	bw := bufio.NewWriterSize(c, KiteBuffer)
	for {
		var b []byte
		select {
		case b = <-k.out:
		case <-stop:
			return
		case <-k.quit:
			return
		}
		for {
			if _, err := bw.Write(b); err != nil {
				k.requeue(b)
				return
			}
			select {
			case b = <-k.out:
				continue
			default:
			}
			break
		}
		if err := bw.Flush(); err != nil {
			return
		}
	}
}

// requeue puts back a frame a dead connection could not write, for the
// next connection to write before its handshake.
func (k *Kite) requeue(b []byte) {
	select {
	case k.out <- b:
	default:
	}
}

// readLoop reads frames from c and hands each to the dispatch pool,
// blocking while its 50 goroutines are busy.
func (k *Kite) readLoop(c net.Conn) {
	br := bufio.NewReaderSize(c, KiteBuffer)
	pool := make(chan struct{}, KiteDispatchers)
	var busy sync.WaitGroup
	defer busy.Wait()
	for {
		f, err := wire.ReadFrame(br)
		if err != nil {
			_ = c.Close()
			return
		}
		select {
		case pool <- struct{}{}:
		case <-k.quit:
			return
		}
		busy.Add(1)
		go func() {
			defer func() { <-pool; busy.Done() }()
			k.dispatch(f)
		}()
	}
}

// dispatch handles one frame: an answer wakes its waiter, a delivery goes
// to OnMessage and is acknowledged.
func (k *Kite) dispatch(f wire.Frame) {
	switch f.Cmd {
	case wire.CmdBytesMessage, wire.CmdStringMessage:
		m, err := wire.Decode(f)
		if err != nil {
			k.t.Errorf("compattest: kite: decode %s: %v", f.Cmd, err)
			return
		}
		d := Delivery{Opaque: f.Opaque, Cmd: f.Cmd}
		switch m := m.(type) {
		case *wire.BytesMessage:
			d.Header, d.Body = m.GetHeader(), m.GetBody()
		case *wire.StringMessage:
			d.Header, d.Body = m.GetHeader(), []byte(m.GetBody())
		}
		k.received.Add(1)
		k.mu.Lock()
		if !k.seen[d.Header.GetMessageId()] {
			k.seen[d.Header.GetMessageId()] = true
			k.unique.Add(1)
		}
		k.mu.Unlock()
		ok := k.cfg.OnMessage(d)
		h := d.Header
		k.queue(f.Opaque, wire.CmdDeliverAck, &wire.DeliverAck{
			MessageId: h.MessageId, Topic: h.Topic, MessageType: h.MessageType, GroupId: h.GroupId,
			Status: proto.Bool(ok), Feedback: proto.String(""),
		})
	default:
		k.mu.Lock()
		done := k.waits[f.Opaque]
		delete(k.waits, f.Opaque)
		k.mu.Unlock()
		if done != nil {
			close(done)
		}
	}
}

// heartbeatLoop pings every period; three pings without an echo close the
// connection and reconnect.
func (k *Kite) heartbeatLoop() {
	for {
		select {
		case <-time.After(k.cfg.HeartbeatPeriod):
		case <-k.quit:
			return
		}
		ok := false
		for range KiteHeartbeatTries {
			pong := make(chan struct{})
			o := k.request(pong)
			k.queue(o, wire.CmdHeartbeat, &wire.HeartBeat{Version: proto.Int64(time.Now().Unix())})
			select {
			case <-pong:
				ok = true
			case <-time.After(k.cfg.HeartbeatTimeout):
				k.hbFailures.Add(1)
			case <-k.quit:
				return
			}
			if ok {
				break
			}
		}
		if ok {
			continue
		}
		if err := k.reconnect(); err != nil {
			k.t.Logf("compattest: kite: reconnect: %v", err)
		}
	}
}

// reconnect closes the connection and connects again, the queue's leftovers
// first.
func (k *Kite) reconnect() error {
	k.shut()
	return k.connect()
}

// shut closes the connection and waits for its writer, so that what is
// left in the queue stays there for the next connection.
func (k *Kite) shut() {
	k.reconnects.Add(1)
	k.mu.Lock()
	_ = k.conn.Close()
	if k.stop != nil {
		close(k.stop)
		k.stop = nil
	}
	written := k.written
	k.mu.Unlock()
	<-written
}

// Reconnect does what three failed heartbeats make the client do, at once:
// a ping is left in the write queue (its echo never came), the connection is
// closed, and a new one writes that ping before its ConnMeta. It returns the
// new handshake's error.
func (k *Kite) Reconnect() error {
	k.shut()
	k.queue(k.opaque.Add(1), wire.CmdHeartbeat, &wire.HeartBeat{Version: proto.Int64(time.Now().Unix())})
	return k.connect()
}
