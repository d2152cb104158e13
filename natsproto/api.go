package natsproto

import (
	"context"
	"encoding/json"
	"sort"
	"strings"
	"time"

	"github.com/kitenats/kitenats/kqerr"
	"github.com/kitenats/kitenats/registry"
	"github.com/kitenats/kitenats/semantics"
)

// apiTimeout bounds the store and registry work of one API call.
const apiTimeout = 10 * time.Second

// handleAPI serves $KQ.API.>, a group's own calls: every reply is a JSON
// object, with an error member on failure.
func (s *Server) handleAPI(msg *Msg) {
	s.takeCall(msg, APIPrefix, s.api)
}

// handleAdmin serves $KQ.ADMIN.>, the admin calls.
func (s *Server) handleAdmin(msg *Msg) {
	s.takeCall(msg, AdminPrefix, s.admin)
}

// takeCall refuses a call over the request size limit at once, and hands
// the others to the API pool; without one (the tests' harness calls the
// handlers itself) it serves the call at once.
func (s *Server) takeCall(msg *Msg, prefix string, route func(context.Context, string, []byte) ([]byte, error)) {
	if lim := s.cfg.MaxRequestBytes; lim >= 0 && len(msg.Data) > lim {
		s.b.CountLimit(semantics.LimitRequestBytes)
		s.refuseCall(msg, kqerr.New(kqerr.TooLarge, nil,
			"request of %d bytes, over the limit of %d bytes (maxRequestBytes)", len(msg.Data), lim))
		return
	}
	s.mu.Lock()
	pool := s.pool
	s.mu.Unlock()
	if pool == nil {
		s.serveCall(msg, prefix, route, time.Now())
		return
	}
	pool.enqueue(msg, prefix, route)
}

// refuseCall answers a call with err, if it has a reply subject.
func (s *Server) refuseCall(msg *Msg, err error) {
	if msg.Reply != "" {
		s.reply(msg.Reply, errorBody(err))
	}
}

// serveCall answers one call, taken at at, with route's reply, or its
// error. Its deadline runs from at: a call that waited past it is answered
// 503 without being served.
func (s *Server) serveCall(msg *Msg, prefix string, route func(context.Context, string, []byte) ([]byte, error), at time.Time) {
	ctx, cancel := context.WithDeadline(context.Background(), at.Add(apiTimeout))
	defer cancel()
	var body []byte
	var err error
	if ctx.Err() != nil {
		s.b.CountLimit(semantics.LimitAPIDeadline)
		err = kqerr.New(kqerr.Unavailable, ctx.Err(), "the call waited %s for its turn: not served; try again", apiTimeout)
	} else {
		body, err = route(ctx, strings.TrimPrefix(msg.Subject, prefix), msg.Data)
	}
	if msg.Reply == "" {
		return
	}
	if err != nil {
		body = errorBody(err)
	}
	s.reply(msg.Reply, body)
}

// encode is the JSON of an API call's typed reply, or the call's error.
func encode[T any](v T, err error) ([]byte, error) {
	if err != nil {
		return nil, err
	}
	body, err := json.Marshal(v)
	if err != nil {
		return nil, kqerr.New(kqerr.Internal, err, "encoding reply")
	}
	return body, nil
}

// DeletedReply is the reply of CONSUMER.DELETE and BINDINGS.DELETE.
type DeletedReply struct {
	Deleted bool `json:"deleted"`
}

// ReplayedReply is the reply of DLQ.REPLAY.
type ReplayedReply struct {
	Replayed bool `json:"replayed"`
}

// legacyAdmin are the admin calls still served under $KQ.API, as before
// $KQ.ADMIN existed, for the tools written then. No group's permissions
// reach them (GroupPermissions names each group verb), so in secrets mode
// only the admin user calls them. TX.LIST is not among them: under
// $KQ.API it is TX as the group named LIST.
var legacyAdmin = map[string]bool{"STAT": true, "BINDINGS.LIST": true, "DLQ.LIST": true, "DLQ.REPLAY": true}

