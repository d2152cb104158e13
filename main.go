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
// main picks the subcommand and calls it: the daemon is package daemon,
// its configuration package config, the subcommands internal/cli and
// internal/bench.
package main

import (
	"errors"
	"flag"
	"fmt"
	"os"

	"github.com/kitenats/kitenats/internal/bench"
	"github.com/kitenats/kitenats/internal/cli"
)

// commands are the subcommands; serve is the default.
var commands = map[string]func(args []string) error{
	"serve": cli.Serve,
	"pub":   cli.Pub,
	"sub":   cli.Sub,
	"bench": bench.Run,
	"stat":  cli.Stat,
	"dlq":   cli.DLQ,
	"tx":    cli.Tx,
	"adopt": cli.Adopt,
}

func main() {
	if err := run(os.Args[1:]); err != nil && !errors.Is(err, flag.ErrHelp) {
		fmt.Fprintln(os.Stderr, "kitenats:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	name := "serve"
	if len(args) > 0 && args[0] != "" && args[0][0] != '-' {
		name, args = args[0], args[1:]
	}
	if name == "help" {
		fmt.Println("usage: kitenats [serve|pub|sub|bench|stat|dlq|tx|adopt] [flags]; kitenats CMD -h for the flags")
		return nil
	}
	cmd, ok := commands[name]
	if !ok {
		return fmt.Errorf("unknown command %q (want serve, pub, sub, bench, stat, dlq, tx or adopt)", name)
	}
	return cmd(args)
}
