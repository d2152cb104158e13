package semantics

import (
	"context"
	"encoding/json"
	"sort"
	"strings"
	"sync/atomic"
	"time"

	"github.com/kitenats/kitenats/kqerr"
	"github.com/kitenats/kitenats/registry"
	"github.com/kitenats/kitenats/store"
)

// apiTimeout bounds the store and registry work of one API call.
const apiTimeout = 10 * time.Second

// handleAPI serves $KQ.API.>: every reply is a JSON object, with an error
// member on failure.
func (b *Broker) handleAPI(msg *Msg) {
	ctx, cancel := context.WithTimeout(context.Background(), apiTimeout)
	defer cancel()
	res, err := b.api(ctx, strings.TrimPrefix(msg.Subject, "$KQ.API."), msg.Data)
	if msg.Reply == "" {
		return
	}
	if err != nil {
		b.reply(msg.Reply, errorBody(err))
		return
	}
	body, err := json.Marshal(res)
	if err != nil {
		body = errorBody(kqerr.New(kqerr.Internal, err, "encoding reply"))
	}
	b.reply(msg.Reply, body)
}

// api routes one call by the subject after $KQ.API.
func (b *Broker) api(ctx context.Context, call string, body []byte) (any, error) {
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
	case call == "STAT":
		return b.Stat(ctx)
	case call == "BINDINGS.LIST":
		return b.listBindings(body)
	case call == "DLQ.LIST":
		return b.listDead(ctx, body)
	case call == "DLQ.REPLAY":
		return b.replay(body)
	case call == "TX.LIST":
		return b.listTx(ctx, body)
	case tok[0] == "TX":
		if _, err := groupAt(1); err != nil {
			return nil, err
		}
		return b.handleTx(ctx, body)
	case tok[0] == "BIND":
		g, err := groupAt(1)
		if err != nil {
			return nil, err
		}
		return b.handleBind(ctx, g, body)
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
		if !b.Leave(g, req.Consumer) {
			return nil, kqerr.New(kqerr.Conflict, nil, "unknown consumer %s of %s", req.Consumer, g)
		}
		return map[string]bool{"deleted": true}, nil
	case strings.HasPrefix(call, "BINDINGS.DELETE."):
		g, err := groupAt(2)
		if err != nil {
			return nil, err
		}
		var req bindingSpec
		if err := json.Unmarshal(body, &req); err != nil {
			return nil, kqerr.New(kqerr.BadRequest, err, "bad request: %v", err)
		}
		if err := b.RemoveBinding(ctx, g, req.Topic, req.MessageType); err != nil {
			return nil, err
		}
		return map[string]bool{"deleted": true}, nil
	}
	return nil, kqerr.New(kqerr.NotFound, nil, "unknown API call $KQ.API.%s", call)
}

