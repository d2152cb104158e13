package natsproto

import (
	"context"
	"encoding/json"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kitenats/kitenats/semantics"
)

const dlv = "$KQ.DLV.s-trade.x1"

func TestDispatchPublishAckDeliverAck(t *testing.T) {
	h := newHarness(t, nil)
	h.bind("s-trade", dlv, 1, "", direct("trade", "pay-succ", true))
	reply := h.publish("kq.trade.pay-succ", map[string][]string{"Order": {"42"}}, "hello")
	var ack PubAck
	require.NoError(t, json.Unmarshal(reply, &ack), string(reply))
	require.Equal(t, "trade", ack.Stream)
	require.NotZero(t, ack.Seq)
	require.Len(t, ack.ID, 32)

	ds := h.deliveries(dlv)
	require.Len(t, ds, 1)
	d := ds[0]
	require.Equal(t, "hello", string(d.Data))
	require.Equal(t, ack.ID, d.Header[HdrMsgID][0])
	require.Equal(t, "trade", d.Header[HdrTopic][0])
	require.Equal(t, "pay-succ", d.Header[HdrMessageType][0])
	require.Equal(t, "1", d.Header[HdrDeliverCount][0])
	require.Equal(t, "42", d.Header["Order"][0])
	require.Regexp(t, `^\$KQ\.ACK\.s-trade\.b1\.[0-9a-f]+\.[0-9a-f]{20}$`, d.Reply)
	require.Equal(t, int64(1), h.groupStat("trade", "s-trade").Pending)

	require.Empty(t, h.ack(d, "+ACK"))
	require.Zero(t, h.groupStat("trade", "s-trade").Pending)
	require.Zero(t, h.groupStat("trade", "s-trade").Inflight)
}

func TestDispatchTwoGroupsEachGetACopy(t *testing.T) {
	h := newHarness(t, nil)
	h.bind("s-a", "$KQ.DLV.s-a.1", 1, "", direct("trade", "pay", true))
	h.bind("s-b", "$KQ.DLV.s-b.1", 2, "", `{"topic":"trade","messageType":"p.y","bindType":"regx","persistent":true}`)
	h.bind("s-c", "$KQ.DLV.s-c.1", 3, "", `{"topic":"trade","bindType":"fanout","persistent":true}`)
	h.bind("s-d", "$KQ.DLV.s-d.1", 4, "", direct("trade", "refund", true))
	h.publish("kq.trade.pay", nil, "x")
	require.Len(t, h.deliveries("$KQ.DLV.s-a."), 1)
	require.Len(t, h.deliveries("$KQ.DLV.s-b."), 1)
	require.Len(t, h.deliveries("$KQ.DLV.s-c."), 1)
	require.Empty(t, h.deliveries("$KQ.DLV.s-d."))
}

func TestDispatchOneRandomConsumerPerGroup(t *testing.T) {
	h := newHarness(t, nil)
	h.bind("s-trade", "$KQ.DLV.s-trade.a", 1, "", direct("trade", "pay", true))
	h.bind("s-trade", "$KQ.DLV.s-trade.b", 2, "")
	for i := 0; i < 200; i++ {
		h.publish("kq.trade.pay", nil, "x")
	}
	a, b := len(h.deliveries("$KQ.DLV.s-trade.a")), len(h.deliveries("$KQ.DLV.s-trade.b"))
	require.Equal(t, 200, a+b, "each message once per group")
	require.InDelta(t, 100, a, 30, "spread at random")
}

func TestRedeliveryNakFollowsKiteQSchedule(t *testing.T) {
	h := newHarness(t, nil)
	h.bind("s-trade", dlv, 1, "", direct("trade", "pay", true))
	h.publish("kq.trade.pay", nil, "x")
	// Attempts 1..3 fail and are retried at once (kiteq-protocol.md §5.4).
	for attempt := 1; attempt <= 3; attempt++ {
		ds := h.deliveries(dlv)
		require.Len(t, ds, 1, "attempt %d", attempt)
		require.Equal(t, strconv.Itoa(attempt), ds[0].Header[HdrDeliverCount][0])
		require.Empty(t, h.ack(ds[0], "-NAK"))
	}
	ds := h.deliveries(dlv)
	require.Len(t, ds, 1)
	require.Equal(t, "4", ds[0].Header[HdrDeliverCount][0])
	h.ack(ds[0], "-NAK")
	// After the 4th failure the next attempt waits 5 s.
	require.Empty(t, h.deliveries(dlv))
	h.clk.Advance(4900 * time.Millisecond)
	h.tick()
	require.Empty(t, h.deliveries(dlv))
	h.clk.Advance(100 * time.Millisecond)
	h.tick()
	ds = h.deliveries(dlv)
	require.Len(t, ds, 1)
	require.Equal(t, "5", ds[0].Header[HdrDeliverCount][0])
}

