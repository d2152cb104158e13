package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/kitenats/kitenats/store"
	"github.com/kitenats/kitenats/store/memory"
	"github.com/kitenats/kitenats/store/mysql"
	"github.com/kitenats/kitenats/store/rocksdb"
)

// openStore opens the store a URI names (kiteq-protocol.md §9.3 forms). Its
// errors start with "open store URI" (the password masked) and say why, in
// one line. fsync, if not nil, is told how long each fsync of a RocksDB
// store's journal took.
func openStore(ctx context.Context, uri string, log *slog.Logger, fsync func(time.Duration)) (store.Store, error) {
	st, err := openStoreURI(ctx, uri, log, fsync)
	if err != nil && ctx.Err() != nil {
		err = fmt.Errorf("%w (start-up interrupted)", err)
	}
	if err != nil {
		// Never the backend's typed nil: a non-nil store.Store holding a nil
		// pointer would be closed, and panic, on the way out.
		return nil, fmt.Errorf("open store %s: %w", redactURI(uri), err)
	}
	return st, nil
}

func openStoreURI(ctx context.Context, uri string, log *slog.Logger, fsync func(time.Duration)) (store.Store, error) {
	u, err := url.Parse(uri)
	if err != nil {
		return nil, err
	}
	switch u.Scheme {
	case "memory":
		var cfg memory.Config
		q := u.Query()
		// KiteQ's maxcap bounds the message count; initcap is unused.
		if v := q.Get("maxcap"); v != "" {
			if cfg.MaxMessages, err = strconv.Atoi(v); err != nil || cfg.MaxMessages <= 0 {
				return nil, fmt.Errorf("maxcap %q is not a positive number", v)
			}
		}
		if v := q.Get("maxbytes"); v != "" {
			if cfg.MaxBytes, err = strconv.ParseInt(v, 10, 64); err != nil || cfg.MaxBytes <= 0 {
				return nil, fmt.Errorf("maxbytes %q is not a positive number", v)
			}
		}
		return memory.New(cfg), nil
	case "rocksdb":
		cfg, err := rocksdb.ParseURI(uri)
		if err != nil {
			return nil, err
		}
		cfg.Logger = log // the store adds store=rocksdb://DIR
		cfg.ObserveSync = fsync
		st, err := rocksdb.Open(cfg)
		if errors.Is(err, rocksdb.ErrLocked) {
			return nil, fmt.Errorf("%w; another kitenats may be running on %s", err, cfg.Dir)
		}
		if err != nil {
			return nil, err
		}
		return st, nil
	case "mysql":
		cfg, err := mysql.ParseURI(uri)
		if err != nil {
			return nil, err
		}
		cfg.Logger = log.With("store", "mysql")
		// A minute for MySQL to answer, and no longer than ctx.
		ctx, cancel := context.WithTimeout(ctx, time.Minute)
		defer cancel()
		st, err := mysql.Open(ctx, cfg)
		if err != nil {
			return nil, err
		}
		return st, nil
	default:
		return nil, fmt.Errorf("unknown scheme %q (want memory://, rocksdb:// or mysql://)", u.Scheme)
	}
}

// redactURI masks the value of a password= query parameter (KiteQ's MySQL
// form) so that a store URI can go into logs and errors.
func redactURI(uri string) string {
	base, query, ok := strings.Cut(uri, "?")
	if !ok {
		return uri
	}
	params := strings.Split(query, "&")
	for i, p := range params {
		if k, _, _ := strings.Cut(p, "="); strings.EqualFold(k, "password") {
			params[i] = k + "=xxxxx"
		}
	}
	return base + "?" + strings.Join(params, "&")
}
