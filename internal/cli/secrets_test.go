package cli

import (
	"context"
	"log/slog"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/kitenats/kitenats/config"
	"github.com/kitenats/kitenats/daemon"
)

// TestCLISecretsMode: with group secrets configured, the admin calls of
// stat, dlq and tx (under $KQ.ADMIN, replies on the admin's inbox prefix)
// and a group's pub (its ack on the group's inbox prefix) work (issue #16).
func TestCLISecretsMode(t *testing.T) {
	cfg := config.Default()
	cfg.NATS, cfg.Bind, cfg.AdminPort, cfg.DB = "127.0.0.1:0", "off", -1, "memory://"
	cfg.Secrets, cfg.AdminSecret = map[string]string{"p-cli": "p4ss"}, "root"
	d, stop, err := daemon.Start(context.Background(), cfg, slog.New(slog.DiscardHandler))
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, stop()) })
	url := d.ClientURL()

	admin := []string{"-s", url, "-user", "admin", "-password", "root"}
	require.NoError(t, Stat(admin))
	require.NoError(t, DLQ(append(admin, "-topic", "trade", "-group", "s-cli")))
	require.NoError(t, Tx(admin))
	require.ErrorContains(t, Tx(append(admin, "-commit", "0123456789abcdef0123456789abcdef", "-topic", "trade", "-group", "p-cli")), "409")
	require.NoError(t, Pub([]string{"-s", url, "-user", "p-cli", "-password", "p4ss", "trade", "pay", "x"}))
	require.Error(t, Stat([]string{"-s", url, "-user", "p-cli", "-password", "p4ss"}), "a group makes no admin call")
}