func TestRedeliveryNakDelayIsHonoured(t *testing.T) {
	h := newHarness(t, nil)
	h.bind("s-trade", dlv, 1, "", direct("trade", "pay", true))
	h.publish("kq.trade.pay", nil, "x")
	h.ack(h.deliveries(dlv)[0], `-NAK {"delay":3000000000}`)
	h.clk.Advance(2 * time.Second)
	h.tick()
	require.Empty(t, h.deliveries(dlv))
	h.clk.Advance(time.Second)
	h.tick()
	require.Len(t, h.deliveries(dlv), 1)
}

func TestRedeliveryAckWaitTimeout(t *testing.T) {
	h := newHarness(t, nil)
	h.bind("s-trade", dlv, 1, `,"ackWait":2000000000`, direct("trade", "pay", true))
	h.publish("kq.trade.pay", nil, "x")
	d := h.deliveries(dlv)[0]
	h.clk.Advance(1 * time.Second)
	h.tick()
	require.Empty(t, h.deliveries(dlv))
	require.Empty(t, h.ack(d, "+WPI"), "in progress restarts the timer")
	h.clk.Advance(1500 * time.Millisecond)
	h.tick()
	require.Empty(t, h.deliveries(dlv))
	h.clk.Advance(600 * time.Millisecond)
	h.tick()
	ds := h.deliveries(dlv)
	require.Len(t, ds, 1, "no ack within ackWait is a failure")
	require.Equal(t, "2", ds[0].Header[HdrDeliverCount][0])
	require.Equal(t, 409, errCode(t, h.ack(d, "+ACK")), "the old delivery id is stale")
}

func TestRedeliveryDeliverLimitEndsInDeadLetters(t *testing.T) {
	h := newHarness(t, nil)
	h.bind("s-trade", dlv, 1, "", direct("trade", "pay", true))
	h.publish("kq.trade.pay", map[string][]string{HdrDeliverLimit: {"2"}}, "x")
	h.ack(h.deliveries(dlv)[0], "-NAK")
	h.ack(h.deliveries(dlv)[0], "-NAK")
	require.Empty(t, h.deliveries(dlv))
	gs := h.groupStat("trade", "s-trade")
	require.Zero(t, gs.Pending)
	require.Equal(t, int64(1), gs.Dead)

	var p struct {
		Total int
		Items []DeadItem
	}
	require.NoError(t, json.Unmarshal(h.api("DLQ.LIST", `{"topic":"trade","groupId":"s-trade"}`), &p))
	require.Equal(t, 1, p.Total)
	require.Equal(t, "deliver limit reached", p.Items[0].Reason)
	require.Equal(t, "x", string(p.Items[0].Body))

	// Replay re-queues it for the group.
	require.Zero(t, errCode(t, h.api("DLQ.REPLAY", `{"topic":"trade","groupId":"s-trade","id":"`+p.Items[0].ID+`"}`)))
	h.tick()
	ds := h.deliveries(dlv)
	require.Len(t, ds, 1)
	require.Equal(t, "1", ds[0].Header[HdrDeliverCount][0])
}

func TestRedeliveryExpiryEndsInDeadLetters(t *testing.T) {
	h := newHarness(t, nil)
	h.bind("s-trade", dlv, 1, "", direct("trade", "pay", true))
	h.publish("kq.trade.pay", map[string][]string{HdrNatsTTL: {"10s"}}, "x")
	for i := 0; i < 4; i++ {
		h.ack(h.deliveries(dlv)[0], "-NAK")
	}
	h.clk.Advance(10 * time.Second)
	h.tick()
	require.Empty(t, h.deliveries(dlv))
	require.Equal(t, int64(1), h.groupStat("trade", "s-trade").Dead)
}

