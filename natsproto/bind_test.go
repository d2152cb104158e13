package natsproto

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/kitenats/kitenats/registry"
	"github.com/kitenats/kitenats/semantics"
)

func TestBindIdempotentPerGroupAndDeliver(t *testing.T) {
	h := newHarness(t, nil)
	a := h.bind("s-trade", dlv, 1, "", direct("trade", "pay", true))
	require.Equal(t, a, h.bind("s-trade", dlv, 1, "", direct("trade", "pay", true)), "the same BIND again: the same consumer")
	require.Len(t, h.stat().Consumers, 1)
	// The same deliver subject held by a new connection (a reconnect)
	// replaces the consumer.
	b := h.bind("s-trade", dlv, 2, "")
	require.NotEqual(t, a, b)
	require.Len(t, h.stat().Consumers, 1)
	require.Equal(t, []registry.Binding{{GroupID: "s-trade", Topic: "trade", MessageType: "pay", Version: "1.0.0", Persistent: true}},
		h.keeper.kept["s-trade"], "bindings are kept durably, once")
}

func TestBindRefusals(t *testing.T) {
	h := newHarness(t, func(c *semantics.Config) { c.Topics = []string{"trade"} })
	call := func(group, body string) int {
		return errCode(t, h.api("BIND."+group, body))
	}
	h.loc[dlv] = []uint64{1}
	h.loc["$KQ.DLV.s-trade.two"] = []uint64{1, 2}
	ok := `[{"topic":"trade","messageType":"pay","persistent":true}]`
	require.Equal(t, 409, call("s-trade", `{"deliver":"$KQ.DLV.s-trade.none","bindings":`+ok+`}`), "nobody holds it")
	require.Equal(t, 409, call("s-trade", `{"deliver":"$KQ.DLV.s-trade.two","bindings":`+ok+`}`), "two hold it")
	require.Equal(t, 400, call("s-trade", `{"deliver":"$KQ.DLV.s-other.x","bindings":`+ok+`}`), "another group's deliver subject")
	require.Equal(t, 400, call("s-trade", `{"deliver":"$KQ.DLV.s-trade.>","bindings":`+ok+`}`), "a wildcard")
	require.Equal(t, 400, call("s-trade", `not json`))
	require.Equal(t, 400, call("s-trade", `{"deliver":"`+dlv+`","warmingupSec":9223372036854775807,"bindings":`+ok+`}`),
		"a warmup past a day (MaxInt64 seconds would overflow into no ramp at all)")
	require.Equal(t, 400, call("s-trade", `{"deliver":"`+dlv+`","warmingupSec":86401,"bindings":`+ok+`}`))
	require.Equal(t, 400, call("s-trade", `{"deliver":"`+dlv+`","bindings":[{"topic":"trade","messageType":"(","bindType":"regx"}]}`))
	require.Equal(t, 404, call("s-trade", `{"deliver":"`+dlv+`","bindings":[{"topic":"user","messageType":"a"}]}`))
	require.Zero(t, call("s-trade", `{"deliver":"`+dlv+`","bindings":`+ok+`}`))
	require.Equal(t, 409, call("s-trade", `{"deliver":"`+dlv+`","bindings":[{"topic":"trade","messageType":"pay","persistent":false}]}`), "conflict")
	require.Equal(t, 409, call("s-trade", `{"deliver":"`+dlv+`","bindings":[{"topic":"trade","bindType":"fanout"}]}`), "a fanout stands alone")

	h.keeper.err = registry.ErrStatic
	require.Equal(t, 409, call("s-trade", `{"deliver":"`+dlv+`","bindings":[{"topic":"trade","messageType":"refund"}]}`), "static bindings")
	require.Zero(t, call("s-trade", `{"deliver":"`+dlv+`","bindings":`+ok+`}`), "nothing new: no write needed")
}

func TestBindingsListAndDelete(t *testing.T) {
	h := newHarness(t, nil)
	h.bind("s-trade", dlv, 1, "", direct("trade", "pay", true), direct("trade", "refund", false))
	var p struct {
		Total int
		Items []registry.Binding
	}
	require.NoError(t, json.Unmarshal(h.api("BINDINGS.LIST", ""), &p))
	require.Equal(t, 2, p.Total)
	h.publish("kq.trade.refund", nil, "before")
	require.Len(t, h.deliveries(dlv), 1, "bound: delivered (and the match remembered)")
	require.Zero(t, errCode(t, h.api("BINDINGS.DELETE.s-trade", `{"topic":"trade","messageType":"refund"}`)))
	require.Equal(t, 404, errCode(t, h.api("BINDINGS.DELETE.s-trade", `{"topic":"trade","messageType":"refund"}`)))
	h.publish("kq.trade.refund", nil, "x")
	require.Empty(t, h.deliveries(dlv), "the deleted binding no longer matches")
	require.Equal(t, 404, errCode(t, h.api("NOPE", "")))
}
