package natsproto

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kitenats/kitenats/kqerr"
	"github.com/kitenats/kitenats/semantics"
	"github.com/kitenats/kitenats/store"
)

// listTx is semantics.Transactions whose List returns items.
type listTx struct {
	fakeTx
	items []semantics.PreparedTx
}

func (l listTx) List(context.Context, int, int) (int, []semantics.PreparedTx, error) {
	return len(l.items), l.items, nil
}

// TestListRepliesBytes pins the JSON of BINDINGS.LIST and TX.LIST replies.
func TestListRepliesBytes(t *testing.T) {
	h := newHarness(t, nil)
	require.Equal(t, `{"total":0,"offset":0,"limit":100,"items":[]}`, string(h.api("BINDINGS.LIST", "")))
	h.bind("s-trade", dlv, 1, "", direct("trade", "pay", true), direct("trade", "refund", false))
	h.bind("s-a", "$KQ.DLV.s-a.1", 1, "", direct("trade", "pay", true))
	require.Equal(t, `{"total":3,"offset":1,"limit":1,"items":[`+
		`{"groupId":"s-trade","topic":"trade","messageType":"pay","bindType":0,"version":"1.0.0","watermark":0,"persistent":true}]}`,
		string(h.api("BINDINGS.LIST", `{"offset":1,"limit":1}`)))
	require.Equal(t, `{"total":3,"offset":5,"limit":100,"items":[]}`, string(h.api("BINDINGS.LIST", `{"offset":5}`)))

	h = newHarness(t, func(c *semantics.Config) {
		c.Transactions = listTx{items: []semantics.PreparedTx{{Topic: "trade", ID: "m1", MessageType: "pay", Group: "p-trade",
			Created: 1700000000, AgeSeconds: 5, Checks: 2, NextCheck: 1700000060}}}
	})
	require.Equal(t, `{"total":1,"offset":0,"limit":10,"items":[`+
		`{"topic":"trade","id":"m1","messageType":"pay","groupId":"p-trade","created":1700000000,"ageSeconds":5,"checks":2,"nextCheck":1700000060}]}`,
		string(h.admin("TX.LIST", `{"limit":10}`)))
	h = newHarness(t, func(c *semantics.Config) { c.Transactions = listTx{items: []semantics.PreparedTx{}} })
	require.Equal(t, `{"total":0,"offset":0,"limit":100,"items":[]}`, string(h.admin("TX.LIST", "")))
}

// TestCallRepliesBytes pins the JSON of the other calls' typed replies:
// the bytes the maps they replaced encoded to.
func TestCallRepliesBytes(t *testing.T) {
	h := newHarness(t, func(c *semantics.Config) { c.Transactions = fakeTx{} })
	h.loc[dlv] = []uint64{1}
	bind := string(h.api("BIND.s-trade", `{"deliver":"`+dlv+`","bindings":[`+direct("trade", "pay", true)+`]}`))
	require.Regexp(t, `^\{"consumer":"[0-9a-f]{16}"\}$`, bind)
	id := bind[len(`{"consumer":"`) : len(bind)-2]
	require.Equal(t, `{"deleted":true}`, string(h.api("CONSUMER.DELETE.s-trade", `{"consumer":"`+id+`"}`)))
	require.Equal(t, `{"deleted":true}`, string(h.api("BINDINGS.DELETE.s-trade", `{"topic":"trade","messageType":"pay"}`)))
	require.Equal(t, `{"action":"commit","id":"0123456789abcdef0123456789abcdef"}`,
		string(h.api("TX.p-trade", `{"topic":"trade","id":"0123456789abcdef0123456789abcdef","action":"commit"}`)))
	// A replay of what is not a dead letter is a 409 (it answered
	// replayed:true before); of a dead letter, replayed:true.
	replay := `{"topic":"trade","groupId":"s-trade","id":"0123456789abcdef0123456789abcdef"}`
	require.Equal(t, `{"error":{"code":409,"err_code":14009,"description":"kq: trade/0123456789abcdef0123456789abcdef is not a dead letter of s-trade"}}`,
		string(h.api("DLQ.REPLAY", replay)))
	dead := &store.Message{Topic: "trade", ID: "0123456789abcdef0123456789abcdef", MessageType: "pay", Body: []byte("x"),
		Created: t0, Expires: t0.Add(time.Hour), DeliverLimit: 1, Groups: []store.GroupState{{Group: "s-trade", NextAttempt: t0}}}
	_, err := h.st.Write(context.Background(), &store.Batch{Saves: []*store.Message{dead},
		Updates: []store.Update{{Op: store.OpDead, Topic: "trade", ID: dead.ID, Group: "s-trade", Reason: "test"}}})
	require.NoError(t, err)
	require.Equal(t, `{"replayed":true}`, string(h.api("DLQ.REPLAY", replay)))
}

