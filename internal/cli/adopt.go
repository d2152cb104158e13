package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/kitenats/kitenats/store/mysql"
)

// adopter is a shared store that can move a dead broker's messages to the
// broker it was opened as (store/mysql).
type adopter interface {
	Broker() string
	Adopt(ctx context.Context, deadBroker string, progress func(rows int64)) (int, error)
	Close() error
}

var adoptHelp = help{
	usage: "-db 'mysql://host:port?db=kite&…&broker=SURVIVOR' -from DEAD [-timeout D]",
	about: "Moves every message of broker DEAD on a shared MySQL store, with its delivery state, transaction\n" +
		"checks and dead letters, to broker SURVIVOR, which delivers them while it runs. DEAD must be\n" +
		"stopped for good: a broker still running would deliver them too. Interrupted, run it again.",
	examples: []string{
		"kitenats adopt -db 'mysql://db:3306?db=kite&username=root&password=secret&broker=survivor' -from dead-host",
	},
}

// Adopt is `kitenats adopt`: it moves the messages of a dead broker to a
// surviving one on a shared mysql:// store; the survivor's Due scans then
// find them, and it delivers them, while it runs. The dead broker must be
// stopped for good.
func Adopt(args []string) error {
	return adopt(args, os.Stdout)
}

func adopt(args []string, out io.Writer) error {
	fs := newFlagSet("adopt")
	db := fs.String("db", "", "the shared store, mysql://…; its broker=NAME (default: this host's name) is the broker that takes the messages over")
	from := fs.String("from", "", "name of the dead broker (its broker= in its -db) whose messages, delivery states, checks and dead letters move")
	timeout := fs.Duration("timeout", time.Hour, "give up after this long (what moved stays moved; run it again to finish)")
	if err := parseFlags(fs, adoptHelp, args, out); err != nil {
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
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	ad, err := openAdopter(ctx, *db)
	if err != nil {
		return fmt.Errorf("adopt: %w", err)
	}
	defer func() { _ = ad.Close() }()

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

// openAdopter opens the shared MySQL store uri names, as the broker its
// broker= parameter names.
func openAdopter(ctx context.Context, uri string) (adopter, error) {
	cfg, err := mysql.ParseURI(uri)
	if err != nil {
		return nil, err
	}
	cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})).With("store", "mysql")
	octx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	st, err := mysql.Open(octx, cfg)
	if err != nil {
		// Never the typed nil *mysql.Store as an adopter; and the URI,
		// password included, is the user's own: not repeated.
		return nil, fmt.Errorf("open the mysql store: %w", err)
	}
	return st, nil
}
