//go:build integration

package integration

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/require"
)

// TestIntegrationTxSurvivesKill prepares transactional messages, kills the
// broker with SIGKILL, restarts it and checks that they are still prepared
// (delivered to nobody), then resolves them three ways after the restart:
// commit and rollback over $KQ.API.TX, and commit through a check-back
// answered by a producer that only comes back after the restart. Consumers
// get exactly the committed messages, once each.
func TestIntegrationTxSurvivesKill(t *testing.T) {
	for _, sm := range storeModes {
		t.Run(sm.name, func(t *testing.T) { testTxSurvivesKill(t, sm.uri(t)) })
	}
}

func testTxSurvivesKill(t *testing.T, uri string) {
	cfg := filepath.Join(t.TempDir(), "kitenats.toml")
	require.NoError(t, os.WriteFile(cfg, []byte(`[clusters.default_dev]
txFirstCheck = "1s"
txCheckInterval = "300ms"
txMaxChecks = 1000
`), 0o600))
	b := NewBroker(t, uri)
	b.Args = []string{"-configPath", cfg}
	b.Start()
	const group, producer = "s-tx", "p-tx"
	bind := []binding{{Topic: "tx", MessageType: "pay", BindType: "direct", Persistent: true}}
	c := startConsumer(t, b.URL(), consumerConfig{Group: group, Bindings: bind})

	nc, err := nats.Connect(b.URL(), nats.UserInfo(producer, ""))
	require.NoError(t, err)
	var ids []string
	for range 15 {
		id := newID()
		msg, err := nc.RequestMsg(&nats.Msg{Subject: "kq.tx.pay", Header: nats.Header{
			"Kq-Tx": {"prepare"}, "Kq-Msg-Id": {id}, "Kq-Group": {producer}}, Data: []byte(id)}, 5*time.Second)
		require.NoError(t, err)
		var ack pubAck
		require.NoError(t, json.Unmarshal(msg.Data, &ack), string(msg.Data))
		require.Nil(t, ack.Error, string(msg.Data))
		ids = append(ids, id)
	}
	nc.Close()
	c.Close()
	b.Kill()
	b.Start()

	prepared := func() int {
		nc, err := nats.Connect(b.URL(), nats.NoReconnect())
		require.NoError(t, err)
		defer nc.Close()
		msg, err := nc.Request("$KQ.ADMIN.TX.LIST", []byte(`{"limit":1000}`), 5*time.Second)
		require.NoError(t, err)
		var page struct{ Total int }
		require.NoError(t, json.Unmarshal(msg.Data, &page), string(msg.Data))
		return page.Total
	}
	require.Equal(t, 15, prepared(), "every prepared message survives kill -9")
	c2 := startConsumer(t, b.URL(), consumerConfig{Group: group})
	time.Sleep(300 * time.Millisecond) // a window in which nothing may arrive
	require.Empty(t, c2.Seen(), "a prepared message is delivered to nobody")

	commit, rollback, checked := ids[:5], ids[5:10], ids[10:]
	api, err := nats.Connect(b.URL(), nats.UserInfo(producer, ""))
	require.NoError(t, err)
	defer api.Close()
	resolve := func(id, action string) {
		body, _ := json.Marshal(map[string]string{"topic": "tx", "id": id, "action": action})
		msg, err := api.Request("$KQ.API.TX."+producer, body, 5*time.Second)
		require.NoError(t, err)
		require.NotContains(t, string(msg.Data), `"error"`, "%s %s", action, id)
	}
	for _, id := range commit {
		resolve(id, "commit")
	}
	for _, id := range rollback {
		resolve(id, "rollback")
	}
	// The producer comes back and answers check-backs: commit.
	_, err = api.QueueSubscribe("$KQ.TXCHECK."+producer, producer, func(m *nats.Msg) { _ = m.Respond([]byte("commit")) })
	require.NoError(t, err)
	require.NoError(t, api.Flush())

	want := map[string]bool{}
	for _, id := range append(append([]string{}, commit...), checked...) {
		want[id] = true
	}
	waitFor(t, 20*time.Second, func() bool { return len(c2.Seen()) >= len(want) }, "%d committed deliveries", len(want))
	c2.Drain(time.Second, time.Second, 5*time.Second)
	for id, n := range c2.Seen() {
		require.True(t, want[id], "delivered %s, which was rolled back or never committed", id)
		require.Equal(t, 1, n, "%s delivered %d times", id, n)
	}
	require.Len(t, c2.Seen(), len(want))
	require.Zero(t, prepared(), "everything is decided")
	t.Logf("%s: 15 prepared survived kill -9; 5 committed and 5 rolled back over the API, 5 committed by check-back; %d delivered once each", uri, len(c2.Seen()))
}
