package daemon

import (
	"context"
	"slices"

	"github.com/kitenats/kitenats/admin"
	"github.com/kitenats/kitenats/semantics"
)

// Metrics serves the part of /metrics read from the broker's state at
// scrape time: the $KQ.ADMIN.STAT counters, with per-topic, per-(topic,
// group) and per-group series, whether the broker can serve, and the
// connections by protocol. (The histograms and the redeliveries by reason
// are in d.metrics, which the broker's packages observe into.)
func (a adminSource) Metrics(ctx context.Context) ([]admin.Metric, error) {
	st, err := a.d.broker.Stat(ctx)
	if err != nil {
		return nil, err
	}
	healthy := 1.0
	if a.Health() != nil {
		healthy = 0
	}
	var kq connCount
	if a.d.kiteq != nil {
		ks := a.d.kiteq.Stats()
		kq.open, kq.opened, kq.refused = ks.Connections, ks.Accepted, ks.Refused
	}
	nats := connCount{open: int(a.d.natsConns.Load()), opened: a.d.natsOpened.Load()}
	ms := append(statMetrics(st, healthy), connMetrics(nats, kq)...)
	if a.d.cl != nil {
		ms = append(ms, a.d.cl.metrics()...)
	}
	ms = append(ms, admin.Metric{Name: "kitenats_nats_connections_refused_total", Counter: true,
		Help:    "NATS clients refused at CONNECT, over maxConnectionsPerHost.",
		Samples: []admin.Sample{{Value: float64(a.d.br.Refused())}}})
	if a.d.kiteq != nil {
		ms = append(ms,
			admin.Metric{Name: "kitenats_kiteq_connections_refused_total", Counter: true,
				Help:    "KiteQ connections closed at accept, over kiteqMaxConnections or kiteqMaxConnectionsPerHost.",
				Samples: []admin.Sample{{Value: float64(kq.refused)}}},
			admin.Metric{Name: "kitenats_kiteq_txack_refused_total", Counter: true,
				Help:    "KiteQ TxAcks (commit or rollback) refused because they decided for another group than their connection's.",
				Samples: []admin.Sample{{Value: float64(a.d.kiteq.TxAcksRefused())}}})
	}
	return ms, nil
}

// connCount is one protocol's client connections: open now, and opened
// since start.
type connCount struct {
	open    int
	opened  uint64
	refused uint64 // KiteQ only: over the connection limits
}

// connMetrics are the connection families, by protocol: nats (clients of
// the embedded NATS server, the broker's own connections not counted) and
// kiteq (the KiteQ TCP adapter's; 0 with -bind off).
func connMetrics(nats, kiteq connCount) []admin.Metric {
	open := admin.Metric{Name: "kitenats_connections", Help: "Client connections open now, by protocol (nats, kiteq); the broker's own NATS connections are not counted."}
	opened := admin.Metric{Name: "kitenats_connections_opened_total", Counter: true, Help: "Client connections accepted since the broker started, by protocol (nats, kiteq)."}
	for _, c := range []struct {
		proto string
		n     connCount
	}{{"nats", nats}, {"kiteq", kiteq}} {
		l := []admin.Label{{Name: "protocol", Value: c.proto}}
		open.Samples = append(open.Samples, admin.Sample{Labels: l, Value: float64(c.n.open)})
		opened.Samples = append(opened.Samples, admin.Sample{Labels: l, Value: float64(c.n.opened)})
	}
	return []admin.Metric{open, opened}
}

