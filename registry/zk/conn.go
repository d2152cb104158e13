package zk

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/go-zookeeper/zk"
)

// conn is the part of *zk.Conn the registry uses, so unit tests can run it
// on a hand-written in-memory fake. It is wider than five methods because
// it mirrors ZooKeeper's own primitives one to one (the plain Get and
// Children exist so a re-read does not stack a second watch on a node whose
// watch has not fired yet); anything higher-level would hide the watch
// semantics the tests need to exercise.
//
// Watch channels follow go-zookeeper: one slot, one event, then closed; a
// lost session or Close delivers EventNotWatching.
type conn interface {
	Create(path string, data []byte, flags int32, acl []zk.ACL) (string, error)
	Set(path string, data []byte, version int32) (*zk.Stat, error)
	Delete(path string, version int32) error
	Get(path string) ([]byte, *zk.Stat, error)
	GetW(path string) ([]byte, *zk.Stat, <-chan zk.Event, error)
	Children(path string) ([]string, *zk.Stat, error)
	ChildrenW(path string) ([]string, *zk.Stat, <-chan zk.Event, error)
	// SessionID is the current session's id, 0 while there is none.
	SessionID() int64
	// Close ends the session and returns once the connection's goroutines
	// are gone.
	Close()
}

// dialFunc opens a connection. onEvent receives every session event, in
// order, from the connection's own goroutine; it must not block.
type dialFunc func(cfg Config, onEvent func(zk.Event)) (conn, error)

// dialZK is the real dialFunc.
func dialZK(cfg Config, onEvent func(zk.Event)) (conn, error) {
	sockets := &sockets{open: make(map[net.Conn]struct{})}
	c, events, err := zk.Connect(cfg.Servers, cfg.SessionTimeout,
		zk.WithEventCallback(onEvent),
		zk.WithLogger(zkLogger{cfg.Logger}),
		zk.WithLogInfo(true),
		zk.WithDialer(sockets.dial))
	if err != nil {
		return nil, fmt.Errorf("zk: connect %v: %w", cfg.Servers, err)
	}
	return &zkConn{Conn: c, events: events, sockets: sockets}, nil
}

// zkConn makes Close wait for go-zookeeper's goroutines: its event channel
// is closed only after its connection loop has returned.
type zkConn struct {
	*zk.Conn
	events  <-chan zk.Event
	sockets *sockets
}

func (c *zkConn) Close() {
	c.Conn.Close()
	// A server that accepted the connection and never answers holds the
	// library's handshake read for ten receive timeouts (about 33 s), and
	// its loop with it; closing the socket ends the read at once.
	c.sockets.closeAll()
	// The library closes events when its loop has returned; the events
	// themselves already went to the callback.
	for range c.events {
		continue
	}
}

// sockets dials go-zookeeper's connections and keeps them, so that Close
// can close them under the library.
type sockets struct {
	mu     sync.Mutex
	open   map[net.Conn]struct{}
	closed bool
}

func (s *sockets) dial(network, address string, timeout time.Duration) (net.Conn, error) {
	c, err := net.DialTimeout(network, address, timeout)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		_ = c.Close()
		return nil, net.ErrClosed
	}
	s.open[c] = struct{}{}
	return trackedConn{Conn: c, s: s}, nil
}

func (s *sockets) closeAll() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	for c := range s.open {
		_ = c.Close()
	}
	clear(s.open)
}

// trackedConn forgets itself when the library closes it.
type trackedConn struct {
	net.Conn
	s *sockets
}

func (c trackedConn) Close() error {
	c.s.mu.Lock()
	delete(c.s.open, c.Conn)
	c.s.mu.Unlock()
	return c.Conn.Close()
}

// zkLogger routes go-zookeeper's Printf logging into slog. The library
// logs every reconnect attempt; the registry logs the session changes that
// matter itself, so library lines are Debug unless they report a failure
// that is not just a lost connection.
type zkLogger struct{ log *slog.Logger }

func (l zkLogger) Printf(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	level := slog.LevelDebug
	lower := strings.ToLower(msg)
	if strings.Contains(lower, "authentication failed") && !strings.Contains(lower, "expired") ||
		strings.Contains(lower, "failed to set previous watches") ||
		strings.Contains(lower, "error in resending auth") {
		level = slog.LevelWarn
	}
	l.log.Log(context.Background(), level, "go-zookeeper: "+msg)
}

// acl is KiteQ's: world, every permission.
var acl = zk.WorldACL(zk.PermAll)

// ensurePath creates path and its missing parents as persistent nodes with
// no data, level by level, like KiteQ.
func ensurePath(c conn, path string) error {
	for i := 1; i <= len(path); i++ {
		if i < len(path) && path[i] != '/' {
			continue
		}
		p := path[:i]
		if _, err := c.Create(p, nil, 0, acl); err != nil && !errors.Is(err, zk.ErrNodeExists) {
			return fmt.Errorf("zk: create %s: %w", p, err)
		}
	}
	return nil
}

// deleteIfExists deletes path, any version; a missing node is not an error.
func deleteIfExists(c conn, path string) error {
	if err := c.Delete(path, -1); err != nil && !errors.Is(err, zk.ErrNoNode) {
		return fmt.Errorf("zk: delete %s: %w", path, err)
	}
	return nil
}
