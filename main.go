// Command kitenats is a KiteQ-compatible message broker with a NATS face.
//
// Usage:
//
//	kitenats [serve] [-nats ADDR] [-bind ADDR] [-pport PORT] [-db URI] [-configPath FILE -clusterName NAME]
//	kitenats pub   [-s URL] [-group G] [-id ID] [-H k=v] TOPIC TYPE BODY
//	kitenats sub   [-s URL] -group G -topic T [-type M | -regx P | -fanout] [-nak]
//	kitenats bench [flags]      measure the broker (see kitenats bench -h)
//	kitenats stat  [-s URL]     print $KQ.API.STAT
//	kitenats dlq   [-s URL] -topic T -group G [-replay ID]
//	kitenats tx    [-s URL] [list] | -commit|-rollback ID -topic T -group G
//	kitenats adopt -db mysql://…&broker=SURVIVOR -from DEAD
//
// main parses flags and config, wires the components, waits for a signal and
// shuts down in order. It holds no broker logic.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	args := os.Args[1:]
	cmd := "serve"
	if len(args) > 0 && len(args[0]) > 0 && args[0][0] != '-' {
		cmd, args = args[0], args[1:]
	}
	var err error
	switch cmd {
	case "serve":
		err = serve(args)
	case "bench":
		err = bench(args)
	case "stat":
		err = statCmd(args)
	case "dlq":
		err = dlqCmd(args)
	case "tx":
		err = txCmd(args)
	case "adopt":
		err = adoptCmd(args)
	case "pub":
		err = pubCmd(args)
	case "sub":
		err = subCmd(args)
	case "help":
		fmt.Println("usage: kitenats [serve|pub|sub|bench|stat|dlq|tx|adopt] [flags]; kitenats CMD -h for the flags")
	default:
		err = fmt.Errorf("unknown command %q (want serve, pub, sub, bench, stat, dlq, tx or adopt)", cmd)
	}
	if err != nil && !errors.Is(err, flag.ErrHelp) {
		fmt.Fprintln(os.Stderr, "kitenats:", err)
		os.Exit(1)
	}
}

// serve runs the daemon until SIGINT or SIGTERM; a second signal forces
// exit.
func serve(args []string) (err error) {
	// The flags are read twice: first to learn where the logs go, then with
	// that logger, so that the config file's notes are in the log file too.
	cfg, err := parseServeFlags(args, slog.New(slog.DiscardHandler))
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
	if cfg, err = parseServeFlags(args, log); err != nil {
		return err
	}
	d, err := newDaemon(cfg, log)
	if err != nil {
		return err
	}
	ctx, stop := context.WithCancel(context.Background())
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	defer signal.Stop(sigs)
	go func() {
		s := <-sigs
		log.Info("shutting down: draining deliveries; a second signal forces exit", "signal", s.String())
		stop()
		s = <-sigs
		log.Error("forced exit", "signal", s.String())
		os.Exit(2)
	}()
	err = d.run(ctx)
	log.Info("kitenats stopped")
	return err
}
