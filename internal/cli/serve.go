package cli

import (
	"context"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/kitenats/kitenats/config"
	"github.com/kitenats/kitenats/daemon"
)

// Serve is `kitenats [serve]`: it runs the daemon until SIGINT or SIGTERM.
// The first signal interrupts start-up (a ZooKeeper or MySQL that does not
// answer) or shuts the daemon down in order; a second one forces exit.
func Serve(args []string) (err error) {
	// The flags are read twice: first to learn where the logs go, then with
	// that logger, so that the config file's notes are in the log file too.
	cfg, err := config.Parse(args, slog.New(slog.DiscardHandler))
	if err != nil {
		return err
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

	d, err := daemon.New(ctx, cfg, log)
	if err != nil {
		return err
	}
	err = d.Run(ctx)
	log.Info("kitenats stopped")
	return err
}
