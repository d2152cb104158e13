package main

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestCLIPubStatDLQTx(t *testing.T) {
	url := startBroker(t, nil)
	_, ch := consume(t, url, "s-cli", `{"topic":"trade","messageType":"pay","persistent":true}`, "")
	require.NoError(t, pubCmd([]string{"-s", url, "-group", "p-cli", "-H", "order=42", "-limit", "3", "trade", "pay", "hello"}))
	m := recv(t, ch)
	require.Equal(t, "hello", string(m.Data))
	require.Equal(t, "42", m.Header.Get("order"))
	require.Equal(t, "p-cli", m.Header.Get("Kq-Group"))
	require.Equal(t, "3", m.Header.Get("Kq-Deliver-Limit"))
	require.NoError(t, m.Ack())

	require.ErrorContains(t, pubCmd([]string{"-s", url, "-limit", "500", "trade", "pay", "x"}), "1..100")
	require.Error(t, pubCmd([]string{"-s", url, "trade", "pay"}), "three arguments")
	require.Error(t, pubCmd([]string{"-s", url, "-H", "novalue", "trade", "pay", "x"}))
	require.NoError(t, statCmd([]string{"-s", url}))
	require.NoError(t, dlqCmd([]string{"-s", url, "-topic", "trade", "-group", "s-cli"}))
	require.Error(t, dlqCmd([]string{"-s", url}), "-topic and -group are required")
	require.NoError(t, txCmd([]string{"-s", url}))
	require.ErrorContains(t, txCmd([]string{"-s", url, "-commit", "0123456789abcdef0123456789abcdef", "-topic", "trade", "-group", "p-cli"}), "409")
	require.Error(t, subCmd([]string{"-s", url, "-group", "s-cli"}), "-topic is required")
}
