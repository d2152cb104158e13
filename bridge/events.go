package bridge

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
)

// Errors returned by Events.
var (
	// ErrEventsBusy is returned when another Events call is running.
	ErrEventsBusy = errors.New("bridge: events already being consumed")
	// ErrEventsLost is returned when connect/disconnect events were dropped
	// (nobody consumed them for too long, or the events connection broke).
	// The set of live connections is unknown from then on, and every later
	// Events call fails the same way; the broker should restart.
	ErrEventsLost = errors.New("bridge: connection events lost")
)

// Buffer for events that Events has not consumed yet (nats.go pending
// limits of the events subscription). Beyond either limit events are lost.
const (
	eventPendingMsgs  = 64 << 10
	eventPendingBytes = 64 << 20
)

// clientKind is nats-server's kind string for a client connection.
const clientKind = "Client"

// EventKind tells what happened to a connection.
type EventKind uint8

// Event kinds.
const (
	// Connect: a client connected and passed authorization.
	Connect EventKind = iota + 1
	// Disconnect: a client reported by Connect is gone, for whatever reason
	// (closed, TCP reset, ping timeout, slow consumer, server shutdown).
	// nats-server announces it after it has routed what it read from the
	// client: on a client's own close, every message the client sent is
	// by then queued for (or delivered to) its subscribers, the bridge's
	// connections included.
	Disconnect
)

// String returns "connect" or "disconnect".
func (k EventKind) String() string {
	switch k {
	case Connect:
		return "connect"
	case Disconnect:
		return "disconnect"
	default:
		return "EventKind(" + strconv.Itoa(int(k)) + ")"
	}
}

// Event is one connect or disconnect of an external client of this server.
type Event struct {
	Kind   EventKind
	ConnID uint64 // server-side client id, as Holders and ConnID report it
	User   string // NATS user the client authenticated as ("" in open mode without user)
	Remote string // client IP address (no port)
	Name   string // client-given connection name, may be empty
	Reason string // why the connection closed (Disconnect only), e.g. "Stale Connection"
}

// eventMsg holds the fields we use of nats-server's ConnectEventMsg and
// DisconnectEventMsg.
type eventMsg struct {
	Server server.ServerInfo `json:"server"`
	Client server.ClientInfo `json:"client"`
	Reason string            `json:"reason"`
}

// Events calls fn, on the calling goroutine and in order, for every connect
// and disconnect of an external client of this server (not the bridge's own
// connections, not other cluster members' clients) until ctx ends; it then
// returns nil. Events are recorded from Start on, so none is missed between
// Start and the first Events call, nor between successive calls; every
// Disconnect follows the Connect of the same ConnID, and a client refused by
// the Authorizer produces neither. Only one Events call may run at a time
// (ErrEventsBusy). It returns ErrClosed when Close ends it and ErrEventsLost
// when events could not be kept. fn should be quick: while it runs, events
// queue up (up to 64 Ki events or 64 MiB, then ErrEventsLost).
func (s *Server) Events(ctx context.Context, fn func(Event)) error {
	if !s.eventsMu.TryLock() {
		return ErrEventsBusy
	}
	defer s.eventsMu.Unlock()
	if s.lost {
		return ErrEventsLost
	}
	sub, srvID, err := s.eventSource()
	if err != nil {
		return err
	}
	for {
		msg, err := sub.NextMsgWithContext(ctx)
		if err != nil {
			return s.eventsEnded(ctx, err)
		}
		if ev, ok := s.decodeEvent(msg, srvID); ok {
			fn(ev)
		}
	}
}

// eventSource returns the events subscription and this server's id.
func (s *Server) eventSource() (*nats.Subscription, string, error) {
	srv, err := s.running()
	if err != nil {
		return nil, "", err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.eventSub, srv.ID(), nil
}

// eventsEnded maps the error that stopped the events loop.
// Caller must hold eventsMu.
func (s *Server) eventsEnded(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return nil
	}
	if _, rerr := s.running(); errors.Is(rerr, ErrClosed) {
		return ErrClosed
	}
	s.lost = true
	return fmt.Errorf("%w: %w", ErrEventsLost, err)
}

// decodeEvent turns a $SYS.ACCOUNT.<acc>.CONNECT/DISCONNECT message into an
// Event and keeps the live set. ok is false for anything not to report.
// Caller must hold eventsMu.
func (s *Server) decodeEvent(msg *nats.Msg, srvID string) (Event, bool) {
	var kind EventKind
	switch {
	case strings.HasSuffix(msg.Subject, ".DISCONNECT"):
		kind = Disconnect
	case strings.HasSuffix(msg.Subject, ".CONNECT"):
		kind = Connect
	default:
		return Event{}, false
	}
	var m eventMsg
	if err := json.Unmarshal(msg.Data, &m); err != nil {
		s.log.Warn("undecodable connection event", "subject", msg.Subject, "err", err)
		return Event{}, false
	}
	c := m.Client
	if m.Server.ID != srvID || c.Kind != clientKind || c.User == internalUser || c.User == systemUser {
		return Event{}, false
	}
	if !s.track(kind, c.ID) {
		return Event{}, false
	}
	ev := Event{Kind: kind, ConnID: c.ID, User: c.User, Remote: c.Host, Name: c.Name}
	if kind == Disconnect {
		ev.Reason = m.Reason
	}
	return ev, true
}

// track updates the live set and reports whether the event is to be
// reported: a Disconnect only for a conn reported connected (nats-server
// also announces the close of a conn it refused). Caller must hold eventsMu.
func (s *Server) track(kind EventKind, id uint64) bool {
	if kind == Connect {
		s.live[id] = struct{}{}
		return true
	}
	s.auth.hosts.gone(id)
	if _, ok := s.live[id]; !ok {
		return false
	}
	delete(s.live, id)
	return true
}

// subscribeEvents opens the in-process system-account connection and
// subscribes to the client account's connect/disconnect events. The
// subscription is synchronous: nats.go buffers events until Events reads
// them, so no goroutine of ours is involved.
func (s *Server) subscribeEvents(srv *server.Server) (*nats.Conn, *nats.Subscription, error) {
	nc, err := nats.Connect("",
		nats.InProcessServer(srv),
		nats.UserInfo(s.auth.system.user, s.auth.system.pass),
		nats.Name("kitenats-bridge-events"),
		// A reconnect would silently skip the events of the gap.
		nats.NoReconnect(),
	)
	if err != nil {
		return nil, nil, fmt.Errorf("bridge: events connection: %w", err)
	}
	subject := "$SYS.ACCOUNT." + srv.GlobalAccount().Name + ".*"
	sub, err := nc.SubscribeSync(subject)
	if err == nil {
		err = sub.SetPendingLimits(eventPendingMsgs, eventPendingBytes)
	}
	if err == nil {
		err = nc.Flush()
	}
	if err != nil {
		nc.Close()
		return nil, nil, fmt.Errorf("bridge: events subscription: %w", err)
	}
	return nc, sub, nil
}
