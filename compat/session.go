package compat

import (
	"bufio"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/kitenats/kitenats/compat/wire"
	"github.com/kitenats/kitenats/kqerr"
)

// socketBuffer is the size of each connection's read and write buffers,
// KiteQ's 16 KiB.
const socketBuffer = 16 << 10

// outFrame is one encoded frame (header and body) waiting in a write queue.
type outFrame struct {
	buf  []byte
	last bool // close the connection once it is written
}

// session is one KiteQ connection. Its reader goroutine runs readLoop and
// owns the handshake state; its writer goroutine runs writeLoop and is the
// only one to write to conn. Anyone may queue frames (replies from broker
// callbacks, deliveries from the broker's goroutines).
type session struct {
	srv    *Server
	conn   net.Conn
	id     uint64 // conn_id in logs
	remote string
	log    *slog.Logger

	// The write queue: frames waiting for the writer, at most
	// Config.WriteQueue. It grows with what is queued, from nothing: an
	// idle connection holds no queue.
	qmu        sync.Mutex
	queue      []outFrame
	kick       chan struct{} // capacity 1: wakes the writer
	done       chan struct{} // closed by close
	closeOnce  sync.Once
	writerDone chan struct{} // closed when writeLoop returns

	// Handshake state, owned by the reader goroutine.
	authed   bool
	group    string
	warmup   time.Duration
	authAt   time.Time
	consumer string // from Broker.Join

	// window is the bytes of the pending deliveries that count (Full):
	// written under mu, read without it on the broker's hot path.
	window atomic.Int64

	mu        sync.Mutex // guards seq, pending, staleScan and joined
	seq       uint64     // requests sent so far; the next opaque derives from it
	pending   map[uint32]pendingDelivery
	staleScan time.Time // when Full last looked for stale deliveries
	// joined is a copy of the handshake state for other goroutines
	// (Server.Check): set once, after the handshake.
	joined *handshake
}

// handshake is what a ConnMeta established.
type handshake struct {
	group  string
	warmup time.Duration
	at     time.Time
}

// member returns the connection's handshake if it joined group.
func (s *session) member(group string) (handshake, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.joined == nil || s.joined.group != group {
		return handshake{}, false
	}
	return *s.joined, true
}

func newSession(srv *Server, conn net.Conn, id uint64) *session {
	remote := conn.RemoteAddr().String()
	return &session{
		srv:        srv,
		conn:       conn,
		id:         id,
		remote:     remote,
		log:        srv.log.With("conn_id", id, "remote", remote),
		kick:       make(chan struct{}, 1),
		done:       make(chan struct{}),
		writerDone: make(chan struct{}),
		pending:    make(map[uint32]pendingDelivery),
	}
}

// errRefused ends a session whose last frame (a refusal) is queued: the
// writer closes the connection once it has written it.
var errRefused = errors.New("compat: handshake refused")

// readLoop reads and handles frames until the connection fails or a frame
// ends it, then closes the session and leaves the group.
func (s *session) readLoop() {
	err := s.readFrames()
	if errors.Is(err, errRefused) {
		// Let the writer send the refusal; WriteTimeout bounds the wait.
		<-s.writerDone
	}
	s.close()
	switch {
	case errors.Is(err, io.EOF), errors.Is(err, net.ErrClosed):
		s.log.Debug("compat: connection closed")
	default:
		s.log.Info("compat: closing connection", "group", s.group, "err", err)
	}
	if s.consumer != "" {
		s.srv.broker.Leave(s.group, s.consumer)
	}
}

// readFrames is the read loop proper. It returns why it ended, never nil:
// io.EOF (or net.ErrClosed) is a clean end.
//
// Until the handshake a connection costs little: a small read buffer, and
// frames of at most preHandshakeBody bytes (a ConnMeta is a few hundred;
// the publishes a reconnecting kiteq-client-go sends first are refused
// anyway). The full read buffer comes with the handshake.
func (s *session) readFrames() error {
	br := bufio.NewReaderSize(s.conn, preHandshakeBuffer)
	if err := s.conn.SetReadDeadline(time.Now().Add(s.srv.cfg.HandshakeTimeout)); err != nil {
		return err
	}
	for {
		limit := wire.MaxBodyLen
		if !s.authed {
			limit = preHandshakeBody
		}
		f, err := wire.ReadFrameMax(br, limit)
		if err != nil {
			switch {
			case !s.authed && isTimeout(err):
				return fmt.Errorf("no handshake within %s: %w", s.srv.cfg.HandshakeTimeout, err)
			case !s.authed && errors.Is(err, wire.ErrFrameTooLarge):
				return fmt.Errorf("before the handshake, frames are at most %d bytes: %w", preHandshakeBody, err)
			}
			return err
		}
		authed := s.authed
		if err := s.handle(f); err != nil {
			return err
		}
		if !authed && s.authed && br.Buffered() == 0 {
			// The client waits for its ConnAuthAck: nothing is buffered,
			// and the reader can grow. (Should frames already be
			// buffered, the small reader stays: it only costs reads.)
			br = bufio.NewReaderSize(s.conn, socketBuffer)
		}
	}
}