func TestAckTermAndStaleIDs(t *testing.T) {
	h := newHarness(t, nil)
	h.bind("s-trade", dlv, 1, "", direct("trade", "pay", true))
	h.publish("kq.trade.pay", nil, "x")
	d := h.deliveries(dlv)[0]
	require.Equal(t, 400, errCode(t, h.ack(d, "+NXT")), "unknown payloads change nothing")
	require.Empty(t, h.ack(d, "+TERM poison"))
	require.Empty(t, h.ack(d, "+TERM poison"), "the same terminal reply gets the same answer")
	require.Equal(t, 409, errCode(t, h.ack(d, "+ACK")), "another reply on a used id")
	require.Equal(t, 409, errCode(t, h.ack(&Msg{Reply: "$KQ.ACK.s-trade.b1.nope.0123"}, "+ACK")))
	gs := h.groupStat("trade", "s-trade")
	require.Equal(t, int64(1), gs.Dead)
	require.Zero(t, gs.Pending)
}

func TestAckSameTerminalTwiceAndWrongConsumer(t *testing.T) {
	h := newHarness(t, nil)
	h.bind("s-trade", dlv, 1, "", direct("trade", "pay", true))
	h.publish("kq.trade.pay", nil, "x")
	d := h.deliveries(dlv)[0]
	forged := &Msg{Reply: d.Reply[:len("$KQ.ACK.s-trade.b1.")] + "someoneelse" + d.Reply[len(d.Reply)-21:]}
	require.Equal(t, 409, errCode(t, h.ack(forged, "+ACK")))
	require.Equal(t, int64(1), h.groupStat("trade", "s-trade").Inflight, "a forged ack changes nothing")
	require.Empty(t, h.ack(d, "+ACK"))
	require.Empty(t, h.ack(d, "+ACK"), "AckSync retried after a lost reply")
	require.Equal(t, 409, errCode(t, h.ack(d, "-NAK")))
}

func TestDispatchPersistentCollectsNonPersistentDrops(t *testing.T) {
	h := newHarness(t, nil)
	c1 := h.bind("s-keep", "$KQ.DLV.s-keep.1", 1, "", direct("trade", "pay", true))
	c2 := h.bind("s-drop", "$KQ.DLV.s-drop.1", 2, "", direct("trade", "pay", false))
	require.True(t, h.b.Leave("s-keep", c1))
	require.True(t, h.b.Leave("s-drop", c2))
	h.publish("kq.trade.pay", nil, "x")
	require.Equal(t, int64(1), h.groupStat("trade", "s-keep").Pending)
	require.Zero(t, h.groupStat("trade", "s-drop").Pending)

	h.bind("s-keep", "$KQ.DLV.s-keep.2", 3, "")
	h.bind("s-drop", "$KQ.DLV.s-drop.2", 4, "")
	h.tick()
	require.Len(t, h.deliveries("$KQ.DLV.s-keep.2"), 1, "collected while offline")
	require.Empty(t, h.deliveries("$KQ.DLV.s-drop.2"))
}

func TestDispatchMaxInflight(t *testing.T) {
	h := newHarness(t, nil)
	h.bind("s-trade", dlv, 1, `,"maxInflight":2`, direct("trade", "pay", true))
	for i := 0; i < 5; i++ {
		h.publish("kq.trade.pay", nil, strconv.Itoa(i))
	}
	ds := h.deliveries(dlv)
	require.Len(t, ds, 2)
	h.tick()
	require.Empty(t, h.deliveries(dlv), "still full")
	h.ack(ds[0], "+ACK")
	h.tick()
	require.Len(t, h.deliveries(dlv), 1)
	require.Equal(t, int64(4), h.groupStat("trade", "s-trade").Pending)
}

func TestWarmupRampShowsInDeliveryCounts(t *testing.T) {
	h := newHarness(t, nil)
	h.bind("s-trade", "$KQ.DLV.s-trade.old", 1, "", direct("trade", "pay", true))
	h.clk.Advance(time.Minute)
	h.bind("s-trade", "$KQ.DLV.s-trade.new", 2, `,"warmingupSec":10`)
	count := func() (int, int) {
		for i := 0; i < 400; i++ {
			h.publish("kq.trade.pay", nil, "x")
		}
		return len(h.deliveries("$KQ.DLV.s-trade.old")), len(h.deliveries("$KQ.DLV.s-trade.new"))
	}
	_, early := count()
	h.clk.Advance(5 * time.Second)
	_, mid := count()
	h.clk.Advance(5 * time.Second)
	_, warm := count()
	require.Less(t, early, 20, "≈1 %% of choices at connect")
	require.Greater(t, mid, early)
	require.Greater(t, warm, mid)
	require.InDelta(t, 200, warm, 40, "an even share once warm")
}

