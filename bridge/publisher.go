package bridge

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"strconv"
	"sync"
	"time"
)

// Publisher is a publish-only client connection to the embedded server, for
// the broker's outbound traffic (deliveries and replies). It
// speaks the client protocol itself: a message's headers go out as the
// pre-encoded block the caller built, with no header map and no sorting,
// and frames are appended to one buffer that a writer goroutine flushes
// in batches. It has no subscriptions; it answers the server's PINGs.
//
// Publish never blocks on the network: past MaxPending buffered bytes it
// fails with ErrSlow. Any connection error is sticky: every later Publish
// returns it, and so does Err (the daemon's /healthz reports it; the
// connection does not come back by itself, since the server is in this
// process).
type Publisher struct {
	conn       net.Conn
	maxPending int
	maxPayload int // the server's max_payload, from its INFO

	mu      sync.Mutex
	buf     []byte        // frames not yet handed to the writer
	err     error         // sticky
	pongs   []chan error  // Flush waiters, in PING order
	kick    chan struct{} // capacity 1: wakes the writer
	closed  bool
	closing chan struct{}
	wg      sync.WaitGroup
}

// Publish errors that refuse one message and leave the connection up.
var (
	ErrSlow       = errors.New("bridge: publisher: too much waiting to be written")
	ErrMaxPayload = errors.New("bridge: publisher: message larger than max_payload")
)

// DefaultMaxPending bounds the bytes a Publisher buffers.
const DefaultMaxPending = 64 << 20

// writeTimeout bounds one write to the server.
const writeTimeout = 30 * time.Second

// ConnectPublisher opens a Publisher as the internal user (full
// permissions, not seen by the Authorizer nor reported by Events), over an
// in-process pipe: a pipe write waits for the server to read it, which only
// the Publisher's own writer goroutine ever waits for, and it costs no
// system call (measured: -5 % CPU per message against loopback TCP).
func (s *Server) ConnectPublisher(name string) (*Publisher, error) {
	srv, err := s.running()
	if err != nil {
		return nil, err
	}
	conn, err := srv.InProcessConn()
	if err != nil {
		return nil, fmt.Errorf("bridge: publisher %q: %w", name, err)
	}
	p, err := newPublisher(conn, name, s.auth.internal.user, s.auth.internal.pass)
	if err != nil {
		_ = conn.Close()
		return nil, fmt.Errorf("bridge: publisher %q: %w", name, err)
	}
	return p, nil
}

// newPublisher does the client handshake on conn (INFO, CONNECT, PING,
// PONG) and starts the reader and writer.
func newPublisher(conn net.Conn, name, user, pass string) (*Publisher, error) {
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	r := bufio.NewReaderSize(conn, 4096)
	line, err := r.ReadString('\n')
	if err != nil {
		return nil, fmt.Errorf("read INFO: %w", err)
	}
	var info struct {
		MaxPayload int `json:"max_payload"`
	}
	if !bytes.HasPrefix([]byte(line), []byte("INFO ")) || json.Unmarshal([]byte(line[5:]), &info) != nil || info.MaxPayload <= 0 {
		return nil, fmt.Errorf("want INFO with max_payload, got %q", line)
	}
	connect, _ := json.Marshal(map[string]any{
		"verbose": false, "pedantic": false, "headers": true, "no_responders": false,
		"echo": false, "protocol": 1, "lang": "go", "version": "kitenats-publisher",
		"name": name, "user": user, "pass": pass,
	})
	if _, err := fmt.Fprintf(conn, "CONNECT %s\r\nPING\r\n", connect); err != nil {
		return nil, fmt.Errorf("send CONNECT: %w", err)
	}
	for {
		line, err = r.ReadString('\n')
		if err != nil {
			return nil, fmt.Errorf("read PONG: %w", err)
		}
		switch {
		case line == "PONG\r\n":
			_ = conn.SetDeadline(time.Time{})
			p := &Publisher{conn: conn, maxPending: DefaultMaxPending, maxPayload: info.MaxPayload,
				kick: make(chan struct{}, 1), closing: make(chan struct{})}
			p.wg.Add(2)
			go p.readLoop(r)
			go p.writeLoop()
			return p, nil
		case bytes.HasPrefix([]byte(line), []byte("-ERR")):
			return nil, fmt.Errorf("server: %s", bytes.TrimSpace([]byte(line)))
		}
		// INFO updates, +OK: keep reading
	}
}