// Before the handshake: the read buffer, and the largest frame body taken.
const (
	preHandshakeBuffer = 1 << 10
	preHandshakeBody   = 64 << 10
)

// handle decodes one frame and dispatches it. A non-nil error closes the
// connection: a malformed body, a refused handshake, a command the client
// never sends before the handshake. Unknown command codes are ignored after
// the handshake, as both original peers do.
//
// Before the handshake: kiteq-client-go reuses a connection's write queue
// when it reconnects, so a new connection can start with what the old one
// never got to write (heartbeats, DeliverAcks, TxAcks, even publishes) and
// then ConnMeta. The original broker validates those on a worker pool
// concurrently with the ConnMeta, and in practice the handshake that
// follows succeeds. So do we, without acting for a connection nobody has
// authenticated (kiteq-protocol.md §3.3): a heartbeat is echoed, a publish
// is refused with a MessageStoreAck (status false, 401) and nothing is
// stored, DeliverAcks and TxAcks (whose opaques belong to the old
// connection) are dropped. Frames a client never sends (ConnAuthAck,
// MessageStoreAck) and unknown commands close the connection, and
// HandshakeTimeout still bounds the wait for ConnMeta.
func (s *session) handle(f wire.Frame) error {
	if !s.authed && !clientCommand(f.Cmd) {
		return fmt.Errorf("%s (opaque %d) before the handshake", f.Cmd, f.Opaque)
	}
	msg, err := wire.Decode(f)
	if errors.Is(err, wire.ErrUnknownCmd) {
		s.log.Debug("compat: ignoring unknown command", "cmd", uint8(f.Cmd), "opaque", f.Opaque)
		return nil
	}
	if err != nil {
		return err
	}
	switch m := msg.(type) {
	case *wire.ConnMeta:
		return s.handleConnMeta(f.Opaque, m)
	case *wire.HeartBeat:
		s.handleHeartbeat(f.Opaque, m)
	case *wire.BytesMessage:
		s.handlePublish(f.Opaque, f.Cmd, m.GetHeader(), m.GetBody())
	case *wire.StringMessage:
		s.handlePublish(f.Opaque, f.Cmd, m.GetHeader(), []byte(m.GetBody()))
	case *wire.DeliverAck:
		if s.authed {
			s.handleDeliverAck(f.Opaque, m)
		}
	case *wire.TxACKPacket:
		if s.authed {
			s.handleTxAck(f.Opaque, m)
		}
	default: // ConnAuthAck, MessageStoreAck: replies a client never sends
		s.log.Debug("compat: ignoring a broker-to-client command", "cmd", f.Cmd.String(), "opaque", f.Opaque)
	}
	return nil
}

// clientCommand reports whether a client sends cmd: what a connection may
// send before its handshake.
func clientCommand(cmd wire.Cmd) bool {
	switch cmd {
	case wire.CmdConnMeta, wire.CmdHeartbeat, wire.CmdBytesMessage, wire.CmdStringMessage, wire.CmdDeliverAck, wire.CmdTxAck:
		return true
	default:
		return false
	}
}

// refuseUnauthed answers a publish sent before the handshake.
func (s *session) refuseUnauthed(opaque uint32, h *wire.Header) {
	err := kqerr.New(kqerr.Unauthorized, nil, "unauthorized: the connection has not completed its handshake (ConnMeta)")
	s.storeAck(opaque, h.GetMessageId(), modeOf(h), Result{}, err, s.srv.cfg.Now())
}