// statMetrics turns a Stat into metric families. Consumers are counted
// per group, not listed: their ids change with every connection.
func statMetrics(st *semantics.Stat, healthy float64) []admin.Metric {
	one := func(v float64) []admin.Sample { return []admin.Sample{{Value: v}} }
	counter := func(name, help string, v int64) admin.Metric {
		return admin.Metric{Name: "kitenats_" + name, Help: help, Counter: true, Samples: one(float64(v))}
	}
	ms := []admin.Metric{
		{Name: "kitenats_healthy", Help: "1 while the broker can serve (its own NATS connections are up), else 0.", Samples: one(healthy)},
		counter("published_total", "Messages accepted for delivery: stored publishes, fly publishes and committed prepares (duplicates not counted).", st.Published),
		counter("prepares_total", "Prepared (two-phase) publishes stored.", st.Prepares),
		counter("refused_total", "Publishes answered with an error (bad input, limits, store full or failing).", st.Refused),
		counter("dropped_total", "Messages given up for a group without a delivery: a non-persistent binding with no live consumer, a fly message nobody took, a group that no longer binds a due message.", st.Dropped),
		counter("unmatched_total", "Accepted publishes (and commits) no group took: no binding matched, or only non-persistent ones of groups with no live consumer. Acked with groups 0, delivered to nobody, not even to a group that binds later.", st.Unmatched),
		counter("delivered_total", "Deliveries sent to consumers, redeliveries included.", st.Delivered),
		counter("redelivered_total", "Redeliveries (attempt 2 and later).", st.Redelivered),
		counter("acked_total", "Deliveries acknowledged with +ACK.", st.Acked),
		counter("nacked_total", "Deliveries failed with -NAK.", st.Nacked),
		counter("ack_timeouts_total", "Deliveries not acknowledged within ackWait.", st.Timeouts),
		counter("undeliverable_total", "Deliveries whose send failed (the consumer's connection gone or too slow); the message is tried again.", st.Undeliverable),
		counter("intake_dropped_total", "Publishes the NATS server dropped before the broker took them.", st.IntakeDropped),
		{Name: "kitenats_write_queue", Help: "Saves and updates waiting for the store's group commit.", Samples: one(float64(st.WriteQueue))},
	}

	topicMessages := admin.Metric{Name: "kitenats_topic_messages", Help: "Stored messages of a topic, prepared ones included."}
	topicPrepared := admin.Metric{Name: "kitenats_topic_prepared", Help: "Prepared messages of a topic, not yet committed or rolled back."}
	topicUnmatched := admin.Metric{Name: "kitenats_topic_unmatched_total", Counter: true,
		Help: "Accepted publishes of a topic no group took (kitenats_unmatched_total per topic, for the first 1024 topics that had one)."}
	for _, t := range st.Topics {
		l := []admin.Label{{Name: "topic", Value: t.Topic}}
		topicMessages.Samples = append(topicMessages.Samples, admin.Sample{Labels: l, Value: float64(t.Messages)})
		topicPrepared.Samples = append(topicPrepared.Samples, admin.Sample{Labels: l, Value: float64(t.Prepared)})
		topicUnmatched.Samples = append(topicUnmatched.Samples, admin.Sample{Labels: l, Value: float64(t.Unmatched)})
	}

	pending := admin.Metric{Name: "kitenats_group_pending", Help: "Messages of a topic a group has not acknowledged yet, in flight included."}
	inflight := admin.Metric{Name: "kitenats_group_inflight", Help: "Deliveries of a topic to a group awaiting their ack."}
	dead := admin.Metric{Name: "kitenats_group_dead", Help: "Dead letters of a topic for a group."}
	for _, g := range st.Groups {
		l := []admin.Label{{Name: "topic", Value: g.Topic}, {Name: "group", Value: g.Group}}
		pending.Samples = append(pending.Samples, admin.Sample{Labels: l, Value: float64(g.Pending)})
		inflight.Samples = append(inflight.Samples, admin.Sample{Labels: l, Value: float64(g.Inflight)})
		dead.Samples = append(dead.Samples, admin.Sample{Labels: l, Value: float64(g.Dead)})
	}

	type consumerSum struct{ n, inflight int }
	byGroup := map[string]consumerSum{}
	for _, c := range st.Consumers {
		s := byGroup[c.Group]
		s.n++
		s.inflight += c.Inflight
		byGroup[c.Group] = s
	}
	consumers := admin.Metric{Name: "kitenats_consumers", Help: "Live consumers of a group on this broker."}
	consumerInflight := admin.Metric{Name: "kitenats_consumer_inflight", Help: "Unacknowledged deliveries to the live consumers of a group."}
	groups := make([]string, 0, len(byGroup))
	for g := range byGroup {
		groups = append(groups, g)
	}
	slices.Sort(groups)
	for _, g := range groups {
		l := []admin.Label{{Name: "group", Value: g}}
		consumers.Samples = append(consumers.Samples, admin.Sample{Labels: l, Value: float64(byGroup[g].n)})
		consumerInflight.Samples = append(consumerInflight.Samples, admin.Sample{Labels: l, Value: float64(byGroup[g].inflight)})
	}
	lr := st.LimitRefusals
	limits := admin.Metric{Name: "kitenats_limit_refusals_total", Counter: true,
		Help: "API calls and joins refused over a limit (STAT's limitRefusals; NATS-PROTOCOL.md §8), by limit."}
	for _, l := range []struct {
		name string
		v    int64
	}{
		{"bindingsPerRequest", lr.BindingsPerRequest}, {"bindingsPerGroup", lr.BindingsPerGroup}, {"bindingsPerTopic", lr.BindingsPerTopic},
		{"consumersPerGroup", lr.ConsumersPerGroup}, {"consumersPerConnection", lr.ConsumersPerConn},
		{"requestBytes", lr.RequestBytes}, {"apiQueue", lr.APIQueue}, {"apiDeadline", lr.APIDeadline},
	} {
		limits.Samples = append(limits.Samples, admin.Sample{Labels: []admin.Label{{Name: "limit", Value: l.name}}, Value: float64(l.v)})
	}
	return append(ms, topicMessages, topicPrepared, topicUnmatched, pending, inflight, dead, consumers, consumerInflight, limits)
}
