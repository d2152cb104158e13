package semantics

import (
	"sync/atomic"

	"github.com/kitenats/kitenats/kqerr"
)

// Limits bound what one group, topic or connection may hold, so that one
// client cannot make the broker's work for everybody else grow without
// bound (issue #16). Zero fields take the defaults given; a negative one
// is no bound. Bindings read from a registry are not refused (a KiteQ
// client writes its own to ZooKeeper): the binding limits apply to BIND.
type Limits struct {
	// BindingsPerGroup bounds a group's bindings after a BIND
	// (maxBindingsPerGroup). Default 50,000.
	BindingsPerGroup int
	// BindingsPerTopic bounds every group's bindings of one topic after a
	// BIND (maxBindingsPerTopic). Default 100,000.
	BindingsPerTopic int
	// ConsumersPerGroup bounds a group's live consumers, both protocols
	// (maxConsumersPerGroup). Default 10,000.
	ConsumersPerGroup int
	// ConsumersPerConn bounds the consumers (deliver subjects) one NATS
	// connection holds (maxConsumersPerConnection). Default 1,000.
	ConsumersPerConn int
}

// The default limits.
const (
	DefaultBindingsPerGroup  = 50000
	DefaultBindingsPerTopic  = 100000
	DefaultConsumersPerGroup = 10000
	DefaultConsumersPerConn  = 1000
)

func (l *Limits) setDefaults() {
	for _, f := range []struct {
		v   *int
		def int
	}{
		{&l.BindingsPerGroup, DefaultBindingsPerGroup}, {&l.BindingsPerTopic, DefaultBindingsPerTopic},
		{&l.ConsumersPerGroup, DefaultConsumersPerGroup}, {&l.ConsumersPerConn, DefaultConsumersPerConn},
	} {
		if *f.v == 0 {
			*f.v = f.def
		}
	}
}

// over reports whether n is past limit (negative: no bound).
func over(n, limit int) bool { return limit >= 0 && n > limit }

// Limit names one limit whose refusals STAT counts (Stat.LimitRefusals).
type Limit int

// The limits. The adapter's own (request size, bindings per request, its
// API queue, a call's deadline) are counted through CountLimit.
const (
	LimitBindingsPerRequest Limit = iota
	LimitBindingsPerGroup
	LimitBindingsPerTopic
	LimitConsumersPerGroup
	LimitConsumersPerConn
	LimitRequestBytes
	LimitAPIQueue
	LimitAPIDeadline
	numLimits
)

// LimitStat counts the calls refused over each limit (STAT's
// "limitRefusals"; NATS-PROTOCOL.md §8).
type LimitStat struct {
	BindingsPerRequest int64 `json:"bindingsPerRequest"`
	BindingsPerGroup   int64 `json:"bindingsPerGroup"`
	BindingsPerTopic   int64 `json:"bindingsPerTopic"`
	ConsumersPerGroup  int64 `json:"consumersPerGroup"`
	ConsumersPerConn   int64 `json:"consumersPerConnection"`
	RequestBytes       int64 `json:"requestBytes"`
	APIQueue           int64 `json:"apiQueue"`
	APIDeadline        int64 `json:"apiDeadline"`
}

// limitCounts counts refusals per Limit.
type limitCounts [numLimits]atomic.Int64

func (c *limitCounts) stat() LimitStat {
	return LimitStat{
		BindingsPerRequest: c[LimitBindingsPerRequest].Load(), BindingsPerGroup: c[LimitBindingsPerGroup].Load(),
		BindingsPerTopic: c[LimitBindingsPerTopic].Load(), ConsumersPerGroup: c[LimitConsumersPerGroup].Load(),
		ConsumersPerConn: c[LimitConsumersPerConn].Load(), RequestBytes: c[LimitRequestBytes].Load(),
		APIQueue: c[LimitAPIQueue].Load(), APIDeadline: c[LimitAPIDeadline].Load(),
	}
}

// CountLimit counts a call an adapter refused over one of its own limits
// (Stat.LimitRefusals).
func (b *Broker) CountLimit(l Limit) {
	if l >= 0 && l < numLimits {
		b.limitCounts[l].Add(1)
	}
}

// refuse counts a refusal over l and returns it.
func (b *Broker) refuse(l Limit, code kqerr.Code, format string, args ...any) error {
	b.CountLimit(l)
	return kqerr.New(code, nil, format, args...)
}