// page is the shape of every list reply.
type page[T any] struct {
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

// listBindings serves $KQ.API.BINDINGS.LIST: every group's bindings, by
// group name.
func (b *Broker) listBindings(body []byte) (page[registry.Binding], error) {
	r, err := parsePageRequest(body)
	if err != nil {
		return page[registry.Binding]{}, err
	}
	var all []registry.Binding
	bs := b.Bindings()
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
func paged[T any](all []T, r pageRequest) page[T] {
	p := page[T]{Total: len(all), Offset: r.Offset, Limit: r.Limit, Items: []T{}}
	if r.Offset < len(all) {
		p.Items = all[r.Offset:min(len(all), r.Offset+r.Limit)]
	}
	return p
}

// deadItem is one dead letter as the DLQ API shows it.
type deadItem struct {
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

func (b *Broker) listDead(ctx context.Context, body []byte) (page[deadItem], error) {
	r, err := parsePageRequest(body)
	if err != nil {
		return page[deadItem]{}, err
	}
	if r.Topic == "" || r.Group == "" {
		return page[deadItem]{}, kqerr.New(kqerr.BadRequest, nil, "DLQ.LIST needs topic and groupId")
	}
	dls, total, err := b.st.DeadLetters(ctx, r.Topic, r.Group, r.Offset, r.Limit)
	if err != nil {
		return page[deadItem]{}, storeError(err)
	}
	items := make([]deadItem, 0, len(dls))
	for _, d := range dls {
		m := d.Message
		it := deadItem{ID: m.ID, Topic: m.Topic, MessageType: m.MessageType, Group: d.Group, Publisher: m.Group,
			Reason: d.Reason, At: d.At.Unix(), Created: m.Created.Unix(), Body: m.Body}
		for _, p := range m.Properties {
			if it.Properties == nil {
				it.Properties = make(map[string]string)
			}
			it.Properties[p.Key] = p.Value
		}
		items = append(items, it)
	}
	return page[deadItem]{Total: total, Offset: r.Offset, Limit: r.Limit, Items: items}, nil
}

// replay re-queues one dead letter for its group only.
func (b *Broker) replay(body []byte) (any, error) {
	r, err := parsePageRequest(body)
	if err != nil {
		return nil, err
	}
	if r.Topic == "" || r.Group == "" || r.ID == "" {
		return nil, kqerr.New(kqerr.BadRequest, nil, "DLQ.REPLAY needs topic, id and groupId")
	}
	done := make(chan error, 1)
	b.update(store.Update{Op: store.OpReplay, Topic: r.Topic, ID: r.ID, Group: r.Group, Next: b.cfg.Now()}, func(err error) { done <- err })
	if err := <-done; err != nil {
		return nil, storeError(err)
	}
	b.mu.Lock()
	b.group(r.Group).drained = false
	b.mu.Unlock()
	b.wake()
	return map[string]bool{"replayed": true}, nil
}

// counters are the broker's monotonic counts, reported by STAT.
type counters struct {
	published   atomic.Int64 // accepted publishes (and commits)
	prepared    atomic.Int64 // accepted prepares
	refused     atomic.Int64 // publishes answered with an error
	dropped     atomic.Int64 // group copies dropped (non-persistent, fly)
	unmatched   atomic.Int64 // accepted publishes (and commits) no group took
	delivered   atomic.Int64 // deliveries sent
	redelivered atomic.Int64 // deliveries after the first attempt
	acked       atomic.Int64
	nacked      atomic.Int64
	timeouts    atomic.Int64 // deliveries whose ack wait ran out
	// undeliverable counts sends the consumer's endpoint refused (a full
	// write queue): not attempts, retried after a pause.
	undeliverable atomic.Int64
}

// Stat is the reply of $KQ.API.STAT.
type Stat struct {
	Broker    string         `json:"broker"`
	Topics    []TopicStat    `json:"topics"`
	Groups    []GroupStat    `json:"groups"`
	Consumers []ConsumerStat `json:"consumers"`
	Published int64          `json:"published"`
	Prepares  int64          `json:"prepares"`
	Refused   int64          `json:"refused"`
	Dropped   int64          `json:"dropped"`
	// Unmatched counts the accepted publishes (and commits) that no group
	// took: no binding matched, or only non-persistent ones of groups with
	// no live consumer. They were acked with groups 0 and go to nobody.
	Unmatched     int64 `json:"unmatched"`
	Delivered     int64 `json:"delivered"`
	Redelivered   int64 `json:"redelivered"`
	Acked         int64 `json:"acked"`
	Nacked        int64 `json:"nacked"`
	Timeouts      int64 `json:"timeouts"`
	Undeliverable int64 `json:"undeliverable"`
	// IntakeDropped counts messages the NATS server dropped before the
	// broker took them (its intake subscription fell behind): fire-and-forget
	// publishes are at most once under overload.
	IntakeDropped int64 `json:"intakeDropped"`
	WriteQueue    int   `json:"writeQueue"`
}

// TopicStat counts the messages of one topic: the store's figures and the
// publishes no group took (Stat.Unmatched of the topic, for the first 1024
// topics that had one).
type TopicStat struct {
	store.TopicStat
	Unmatched int64 `json:"unmatched"`
}

// GroupStat counts the messages of one (topic, group).
type GroupStat struct {
	Topic    string `json:"topic"`
	Group    string `json:"groupId"`
	Pending  int64  `json:"pending"` // stored, not acknowledged (in flight included)
	Inflight int64  `json:"inflight"`
	Dead     int64  `json:"dead"`
}

// ConsumerStat describes one live consumer.
type ConsumerStat struct {
	ID           string `json:"id"`
	Group        string `json:"groupId"`
	Conn         uint64 `json:"conn,omitempty"`
	Inflight     int    `json:"inflight"`
	MaxInflight  int    `json:"maxInflight"`
	WarmingupSec int    `json:"warmingupSec"`
}

// Stat returns the broker's counters.
func (b *Broker) Stat(ctx context.Context) (*Stat, error) {
	st, err := b.st.Stats(ctx)
	if err != nil {
		return nil, storeError(err)
	}
	s := &Stat{
		Broker:    b.cfg.BrokerID,
		Published: b.counters.published.Load(), Prepares: b.counters.prepared.Load(), Refused: b.counters.refused.Load(),
		Dropped: b.counters.dropped.Load(), Unmatched: b.counters.unmatched.Load(), Delivered: b.counters.delivered.Load(),
		Redelivered: b.counters.redelivered.Load(), Acked: b.counters.acked.Load(),
		Nacked: b.counters.nacked.Load(), Timeouts: b.counters.timeouts.Load(),
		Undeliverable: b.counters.undeliverable.Load(),
		WriteQueue:    b.w.Pending(),
	}
	s.Topics = topicStats(st.Topics, b.unmatched.snapshot())
	if dc, ok := b.tr.(interface{ Dropped() int64 }); ok {
		s.IntakeDropped = dc.Dropped()
	}
	rows := make(map[[2]string]*GroupStat)
	for _, g := range st.Groups {
		rows[[2]string{g.Topic, g.Group}] = &GroupStat{Topic: g.Topic, Group: g.Group, Pending: g.Pending, Dead: g.Dead}
	}
	b.mu.Lock()
	for _, f := range b.inflight {
		k := [2]string{f.d.Message.Topic, f.d.Group}
		if rows[k] == nil {
			rows[k] = &GroupStat{Topic: k[0], Group: k[1]}
		}
		rows[k].Inflight++
	}
	for _, c := range b.consumers {
		s.Consumers = append(s.Consumers, ConsumerStat{ID: c.id, Group: c.group.name, Conn: c.conn,
			Inflight: c.inflight, MaxInflight: c.maxInflight, WarmingupSec: int(c.warmup / time.Second)})
	}
	b.mu.Unlock()
	s.Groups = []GroupStat{}
	for _, r := range rows {
		s.Groups = append(s.Groups, *r)
	}
	sort.Slice(s.Groups, func(i, j int) bool {
		a, c := s.Groups[i], s.Groups[j]
		return a.Topic < c.Topic || a.Topic == c.Topic && a.Group < c.Group
	})
	sort.Slice(s.Consumers, func(i, j int) bool { return s.Consumers[i].ID < s.Consumers[j].ID })
	if s.Consumers == nil {
		s.Consumers = []ConsumerStat{}
	}
	return s, nil
}

// topicStats joins the store's figures of each topic with its unmatched
// count, sorted by topic: a topic with only unmatched publishes has a row
// too.
func topicStats(stored []store.TopicStat, unmatched map[string]int64) []TopicStat {
	out := make([]TopicStat, 0, len(stored)+len(unmatched))
	for _, t := range stored {
		out = append(out, TopicStat{TopicStat: t, Unmatched: unmatched[t.Topic]})
		delete(unmatched, t.Topic)
	}
	for t, n := range unmatched {
		out = append(out, TopicStat{TopicStat: store.TopicStat{Topic: t}, Unmatched: n})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Topic < out[j].Topic })
	return out
}