func TestWatermarkLimitsDeliveriesPerSecond(t *testing.T) {
	h := newHarness(t, nil)
	h.bind("s-trade", dlv, 1, "", `{"topic":"trade","messageType":"pay","persistent":true,"watermark":10}`)
	for i := 0; i < 30; i++ {
		h.publish("kq.trade.pay", nil, "x")
	}
	require.Len(t, h.deliveries(dlv), 5, "burst is half the watermark")
	h.clk.Advance(time.Second)
	h.tick()
	require.Len(t, h.deliveries(dlv), 5, "the bucket holds at most the burst")
	h.clk.Advance(500 * time.Millisecond)
	h.tick()
	require.Len(t, h.deliveries(dlv), 5)
	require.Equal(t, int64(30), h.groupStat("trade", "s-trade").Pending, "deferred, not failed: no attempts used")
}

func TestAcceptLimit(t *testing.T) {
	h := newHarness(t, func(c *semantics.Config) { c.AcceptRate = 10 })
	for i := 0; i < 5; i++ {
		require.Zero(t, errCode(t, h.publish("kq.trade.pay", nil, "x")))
	}
	require.Equal(t, 429, errCode(t, h.publish("kq.trade.pay", nil, "x")))
	h.clk.Advance(time.Second)
	require.Zero(t, errCode(t, h.publish("kq.trade.pay", nil, "x")))
	require.Equal(t, int64(1), h.stat().Refused)
}

func TestFlyMessagesAreNotStored(t *testing.T) {
	h := newHarness(t, nil)
	h.bind("s-trade", dlv, 1, "", direct("trade", "pay", true))
	h.publish("kq.trade.pay", map[string][]string{HdrFly: {"true"}}, "x")
	require.Zero(t, h.groupStat("trade", "s-trade").Pending)
	for i := 1; i <= 3; i++ {
		ds := h.deliveries(dlv)
		require.Len(t, ds, 1, "attempt %d", i)
		h.ack(ds[0], "-NAK")
	}
	require.Empty(t, h.deliveries(dlv), "at most 3 attempts")
}

func TestTapRepublishes(t *testing.T) {
	h := newHarness(t, nil)
	h.publish("kq.trade.pay%2Esucc", nil, "x")
	taps := h.tr.take("$KQ.TAP.")
	require.Len(t, taps, 1)
	require.Equal(t, "$KQ.TAP.trade.pay%2Esucc", taps[0].Subject)
	require.Empty(t, taps[0].Reply)
}

// pubAck decodes a publish reply that must be an ack.
func pubAck(t *testing.T, reply []byte) PubAck {
	t.Helper()
	require.Zero(t, errCode(t, reply), string(reply))
	var a PubAck
	require.NoError(t, json.Unmarshal(reply, &a), string(reply))
	require.Contains(t, string(reply), `"groups":`, "the field is always there")
	return a
}

// topicUnmatched is the unmatched count of topic's STAT row.
func (h *harness) topicUnmatched(topic string) int64 {
	for _, ts := range h.stat().Topics {
		if ts.Topic == topic {
			return ts.Unmatched
		}
	}
	return 0
}

func TestDispatchNoBindingAcksGroupsZeroAndCounts(t *testing.T) {
	h := newHarness(t, nil)
	h.bind("s-trade", dlv, 1, "", direct("trade", "pay", true))
	a := pubAck(t, h.publish("kq.trade.refund", nil, "x"))
	require.Zero(t, a.Groups)
	require.False(t, a.Duplicate)
	require.Equal(t, int64(1), h.stat().Unmatched)
	require.Equal(t, int64(1), h.topicUnmatched("trade"))
	a = pubAck(t, h.publish("kq.nobody.pay", nil, "x"))
	require.Zero(t, a.Groups)
	st := h.stat()
	require.Equal(t, int64(2), st.Unmatched)
	require.Equal(t, int64(1), h.topicUnmatched("nobody"), "a topic with nothing stored has a row")
	require.Equal(t, int64(2), st.Published, "accepted all the same")
	require.Empty(t, h.deliveries(dlv))

	// A group that binds afterwards does not get it: nothing was stored.
	h.bind("s-late", "$KQ.DLV.s-late.1", 2, "", direct("nobody", "pay", true))
	h.tick()
	require.Empty(t, h.deliveries("$KQ.DLV.s-late.1"))
	require.Zero(t, h.groupStat("nobody", "s-late").Pending)

	// Only a non-persistent binding whose group has no live consumer:
	// no group takes it either.
	c := h.bind("s-drop", "$KQ.DLV.s-drop.1", 3, "", direct("trade", "drop", false))
	require.True(t, h.b.Leave("s-drop", c))
	require.Zero(t, pubAck(t, h.publish("kq.trade.drop", nil, "x")).Groups)
	require.Equal(t, int64(3), h.stat().Unmatched)
	require.Equal(t, int64(2), h.topicUnmatched("trade"))

	// Matched: not counted.
	require.Equal(t, 1, pubAck(t, h.publish("kq.trade.pay", nil, "x")).Groups)
	require.Equal(t, int64(3), h.stat().Unmatched)
	require.Len(t, h.deliveries(dlv), 1)
}