// api routes one call by the subject after $KQ.API and returns its reply's
// JSON. $KQ.API.<verb>.<G> is always a call as group G: TX.<G> resolves
// G's own prepared messages only.
func (s *Server) api(ctx context.Context, call string, body []byte) ([]byte, error) {
	if legacyAdmin[call] {
		return s.admin(ctx, call, body)
	}
	tok := strings.Split(call, ".")
	groupAt := func(i int) (string, error) {
		if len(tok) != i+1 {
			return "", kqerr.New(kqerr.BadRequest, nil, "bad API subject $KQ.API.%s", call)
		}
		g, err := DecodeToken(tok[i])
		if err != nil {
			return "", kqerr.New(kqerr.BadRequest, err, "bad group token in $KQ.API.%s: %v", call, err)
		}
		return g, nil
	}
	switch {
	case tok[0] == "TX":
		g, err := groupAt(1)
		if err != nil {
			return nil, err
		}
		return encode(s.handleTx(ctx, &g, body))
	case tok[0] == "BIND":
		g, err := groupAt(1)
		if err != nil {
			return nil, err
		}
		return encode(s.handleBind(ctx, g, body))
	case strings.HasPrefix(call, "CONSUMER.DELETE."):
		g, err := groupAt(2)
		if err != nil {
			return nil, err
		}
		var req struct {
			Consumer string `json:"consumer"`
		}
		if err := json.Unmarshal(body, &req); err != nil {
			return nil, kqerr.New(kqerr.BadRequest, err, "bad request: %v", err)
		}
		if !s.b.Leave(g, req.Consumer) {
			return nil, kqerr.New(kqerr.Conflict, nil, "unknown consumer %s of %s", req.Consumer, g)
		}
		return encode(DeletedReply{Deleted: true}, nil)
	case strings.HasPrefix(call, "BINDINGS.DELETE."):
		g, err := groupAt(2)
		if err != nil {
			return nil, err
		}
		var req bindingSpec
		if err := json.Unmarshal(body, &req); err != nil {
			return nil, kqerr.New(kqerr.BadRequest, err, "bad request: %v", err)
		}
		if err := s.b.RemoveBinding(ctx, g, req.Topic, req.MessageType); err != nil {
			return nil, err
		}
		return encode(DeletedReply{Deleted: true}, nil)
	}
	return nil, kqerr.New(kqerr.NotFound, nil, "unknown API call $KQ.API.%s", call)
}

// admin routes one admin call by the subject after $KQ.ADMIN (or a legacy
// one after $KQ.API) and returns its reply's JSON.
func (s *Server) admin(ctx context.Context, call string, body []byte) ([]byte, error) {
	switch call {
	case "STAT":
		return encode(s.b.Stat(ctx))
	case "BINDINGS.LIST":
		return encode(s.listBindings(body))
	case "DLQ.LIST":
		return encode(s.listDead(ctx, body))
	case "DLQ.REPLAY":
		return encode(s.replay(body))
	case "TX.LIST":
		return encode(s.listTx(ctx, body))
	case "TX":
		return encode(s.handleTx(ctx, nil, body))
	}
	return nil, kqerr.New(kqerr.NotFound, nil, "unknown admin call $KQ.ADMIN.%s", call)
}

// Page is the shape of every list reply.
type Page[T any] struct {
	Total  int `json:"total"`
	Offset int `json:"offset"`
	Limit  int `json:"limit"`
	Items  []T `json:"items"`
}

type pageRequest struct {
	Topic  string `json:"topic"`
	Group  string `json:"groupId"`
	ID     string `json:"id"`
	Offset int    `json:"offset"`
	Limit  int    `json:"limit"`
}

