package cli

import (
	"context"
	"encoding/json"
	"log/slog"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/require"

	"github.com/kitenats/kitenats/config"
	"github.com/kitenats/kitenats/daemon"
)

// startBroker runs a daemon on random 127.0.0.1 ports with the memory
// store until the test ends, and returns its NATS URL.
func startBroker(t *testing.T) string {
	t.Helper()
	cfg := config.Default()
	cfg.NATS, cfg.Bind, cfg.AdminPort, cfg.DB = "127.0.0.1:0", "off", -1, "memory://"
	d, stop, err := daemon.Start(context.Background(), cfg, slog.New(slog.DiscardHandler))
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, stop()) })
	return d.ClientURL()
}

// consume binds one consumer of group with bindings, as NATS-PROTOCOL.md
// §3 says, and returns the channel its deliveries arrive on.
func consume(t *testing.T, url, group, bindings string) chan *nats.Msg {
	t.Helper()
	nc, err := nats.Connect(url)
	require.NoError(t, err)
	t.Cleanup(nc.Close)
	ch := make(chan *nats.Msg, 100)
	deliver := "$KQ.DLV." + group + ".cli-test"
	_, err = nc.ChanSubscribe(deliver, ch)
	require.NoError(t, err)
	msg, err := nc.Request("$KQ.API.BIND."+group, []byte(`{"deliver":"`+deliver+`","bindings":[`+bindings+`]}`), 5*time.Second)
	require.NoError(t, err)
	var r struct {
		Consumer string          `json:"consumer"`
		Error    json.RawMessage `json:"error"`
	}
	require.NoError(t, json.Unmarshal(msg.Data, &r))
	require.Empty(t, r.Error, string(msg.Data))
	require.NotEmpty(t, r.Consumer)
	return ch
}

func recv(t *testing.T, ch chan *nats.Msg) *nats.Msg {
	t.Helper()
	select {
	case m := <-ch:
		return m
	case <-time.After(5 * time.Second):
		t.Fatal("no delivery within 5s")
		return nil
	}
}

func TestCLIPubStatDLQTx(t *testing.T) {
	url := startBroker(t)
	ch := consume(t, url, "s-cli", `{"topic":"trade","messageType":"pay","persistent":true}`)
	require.NoError(t, Pub([]string{"-s", url, "-group", "p-cli", "-H", "order=42", "-limit", "3", "trade", "pay", "hello"}))
	m := recv(t, ch)
	require.Equal(t, "hello", string(m.Data))
	require.Equal(t, "42", m.Header.Get("order"))
	require.Equal(t, "p-cli", m.Header.Get("Kq-Group"))
	require.Equal(t, "3", m.Header.Get("Kq-Deliver-Limit"))
	require.NoError(t, m.Ack())

	require.ErrorContains(t, Pub([]string{"-s", url, "-limit", "500", "trade", "pay", "x"}), "1..100")
	require.Error(t, Pub([]string{"-s", url, "trade", "pay"}), "three arguments")
	require.Error(t, Pub([]string{"-s", url, "-H", "novalue", "trade", "pay", "x"}))
	require.NoError(t, Stat([]string{"-s", url}))
	require.NoError(t, DLQ([]string{"-s", url, "-topic", "trade", "-group", "s-cli"}))
	require.Error(t, DLQ([]string{"-s", url}), "-topic and -group are required")
	require.NoError(t, Tx([]string{"-s", url}))
	require.ErrorContains(t, Tx([]string{"-s", url, "-commit", "0123456789abcdef0123456789abcdef", "-topic", "trade", "-group", "p-cli"}), "409")
	require.Error(t, Sub([]string{"-s", url, "-group", "s-cli"}), "-topic is required")
}
