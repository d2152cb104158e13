// Command kitenats is a KiteQ-compatible message broker with a NATS face.
//
// Usage:
//
//	kitenats [COMMAND] [flags] [arguments]
//
// `kitenats -h` lists the commands (serve, the default, pub, sub, bench,
// stat, dlq, tx, adopt, help), `kitenats CMD -h` shows one's arguments,
// flags and examples.
//
// main holds the command table and calls the subcommand: the daemon is
// package daemon, its configuration package config, the subcommands
// internal/cli and internal/bench.
package main

import (
	"errors"
	"flag"
	"fmt"
	"os"

	"github.com/kitenats/kitenats/internal/bench"
	"github.com/kitenats/kitenats/internal/cli"
)

// commands are the subcommands in the order `kitenats help` lists them;
// serve is the default. help is cli.Dispatch's own.
var commands = []cli.Command{
	{Name: "serve", Summary: "run the broker (the default command)", Run: cli.Serve},
	{Name: "pub", Summary: "publish one message and print the broker's ack", Run: cli.Pub},
	{Name: "sub", Summary: "bind a consumer group and print each delivery, headers and body", Run: cli.Sub},
	{Name: "bench", Summary: "measure the broker's throughput and latency (--compare: against JetStream and core NATS)", Run: bench.Run},
	{Name: "stat", Summary: "print a running broker's counters ($KQ.ADMIN.STAT)", Run: cli.Stat},
	{Name: "dlq", Summary: "list a group's dead letters, or replay one", Run: cli.DLQ},
	{Name: "tx", Summary: "list prepared (two-phase) messages, or commit or roll one back", Run: cli.Tx},
	{Name: "adopt", Summary: "move a dead broker's messages to a survivor (shared MySQL store)", Run: cli.Adopt},
}

func main() {
	if err := run(os.Args[1:]); err != nil && !errors.Is(err, flag.ErrHelp) {
		fmt.Fprintln(os.Stderr, "kitenats:", err)
		os.Exit(1)
	}
}

func run(args []string) error { return cli.Dispatch(commands, args, os.Stdout) }
