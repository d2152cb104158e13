package cli

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"sync/atomic"
	"syscall"

	"github.com/kitenats/kitenats/config"
	"github.com/kitenats/kitenats/daemon"
)

var serveHelp = help{
	usage: "[-nats ADDR] [-bind ADDR|off] [-pport PORT] [-db URI] [-registry URI] [-configPath FILE [-clusterName NAME]] [-logPath DIR] [-debug] [-natsTLS] [-kiteqTLS] [-adminTLS] [-tlsCert FILE -tlsKey FILE [-tlsCA FILE] [-tlsVerifyClients]] [-name NAME] [-cluster HOST:PORT [-routes URL,…] [-cluster-name NAME] [-routeUser U -routePassword P] [-routeTLS]]",
	about: "Runs the broker until SIGINT or SIGTERM: NATS clients on -nats, KiteQ clients on -bind, admin\n" +
		"HTTP (/healthz, /metrics, /stat) on -pport, messages in the -db store. serve is the default\n" +
		"command: `kitenats -db memory://` is `kitenats serve -db memory://`. A first signal drains and\n" +
		"stops in order, a second one forces exit. SIGHUP re-reads the TLS certificate, key and CA files\n" +
		"(new connections use them; a file that does not load is logged and the old certificate kept).\n" +
		"KiteQ's flags and cluster.toml keys are accepted.",
	examples: []string{
		"kitenats                                    # NATS 127.0.0.1:4222, KiteQ 127.0.0.1:13800, admin :13801, rocksdb://./data",
		"kitenats -nats 127.0.0.1:5222 -db memory:// -bind off -pport -1",
		"kitenats -clusterName=rocksdb_dev -configPath=./conf/cluster.toml -bind=0.0.0.0:13800 -advertise=10.0.0.5:13800",
		"kitenats -natsTLS -adminTLS -tlsCert server.pem -tlsKey server-key.pem   # tls:// clients, https:// admin",
		"kitenats -name b2 -nats 127.0.0.1:4223 -bind 127.0.0.1:13810 -pport 13811 -cluster 127.0.0.1:6223 -routes nats-route://127.0.0.1:6222   # a second broker of a cluster",
	},
}

// Serve is `kitenats [serve]`: it runs the daemon until SIGINT or SIGTERM.
// The first signal interrupts start-up (a ZooKeeper or MySQL that does not
// answer) or shuts the daemon down in order; a second one forces exit.
// SIGHUP reloads the daemon's TLS files (Daemon.Reload); one that arrives
// during start-up is ignored (the files were just read).
func Serve(args []string) error { return serve(args, os.Stdout) }

func serve(args []string, out io.Writer) (err error) {
	for _, a := range args {
		if a == "--" {
			break
		}
		if isHelpFlag(a) {
			if err := serveHelp.write(out, "serve", config.PrintFlags); err != nil {
				return err
			}
			return flag.ErrHelp
		}
	}
	// The flags are read twice: first to learn where the logs go, then with
	// that logger, so that the config file's notes are in the log file too.
	cfg, err := config.Parse(args, slog.New(slog.DiscardHandler))
	if err != nil {
		return fmt.Errorf("%w (kitenats serve -h for help)", err)
	}
	out, closeLog, err := openLogOutput(cfg.LogPath)
	if err != nil {
		return err
	}
	defer func() { _ = closeLog() }()
	log := newLogger(out, cfg.LogLevel)
	if cfg.LogPath != "" {
		// main prints the error on stderr; the log file says it too.
		defer func() {
			if err != nil {
				log.Error("kitenats failed", "err", err)
			}
		}()
	}
	if cfg, err = config.Parse(args, log); err != nil {
		return err
	}

	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	defer signal.Stop(sigs)
	finished, watched := make(chan struct{}), make(chan struct{})
	defer func() { close(finished); <-watched }()
	go func() {
		defer close(watched)
		select {
		case s := <-sigs:
			log.Info("shutting down: draining deliveries; a second signal forces exit", "signal", s.String())
			stop()
		case <-finished:
			return
		}
		select {
		case s := <-sigs:
			log.Error("forced exit", "signal", s.String())
			os.Exit(2)
		case <-finished:
		}
	}()

	// SIGHUP is caught from here on (its default would end the process);
	// it reloads once the daemon exists. The goroutine is stopped and
	// waited for before serve returns.
	hups := make(chan os.Signal, 1)
	signal.Notify(hups, syscall.SIGHUP)
	defer signal.Stop(hups)
	var running atomic.Pointer[daemon.Daemon]
	hupDone, reloaded := make(chan struct{}), make(chan struct{})
	defer func() { close(hupDone); <-reloaded }()
	go func() {
		defer close(reloaded)
		for {
			select {
			case <-hups:
				d := running.Load()
				if d == nil {
					log.Info("SIGHUP during start-up: ignored (the TLS files are being read now)")
					continue
				}
				log.Info("SIGHUP: reloading the TLS files")
				_ = d.Reload() // it logs what failed
			case <-hupDone:
				return
			}
		}
	}()

	d, err := daemon.New(ctx, cfg, log)
	if err != nil {
		return err
	}
	running.Store(d)
	err = d.Run(ctx)
	log.Info("kitenats stopped")
	return err
}
