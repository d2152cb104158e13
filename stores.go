package main

import (
	"context"
	"fmt"
	"log/slog"
	"net/url"
	"strconv"
	"time"

	"github.com/kitenats/kitenats/store"
	"github.com/kitenats/kitenats/store/memory"
	"github.com/kitenats/kitenats/store/mysql"
	"github.com/kitenats/kitenats/store/rocksdb"
)

// openStore opens the store a URI names (kiteq-protocol.md §9.3 forms).
func openStore(uri string, log *slog.Logger) (store.Store, error) {
	u, err := url.Parse(uri)
	if err != nil {
		return nil, fmt.Errorf("store URI %q: %w", uri, err)
	}
	switch u.Scheme {
	case "memory":
		var cfg memory.Config
		q := u.Query()
		// KiteQ's maxcap bounds the message count; initcap is unused.
		if v := q.Get("maxcap"); v != "" {
			if cfg.MaxMessages, err = strconv.Atoi(v); err != nil || cfg.MaxMessages <= 0 {
				return nil, fmt.Errorf("store URI %q: maxcap %q is not a positive number", uri, v)
			}
		}
		if v := q.Get("maxbytes"); v != "" {
			if cfg.MaxBytes, err = strconv.ParseInt(v, 10, 64); err != nil || cfg.MaxBytes <= 0 {
				return nil, fmt.Errorf("store URI %q: maxbytes %q is not a positive number", uri, v)
			}
		}
		return memory.New(cfg), nil
	case "rocksdb":
		cfg, err := rocksdb.ParseURI(uri)
		if err != nil {
			return nil, err
		}
		cfg.Logger = log // the store adds store=rocksdb://DIR
		return rocksdb.Open(cfg)
	case "mysql":
		cfg, err := mysql.ParseURI(uri)
		if err != nil {
			return nil, err
		}
		cfg.Logger = log.With("store", "mysql")
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		return mysql.Open(ctx, cfg)
	default:
		return nil, fmt.Errorf("store URI %q: unknown scheme %q (want memory://, rocksdb:// or mysql://)", uri, u.Scheme)
	}
}
