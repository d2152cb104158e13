package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"os/signal"
	"syscall"
	"time"
)

// adopter is a shared store that can move a dead broker's messages to the
// broker it was opened as (store/mysql).
type adopter interface {
	Broker() string
	Adopt(ctx context.Context, deadBroker string, progress func(rows int64)) (int, error)
	Close() error
}

// adoptCmd moves the messages of a dead broker to a surviving one on a
// shared mysql:// store: the survivor's Due scans then find them, and it
// delivers them, while it runs. The dead broker must be stopped for good.
func adoptCmd(args []string) error {
	return adopt(args, os.Stdout)
}

func adopt(args []string, out io.Writer) error {
	fs := flag.NewFlagSet("kitenats adopt", flag.ContinueOnError)
	db := fs.String("db", "", "the shared store, mysql://…; its broker=NAME (default: this host's name) is the broker that takes the messages over")
	from := fs.String("from", "", "name of the dead broker (its broker= in its -db) whose messages, delivery states, checks and dead letters move")
	timeout := fs.Duration("timeout", time.Hour, "give up after this long (what moved stays moved; run it again to finish)")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: kitenats adopt -db 'mysql://host:port?db=kite&…&broker=SURVIVOR' -from DEAD")
		fmt.Fprintln(fs.Output(), "Moves every message of broker DEAD to broker SURVIVOR, which delivers them while it runs.")
		fmt.Fprintln(fs.Output(), "DEAD must be stopped for good: a broker still running would deliver them too.")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	switch {
	case fs.NArg() > 0:
		return fmt.Errorf("adopt: unexpected arguments %v", fs.Args())
	case *from == "":
		return errors.New("adopt: -from names the dead broker")
	case *db == "":
		return errors.New("adopt: -db names the shared mysql:// store")
	}
	// Only a shared store has other brokers' messages; opening any other
	// kind would only lock it (rocksdb) or make an empty one (memory).
	if u, err := url.Parse(*db); err != nil || u.Scheme != "mysql" {
		return fmt.Errorf("adopt: %q is not a mysql:// store: only a store shared by several brokers has messages to adopt", *db)
	}
	st, err := openStore(*db, slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})))
	if err != nil {
		return fmt.Errorf("adopt: %w", err)
	}
	ad, ok := st.(adopter)
	if !ok {
		_ = st.Close()
		return fmt.Errorf("adopt: the store of %q cannot adopt", *db)
	}
	defer func() { _ = ad.Close() }()
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()

	fmt.Fprintf(out, "moving the messages of broker %q to broker %q\n", *from, ad.Broker())
	start := time.Now()
	var shown time.Time
	n, err := ad.Adopt(ctx, *from, func(rows int64) {
		if time.Since(shown) < 100*time.Millisecond {
			return // one line, rewritten ten times a second at most
		}
		shown = time.Now()
		fmt.Fprintf(out, "\r%d rows moved (%s)", rows, time.Since(start).Round(time.Millisecond))
	})
	fmt.Fprintln(out)
	if err != nil {
		return fmt.Errorf("adopt: %w (what moved stays moved: run it again to finish)", err)
	}
	fmt.Fprintf(out, "%d messages of %q now belong to %q (%s)\n", n, *from, ad.Broker(), time.Since(start).Round(time.Millisecond))
	return nil
}