func TestDispatchPubAckCountsGroups(t *testing.T) {
	h := newHarness(t, nil)
	h.bind("s-a", "$KQ.DLV.s-a.1", 1, "", direct("trade", "pay", true))
	c := h.bind("s-b", "$KQ.DLV.s-b.1", 2, "", `{"topic":"trade","bindType":"fanout","persistent":true}`)
	h.bind("s-c", "$KQ.DLV.s-c.1", 3, "", direct("trade", "refund", true))
	require.True(t, h.b.Leave("s-b", c)) // offline but persistent: it still takes the message
	a := pubAck(t, h.publish("kq.trade.pay", map[string][]string{HdrMsgID: {strings.Repeat("a", 32)}}, "x"))
	require.Equal(t, 2, a.Groups)
	require.Zero(t, h.stat().Unmatched)

	// A duplicate took nothing new: groups 0, and it is not unmatched.
	d := pubAck(t, h.publish("kq.trade.pay", map[string][]string{HdrMsgID: {strings.Repeat("a", 32)}}, "x"))
	require.True(t, d.Duplicate)
	require.Equal(t, a.Seq, d.Seq)
	require.Zero(t, d.Groups)
	require.Zero(t, h.stat().Unmatched)

	// A fly message: the groups with a consumer to take it now.
	require.Equal(t, 1, pubAck(t, h.publish("kq.trade.pay", map[string][]string{HdrFly: {"true"}}, "x")).Groups)
	require.Zero(t, pubAck(t, h.publish("kq.trade.other", map[string][]string{HdrFly: {"true"}}, "x")).Groups)
	require.Equal(t, int64(1), h.stat().Unmatched)
}

// fakeTx is semantics.Transactions that resolves nothing.
type fakeTx struct{}

func (fakeTx) NextCheck(now time.Time) time.Time                   { return now.Add(time.Hour) }
func (fakeTx) Resolve(context.Context, string, string, bool) error { return nil }
func (fakeTx) ResolveAs(context.Context, string, string, string, bool) error {
	return nil
}
func (fakeTx) List(context.Context, int, int) (int, []semantics.PreparedTx, error) {
	return 0, nil, nil
}

func TestDispatchPreparedAckCountsGroupsOfTheCommit(t *testing.T) {
	h := newHarness(t, func(c *semantics.Config) { c.Transactions = fakeTx{} })
	h.bind("s-a", "$KQ.DLV.s-a.1", 1, "", direct("trade", "pay", true))
	h.bind("s-b", "$KQ.DLV.s-b.1", 2, "", `{"topic":"trade","bindType":"fanout","persistent":true}`)
	prepare := func(mt, id string) PubAck {
		return pubAck(t, h.publish("kq.trade."+mt, map[string][]string{HdrTx: {"prepare"}, HdrMsgID: {id}, HdrGroup: {"p-trade"}}, "x"))
	}
	require.Equal(t, 2, prepare("pay", strings.Repeat("b", 32)).Groups)
	require.Equal(t, 1, prepare("refund", strings.Repeat("c", 32)).Groups)
	require.Zero(t, h.stat().Unmatched)

	// A commit no group takes counts when it is committed, not prepared.
	require.Zero(t, errCode(t, h.api("BINDINGS.DELETE.s-b", `{"topic":"trade","messageType":"*"}`)))
	m, err := h.st.Get(context.Background(), "trade", strings.Repeat("c", 32))
	require.NoError(t, err)
	require.Zero(t, h.stat().Unmatched)
	require.NoError(t, h.b.Release(context.Background(), m))
	require.Equal(t, int64(1), h.stat().Unmatched)
	require.Equal(t, int64(1), h.topicUnmatched("trade"))
}
