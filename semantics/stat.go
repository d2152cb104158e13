package semantics

import (
	"context"
	"sort"
	"sync/atomic"
	"time"

	"github.com/kitenats/kitenats/kqerr"
	"github.com/kitenats/kitenats/store"
)

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

// Stat is the broker's state and counters: the reply of the NATS adapter's
// STAT call and of the admin HTTP /stat, whose JSON it is.
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
	// IntakeDropped counts messages lost before the broker took them
	// (Intake.Dropped: the NATS server drops them when the intake
	// subscription falls behind): fire-and-forget publishes are at most
	// once under overload.
	IntakeDropped int64 `json:"intakeDropped"`
	WriteQueue    int   `json:"writeQueue"`
	// LimitRefusals counts the calls refused over each limit (Limits, and
	// the NATS adapter's own).
	LimitRefusals LimitStat `json:"limitRefusals"`
	// Cluster is this broker's place in its cluster; absent for a broker
	// without a route listener (Config.Cluster).
	Cluster *ClusterStat `json:"cluster,omitempty"`
}

// ClusterStat is STAT's cluster section (NATS-PROTOCOL.md, STAT): the
// broker's name and route, and the brokers it has a route to now.
type ClusterStat struct {
	Name        string     `json:"name"`        // this broker's name (-name)
	ClusterName string     `json:"clusterName"` // the NATS cluster name (-cluster-name)
	Route       string     `json:"route"`       // this broker's route URL
	Peers       []PeerStat `json:"peers"`       // by name; empty when alone
}

// PeerStat is one broker this broker has a route to.
type PeerStat struct {
	Name string `json:"name"`
	ID   string `json:"id"` // its NATS server id, new at each start
	// URL is the peer's route URL, when known (this broker dialled it, or
	// the registry lists it); "" otherwise.
	URL string `json:"url,omitempty"`
	// Addr is the peer's address as seen on its oldest route connection.
	Addr  string    `json:"addr"`
	Since time.Time `json:"since"` // when its oldest route connection came up
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
	// Joined is when the consumer joined (Unix seconds), where its warmup
	// ramp starts.
	Joined int64 `json:"joined"`
	// WarmupPct is the warmup ramp's rate now (kiteq-protocol.md §8.1):
	// the percent chance the consumer is included in one choice, from 0 at
	// Joined to 100 once WarmingupSec have passed (100 without a warmup).
	WarmupPct int `json:"warmupPct"`
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
		LimitRefusals: b.limitCounts.stat(),
	}
	s.Topics = topicStats(st.Topics, b.unmatched.snapshot())
	if b.cfg.Intake != nil {
		s.IntakeDropped = b.cfg.Intake.Dropped()
	}
	rows := make(map[[2]string]*GroupStat)
	for _, g := range st.Groups {
		rows[[2]string{g.Topic, g.Group}] = &GroupStat{Topic: g.Topic, Group: g.Group, Pending: g.Pending, Dead: g.Dead}
	}
	now := b.cfg.Now()
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
			Inflight: c.inflight, MaxInflight: c.maxInflight, WarmingupSec: int(c.warmup / time.Second),
			Joined: c.authAt.Unix(), WarmupPct: warmupRate(c.authAt, c.warmup, now)})
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
	if b.cfg.Cluster != nil {
		s.Cluster = b.cfg.Cluster()
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

// DeadLetters pages through the dead letters of (topic, group): at most
// limit from offset, and how many there are.
func (b *Broker) DeadLetters(ctx context.Context, topic, group string, offset, limit int) ([]store.DeadLetter, int, error) {
	dls, total, err := b.st.DeadLetters(ctx, topic, group, offset, limit)
	if err != nil {
		return nil, 0, storeError(err)
	}
	return dls, total, nil
}

// Replay re-queues one dead letter for its group only, due at once.
func (b *Broker) Replay(topic, id, group string) error {
	if err := b.deadLetterExists(topic, id, group); err != nil {
		return err
	}
	done := make(chan error, 1)
	b.update(store.Update{Op: store.OpReplay, Topic: topic, ID: id, Group: group, Next: b.cfg.Now()}, func(err error) { done <- err })
	if err := <-done; err != nil {
		return storeError(err)
	}
	b.mu.Lock()
	b.group(group).drained = false
	b.mu.Unlock()
	b.wake()
	return nil
}

// DeleteDead discards one dead letter of group for good: it is neither
// delivered nor listed again. Deleting what is not a dead letter changes
// nothing (a delete is idempotent; a replay of it is a 409: Replay).
func (b *Broker) DeleteDead(topic, id, group string) error {
	done := make(chan error, 1)
	b.update(store.Update{Op: store.OpDiscard, Topic: topic, ID: id, Group: group}, func(err error) { done <- err })
	if err := <-done; err != nil {
		return storeError(err)
	}
	return nil
}

// deadLetterExists returns nil when id is a dead letter of group on
// topic, a 409 when it is not (NATS-PROTOCOL.md §8: replaying what is not
// a dead letter is a conflict, not a success), and a store error
// otherwise.
func (b *Broker) deadLetterExists(topic, id, group string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ok, err := b.st.HasDeadLetter(ctx, topic, group, id)
	switch {
	case err != nil:
		return storeError(err)
	case !ok:
		return kqerr.New(kqerr.Conflict, nil, "%s/%s is not a dead letter of %s", topic, id, group)
	}
	return nil
}