// recordTx is semantics.Transactions that records who resolves what:
// "any" for Resolve, the group for ResolveAs.
type recordTx struct {
	fakeTx
	calls *[]string
}

func (r recordTx) Resolve(_ context.Context, topic, id string, commit bool) error {
	*r.calls = append(*r.calls, fmt.Sprintf("any %s/%s %v", topic, id, commit))
	return nil
}

func (r recordTx) ResolveAs(_ context.Context, group, topic, id string, commit bool) error {
	*r.calls = append(*r.calls, fmt.Sprintf("%s %s/%s %v", group, topic, id, commit))
	if group != "p-trade" {
		return kqerr.New(kqerr.Forbidden, nil, "not yours")
	}
	return nil
}

// TestAPIRoutesGroupAndAdminCalls: $KQ.API.<verb>.<G> is always a call as
// group G (TX.<G> resolves as G, even for a group named LIST), the admin
// calls are under $KQ.ADMIN (TX there resolves any group's message), and
// the legacy admin subjects other than TX.LIST are still served under
// $KQ.API (issue #16).
func TestAPIRoutesGroupAndAdminCalls(t *testing.T) {
	var calls []string
	h := newHarness(t, func(c *semantics.Config) { c.Transactions = recordTx{calls: &calls} })
	const id = "0123456789abcdef0123456789abcdef"
	body := `{"topic":"trade","id":"` + id + `","action":"commit"}`
	require.Equal(t, `{"action":"commit","id":"`+id+`"}`, string(h.api("TX.p-trade", body)))
	require.Equal(t, 403, errCode(t, h.api("TX.s-trade", body)))
	require.Equal(t, 403, errCode(t, h.api("TX.LIST", body)), "TX.LIST under $KQ.API is TX as the group LIST")
	require.Equal(t, 400, errCode(t, h.api("TX.LIST", `{"limit":10}`)), "no longer a listing")
	require.Contains(t, string(h.api("TX.LIST", `{}`)), "$KQ.ADMIN.TX.LIST")
	require.Equal(t, `{"action":"commit","id":"`+id+`"}`, string(h.admin("TX", body)))
	require.Equal(t, []string{"p-trade trade/" + id + " true", "s-trade trade/" + id + " true", "LIST trade/" + id + " true",
		"any trade/" + id + " true"}, calls)

	for _, call := range []string{"STAT", "BINDINGS.LIST", "TX.LIST"} {
		require.Zero(t, errCode(t, h.admin(call, "")), call)
	}
	for _, call := range []string{"STAT", "BINDINGS.LIST"} {
		require.Zero(t, errCode(t, h.api(call, "")), "legacy $KQ.API.%s", call)
	}
	require.Equal(t, 400, errCode(t, h.admin("DLQ.LIST", "")))
	require.Equal(t, 400, errCode(t, h.api("DLQ.LIST", "")), "legacy, served as the admin call")
	require.Equal(t, 404, errCode(t, h.admin("BIND.p-trade", "{}")), "group verbs are not admin calls")
	require.Equal(t, 404, errCode(t, h.admin("NOPE", "")))
	require.Equal(t, 404, errCode(t, h.api("NOPE.x", "")))
}
