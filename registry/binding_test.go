package registry_test

import (
	"encoding/json"
	"errors"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/kitenats/kitenats/registry"
)

func TestRegistryBindingMatches(t *testing.T) {
	tests := []struct {
		b           registry.Binding
		topic, mt   string
		wantMatches bool
	}{
		{registry.Binding{Topic: "trade", MessageType: "pay-succ", BindType: registry.Direct}, "trade", "pay-succ", true},
		{registry.Binding{Topic: "trade", MessageType: "pay-succ", BindType: registry.Direct}, "trade", "Pay-succ", false},
		{registry.Binding{Topic: "trade", MessageType: "pay-succ", BindType: registry.Direct}, "user", "pay-succ", false},
		{registry.Binding{Topic: "trade", MessageType: "pay", BindType: registry.Regx}, "trade", "xxpayxx", true},
		{registry.Binding{Topic: "trade", MessageType: `pay-\d+`, BindType: registry.Regx}, "trade", "pay-200", true},
		{registry.Binding{Topic: "trade", MessageType: `^pay$`, BindType: registry.Regx}, "trade", "pay-200", false},
		{registry.Binding{Topic: "trade", MessageType: "pay-.*", BindType: registry.Regx}, "feed", "pay-1", false},
		{registry.Binding{Topic: "trade", MessageType: "(", BindType: registry.Regx}, "trade", "(", false},
		{registry.Binding{Topic: "trade", MessageType: "*", BindType: registry.Fanout}, "trade", "anything", true},
		{registry.Binding{Topic: "trade", MessageType: "*", BindType: registry.Fanout}, "feed", "anything", false},
	}
	for _, tt := range tests {
		got := registry.Compile(tt.b).Matches(tt.topic, tt.mt)
		require.Equal(t, tt.wantMatches, got, "%+v on %s/%s", tt.b, tt.topic, tt.mt)
	}
}

func TestRegistryBindingConflict(t *testing.T) {
	d := func(mt string, persistent bool, wm int32) registry.Binding {
		return registry.Binding{GroupID: "s", Topic: "trade", MessageType: mt, BindType: registry.Direct, Persistent: persistent, Watermark: wm}
	}
	rx := func(p string) registry.Binding {
		return registry.Binding{GroupID: "s", Topic: "trade", MessageType: p, BindType: registry.Regx}
	}
	fan := registry.Binding{GroupID: "s", Topic: "trade", MessageType: "*", BindType: registry.Fanout}
	tests := []struct {
		name     string
		existing []registry.Binding
		b        registry.Binding
		dup      bool
		conflict bool
	}{
		{"first", nil, d("a", true, 0), false, false},
		{"identical is a no-op", []registry.Binding{d("a", true, 0)}, d("a", true, 0), true, false},
		{"another direct", []registry.Binding{d("a", true, 0)}, d("b", false, 10), false, false},
		{"direct other persistent", []registry.Binding{d("a", true, 0)}, d("a", false, 0), false, true},
		{"direct other watermark", []registry.Binding{d("a", true, 0)}, d("a", true, 5), false, true},
		{"second regx", []registry.Binding{rx("a.*")}, rx("b.*"), false, true},
		{"same regx", []registry.Binding{rx("a.*")}, rx("a.*"), true, false},
		{"regx matches new direct", []registry.Binding{rx("pay")}, d("xpayx", true, 0), false, true},
		{"regx misses new direct", []registry.Binding{rx("^pay$")}, d("refund", true, 0), false, false},
		{"new regx matches direct", []registry.Binding{d("pay-1", true, 0)}, rx(`pay-\d`), false, true},
		{"existing fanout", []registry.Binding{fan}, d("a", true, 0), false, true},
		{"new fanout", []registry.Binding{d("a", true, 0)}, fan, false, true},
		{"same fanout", []registry.Binding{fan}, fan, true, false},
		{"other topic is free", []registry.Binding{fan}, registry.Binding{GroupID: "s", Topic: "user", MessageType: "a"}, false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dup, err := registry.Conflict(tt.existing, tt.b)
			require.Equal(t, tt.dup, dup)
			if tt.conflict {
				require.True(t, errors.Is(err, registry.ErrConflict), "want conflict, got %v", err)
			} else {
				require.NoError(t, err)
			}
		})
	}
}

// TestRegistryBindingJSON pins KiteQ's JSON form (kiteq-protocol.md §6.1).
func TestRegistryBindingJSON(t *testing.T) {
	const golden = `[{"groupId":"s-trade-a","topic":"trade","messageType":"pay-200","bindType":0,"version":"1.0.0","watermark":1000,"persistent":true},` +
		`{"groupId":"s-trade-b","topic":"trade","messageType":"pay-\\d+","bindType":1,"version":"1.0.0","watermark":0,"persistent":false},` +
		`{"groupId":"s-trade-c","topic":"trade","messageType":"*","bindType":2,"version":"1.0.0","watermark":-1,"persistent":true}]`
	bs, err := registry.UnmarshalBindings([]byte(golden))
	require.NoError(t, err)
	require.Len(t, bs, 3)
	require.Equal(t, registry.Regx, bs[1].BindType)
	require.Equal(t, `pay-\d+`, bs[1].MessageType)
	require.Equal(t, int32(-1), bs[2].Watermark)
	out, err := registry.MarshalBindings(bs)
	require.NoError(t, err)
	require.JSONEq(t, golden, string(out))
	require.Equal(t, golden, string(out), "byte-exact, field order included")

	var named registry.Binding
	require.NoError(t, json.Unmarshal([]byte(`{"bindType":"Fanout"}`), &named))
	require.Equal(t, registry.Fanout, named.BindType)
	require.Error(t, json.Unmarshal([]byte(`{"bindType":"topic"}`), &named))
}

func TestRegistryKiteQWatermark(t *testing.T) {
	for in, want := range map[int32]int32{-1: 6000, 0: 6000, 1: 1, 6000: 6000, 8000: 6000} {
		require.Equal(t, want, registry.KiteQWatermark(in), "in %d", in)
	}
}

func TestRegistryBindingValidate(t *testing.T) {
	ok := registry.Binding{GroupID: "g", Topic: "t", MessageType: "m"}
	require.NoError(t, ok.Validate())
	for _, b := range []registry.Binding{
		{Topic: "t", MessageType: "m"},
		{GroupID: "g", MessageType: "m"},
		{GroupID: "g", Topic: "t"},
		{GroupID: "g", Topic: "t", MessageType: "(", BindType: registry.Regx},
		{GroupID: "g", Topic: "t", MessageType: "m", BindType: 7},
		{GroupID: "g", Topic: "t", MessageType: "m", Watermark: -1},
	} {
		require.Error(t, b.Validate(), "%+v", b)
	}
}

func FuzzBindingMatch(f *testing.F) {
	f.Add("pay", "xxpayxx", uint8(1))
	f.Add("pay-succ", "pay-succ", uint8(0))
	f.Add("*", "x", uint8(2))
	f.Add("(", "(", uint8(1))
	f.Fuzz(func(t *testing.T, pattern, mt string, kind uint8) {
		b := registry.Binding{Topic: "t", MessageType: pattern, BindType: registry.BindType(kind % 3)}
		m := registry.Compile(b)
		got := m.Matches("t", mt)
		if m.Matches("other", mt) {
			t.Fatal("matched another topic")
		}
		switch b.BindType {
		case registry.Direct:
			if got != (pattern == mt) {
				t.Fatalf("direct %q vs %q: %v", pattern, mt, got)
			}
		case registry.Fanout:
			if !got {
				t.Fatal("fanout missed")
			}
		}
	})
}