// reply queues a response frame. A reply that does not fit in the write
// queue closes the connection: its client is not reading, and a lost reply
// would only make it time out later.
func (s *session) reply(opaque uint32, cmd wire.Cmd, m proto.Message) {
	if err := s.send(opaque, cmd, m, false); err != nil {
		if errors.Is(err, ErrQueueFull) {
			s.log.Warn("compat: write queue full, closing a client that does not read", "cmd", cmd.String())
			s.close()
			return
		}
		s.log.Debug("compat: reply not sent", "cmd", cmd.String(), "opaque", opaque, "err", err)
	}
}

// send encodes m and queues it; last closes the connection after it.
func (s *session) send(opaque uint32, cmd wire.Cmd, m proto.Message, last bool) error {
	body, err := wire.Encode(cmd, m)
	if err != nil {
		// Every message we build has its required fields: a bug.
		s.log.Error("compat: encoding a reply", "cmd", cmd.String(), "err", err)
		return err
	}
	buf := wire.AppendFrame(make([]byte, 0, wire.HeaderLen+len(body)), wire.Frame{Opaque: opaque, Cmd: cmd, Body: body})
	return s.enqueue(outFrame{buf: buf, last: last})
}

// enqueue queues f without blocking.
func (s *session) enqueue(f outFrame) error {
	select {
	case <-s.done:
		return errClosed
	default:
	}
	s.qmu.Lock()
	if len(s.queue) >= s.srv.cfg.WriteQueue {
		s.qmu.Unlock()
		return ErrQueueFull
	}
	s.queue = append(s.queue, f)
	s.qmu.Unlock()
	select {
	case s.kick <- struct{}{}:
	default:
	}
	return nil
}

// coalesceBuf is what a TLS connection's writer copies frames into: one
// TLS record (16 KiB) per write instead of one per frame. Pooled, so that
// an idle connection holds none.
const coalesceBuf = 16 << 10

var coalescePool = sync.Pool{New: func() any { b := make([]byte, 0, coalesceBuf); return &b }}

// writeFrames writes iov: one vectored write on a TCP connection; on a TLS
// one (where net.Buffers would write, and seal, every frame on its own)
// frames copied together into writes of up to 16 KiB, a larger frame on
// its own.
func (s *session) writeFrames(iov [][]byte) error {
	if _, ok := s.conn.(*tls.Conn); !ok {
		bufs := net.Buffers(iov)
		_, err := bufs.WriteTo(s.conn)
		return err
	}
	bp := coalescePool.Get().(*[]byte)
	defer coalescePool.Put(bp)
	buf := (*bp)[:0]
	for _, b := range iov {
		if len(buf) > 0 && len(buf)+len(b) > cap(buf) {
			if _, err := s.conn.Write(buf); err != nil {
				return err
			}
			buf = buf[:0]
		}
		if len(b) >= cap(buf) {
			if _, err := s.conn.Write(b); err != nil {
				return err
			}
			continue
		}
		buf = append(buf, b...)
	}
	if len(buf) == 0 {
		return nil
	}
	_, err := s.conn.Write(buf)
	return err
}

// writeLoop writes queued frames until the session closes. It takes all
// that is queued at once and writes it with one vectored write (the frames
// are not copied; over TLS, writeFrames), so that a burst costs few system
// calls and an idle connection holds no write buffer.
func (s *session) writeLoop() {
	defer close(s.writerDone)
	var batch []outFrame
	var iov [][]byte
	for {
		select {
		case <-s.kick:
		case <-s.done:
			return
		}
		s.qmu.Lock()
		batch, s.queue = s.queue, batch[:0]
		s.qmu.Unlock()
		if len(batch) == 0 {
			continue
		}
		if err := s.conn.SetWriteDeadline(time.Now().Add(s.srv.cfg.WriteTimeout)); err != nil {
			s.close()
			return
		}
		iov = iov[:0]
		last := false
		for _, f := range batch {
			iov = append(iov, f.buf)
			if f.last {
				last = true
				break
			}
		}
		err := s.writeFrames(iov)
		if err != nil || last {
			if err != nil {
				s.log.Debug("compat: write failed", "err", err)
			}
			s.close()
			return
		}
		clear(iov)
		clear(batch) // let the frames go
		if cap(batch) > idleQueue {
			batch, iov = nil, nil // a burst's queue is not kept for the idle time after it
		}
	}
}

// idleQueue is the largest write queue, in frames, a connection keeps
// between bursts.
const idleQueue = 64

// close closes the connection and stops the writer. Idempotent; safe from
// any goroutine. The reader sees the closed connection and leaves the group.
func (s *session) close() {
	s.closeOnce.Do(func() {
		close(s.done)
		_ = s.conn.Close()
	})
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