// Publish queues one message. hdr is a complete NATS header block
// ("NATS/1.0\r\n", "Key: Value\r\n" lines, "\r\n") or nil. subject and reply
// must be valid subjects (no white space or control characters).
func (p *Publisher) Publish(subject, reply string, hdr, data []byte) error {
	if !protocolSafe(subject) || subject == "" || !protocolSafe(reply) {
		return fmt.Errorf("bridge: publish: invalid subject %q or reply %q", subject, reply)
	}
	if n := len(hdr) + len(data); n > p.maxPayload {
		// The server would close the connection: refuse this one message.
		return fmt.Errorf("%w: %d bytes, the server takes %d", ErrMaxPayload, n, p.maxPayload)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	switch {
	case p.err != nil:
		return p.err
	case p.closed:
		return ErrClosed
	case len(p.buf) > p.maxPending:
		return ErrSlow
	}
	b := p.buf
	if len(hdr) > 0 {
		b = append(b, "HPUB "...)
	} else {
		b = append(b, "PUB "...)
	}
	b = append(b, subject...)
	b = append(b, ' ')
	if reply != "" {
		b = append(b, reply...)
		b = append(b, ' ')
	}
	if len(hdr) > 0 {
		b = strconv.AppendInt(b, int64(len(hdr)), 10)
		b = append(b, ' ')
	}
	b = strconv.AppendInt(b, int64(len(hdr)+len(data)), 10)
	b = append(b, "\r\n"...)
	b = append(b, hdr...)
	b = append(b, data...)
	b = append(b, "\r\n"...)
	p.buf = b
	p.wake()
	return nil
}

// Flush returns once the server has processed everything published so far
// (a PING answered by a PONG), or after timeout.
func (p *Publisher) Flush(timeout time.Duration) error {
	ch := make(chan error, 1)
	p.mu.Lock()
	if p.err != nil || p.closed {
		err := p.err
		p.mu.Unlock()
		if err == nil {
			err = ErrClosed
		}
		return err
	}
	p.buf = append(p.buf, "PING\r\n"...)
	p.pongs = append(p.pongs, ch)
	p.wake()
	p.mu.Unlock()
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case err := <-ch:
		return err
	case <-t.C:
		return fmt.Errorf("bridge: publisher: flush: no PONG within %s", timeout)
	}
}

// Err returns the error that broke the connection, or ErrClosed after
// Close; nil while it serves.
func (p *Publisher) Err() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.err == nil && p.closed {
		return ErrClosed
	}
	return p.err
}

// Close writes what is buffered, closes the connection and waits for the
// Publisher's goroutines.
func (p *Publisher) Close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		p.wg.Wait()
		return nil
	}
	p.closed = true
	close(p.closing)
	p.mu.Unlock()
	p.wg.Wait()
	return nil
}

// wake asks the writer to write. caller holds p.mu
func (p *Publisher) wake() {
	select {
	case p.kick <- struct{}{}:
	default:
	}
}

// fail records err as the connection's error and releases Flush waiters.
func (p *Publisher) fail(err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.err == nil && !p.closed {
		p.err = fmt.Errorf("bridge: publisher: %w", err)
	}
	for _, ch := range p.pongs {
		ch <- p.errOrClosed()
	}
	p.pongs = nil
}

// errOrClosed caller holds p.mu
func (p *Publisher) errOrClosed() error {
	if p.err != nil {
		return p.err
	}
	return ErrClosed
}

// writeLoop writes the buffer whenever woken, until Close; on Close it
// writes what is left, then closes the connection (which ends readLoop).
func (p *Publisher) writeLoop() {
	defer p.wg.Done()
	var spare []byte
	for {
		stop := false
		select {
		case <-p.kick:
		case <-p.closing:
			stop = true
		}
		p.mu.Lock()
		out := p.buf
		p.buf = spare[:0]
		broken := p.err != nil
		p.mu.Unlock()
		if len(out) > 0 && !broken {
			// A server that reads nothing for writeTimeout is stuck: fail
			// rather than hold Close forever.
			_ = p.conn.SetWriteDeadline(time.Now().Add(writeTimeout))
			if _, err := p.conn.Write(out); err != nil {
				p.fail(err)
			}
		}
		spare = out
		if stop {
			_ = p.conn.Close()
			return
		}
	}
}

// readLoop answers PINGs and completes Flushes until the connection ends.
func (p *Publisher) readLoop(r *bufio.Reader) {
	defer p.wg.Done()
	var said string // the server's last -ERR: why it closes, when it does
	for {
		line, err := r.ReadSlice('\n')
		if err != nil {
			if !errors.Is(err, bufio.ErrBufferFull) {
				if said != "" {
					err = fmt.Errorf("%w (server said %s)", err, said)
				}
				p.fail(err)
				return
			}
			continue // an oversized INFO: skip to its end
		}
		switch {
		case bytes.Equal(line, []byte("PING\r\n")):
			p.mu.Lock()
			p.buf = append(p.buf, "PONG\r\n"...)
			p.wake()
			p.mu.Unlock()
		case bytes.Equal(line, []byte("PONG\r\n")):
			p.mu.Lock()
			if len(p.pongs) > 0 {
				p.pongs[0] <- nil
				p.pongs = p.pongs[1:]
			}
			p.mu.Unlock()
		case bytes.HasPrefix(line, []byte("-ERR")):
			// Fatal ones are followed by the server closing the
			// connection; keep the reason for that error.
			said = string(bytes.TrimSpace(line))
		}
	}
}

// protocolSafe reports whether s can go into a protocol line: no white
// space or control characters.
func protocolSafe(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c <= ' ' || c == 0x7f {
			return false
		}
	}
	return true
}