func parsePageRequest(body []byte) (pageRequest, error) {
	var r pageRequest
	if len(body) > 0 {
		if err := json.Unmarshal(body, &r); err != nil {
			return r, kqerr.New(kqerr.BadRequest, err, "bad request: %v", err)
		}
	}
	if r.Offset < 0 || r.Limit < 0 {
		return r, kqerr.New(kqerr.BadRequest, nil, "offset and limit must not be negative")
	}
	if r.Limit == 0 || r.Limit > 1000 {
		r.Limit = min(max(r.Limit, 100), 1000)
	}
	return r, nil
}

// listBindings serves $KQ.ADMIN.BINDINGS.LIST: every group's bindings, by
// group name.
func (s *Server) listBindings(body []byte) (Page[registry.Binding], error) {
	r, err := parsePageRequest(body)
	if err != nil {
		return Page[registry.Binding]{}, err
	}
	var all []registry.Binding
	bs := s.b.Bindings()
	names := make([]string, 0, len(bs))
	for n := range bs {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		all = append(all, bs[n]...)
	}
	return paged(all, r), nil
}

// paged is the page of all that r asks for (items [] past the end).
func paged[T any](all []T, r pageRequest) Page[T] {
	p := Page[T]{Total: len(all), Offset: r.Offset, Limit: r.Limit, Items: []T{}}
	if r.Offset < len(all) {
		p.Items = all[r.Offset:min(len(all), r.Offset+r.Limit)]
	}
	return p
}

// DeadItem is one dead letter as DLQ.LIST shows it.
type DeadItem struct {
	ID          string            `json:"id"`
	Topic       string            `json:"topic"`
	MessageType string            `json:"messageType"`
	Group       string            `json:"groupId"`
	Publisher   string            `json:"publishGroup"`
	Reason      string            `json:"reason"`
	At          int64             `json:"at"`
	Created     int64             `json:"created"`
	Properties  map[string]string `json:"properties,omitempty"`
	Body        []byte            `json:"body"`
}

// listDead serves $KQ.ADMIN.DLQ.LIST.
func (s *Server) listDead(ctx context.Context, body []byte) (Page[DeadItem], error) {
	r, err := parsePageRequest(body)
	if err != nil {
		return Page[DeadItem]{}, err
	}
	if r.Topic == "" || r.Group == "" {
		return Page[DeadItem]{}, kqerr.New(kqerr.BadRequest, nil, "DLQ.LIST needs topic and groupId")
	}
	dls, total, err := s.b.DeadLetters(ctx, r.Topic, r.Group, r.Offset, r.Limit)
	if err != nil {
		return Page[DeadItem]{}, err
	}
	items := make([]DeadItem, 0, len(dls))
	for _, d := range dls {
		m := d.Message
		it := DeadItem{ID: m.ID, Topic: m.Topic, MessageType: m.MessageType, Group: d.Group, Publisher: m.Group,
			Reason: d.Reason, At: d.At.Unix(), Created: m.Created.Unix(), Body: m.Body}
		for _, p := range m.Properties {
			if it.Properties == nil {
				it.Properties = make(map[string]string)
			}
			it.Properties[p.Key] = p.Value
		}
		items = append(items, it)
	}
	return Page[DeadItem]{Total: total, Offset: r.Offset, Limit: r.Limit, Items: items}, nil
}

// replay serves $KQ.ADMIN.DLQ.REPLAY: it re-queues one dead letter for its
// group only.
func (s *Server) replay(body []byte) (ReplayedReply, error) {
	r, err := parsePageRequest(body)
	if err != nil {
		return ReplayedReply{}, err
	}
	if r.Topic == "" || r.Group == "" || r.ID == "" {
		return ReplayedReply{}, kqerr.New(kqerr.BadRequest, nil, "DLQ.REPLAY needs topic, id and groupId")
	}
	if err := s.b.Replay(r.Topic, r.ID, r.Group); err != nil {
		return ReplayedReply{}, err
	}
	return ReplayedReply{Replayed: true}, nil
}
