package rocksdb

import (
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"slices"
	"time"
)

// Durability says when a Write is durable; see doc.go for what each mode
// survives.
type Durability uint8

const (
	// Async writes the WAL to the OS before Write returns and syncs it every
	// SyncInterval: it survives a process crash, not a power loss. Default.
	Async Durability = iota
	// Sync syncs the WAL once per Write (one fsync per group-committed
	// batch) before Write returns: it survives a power loss.
	Sync
)

// String returns "async" or "sync", the spelling of the URI parameter.
func (d Durability) String() string {
	switch d {
	case Async:
		return "async"
	case Sync:
		return "sync"
	default:
		return fmt.Sprintf("Durability(%d)", uint8(d))
	}
}

// MarshalText implements encoding.TextMarshaler.
func (d Durability) MarshalText() ([]byte, error) {
	if d != Async && d != Sync {
		return nil, fmt.Errorf("rocksdb: invalid durability %d", uint8(d))
	}
	return []byte(d.String()), nil
}

// UnmarshalText implements encoding.TextUnmarshaler; it accepts "async"
// and "sync".
func (d *Durability) UnmarshalText(b []byte) error {
	switch string(b) {
	case "async":
		*d = Async
	case "sync":
		*d = Sync
	default:
		return fmt.Errorf("rocksdb: unknown durability %q (want async or sync)", b)
	}
	return nil
}

// Config configures a Store.
type Config struct {
	// Dir is the RocksDB directory, created if missing. Required.
	Dir string
	// Durability is Async (default) or Sync.
	Durability Durability
	// SyncInterval is how often the WAL is synced in Async mode. Default 1s.
	SyncInterval time.Duration
	// BlockCacheSize is the size in bytes of the LRU block cache. Default
	// 64 MiB.
	BlockCacheSize int64
	// WriteBufferSize is the size in bytes of one memtable. Default 64 MiB.
	WriteBufferSize int64
	// JournalSegmentSize is the size in bytes at which the journal starts a
	// new segment: the message records still held in memory then move to
	// RocksDB, which is flushed, and the old segments are deleted. It bounds
	// the journal on disk (about twice this) and the replay at Open; the
	// records held in memory move to RocksDB at a quarter of it. Default
	// 64 MiB.
	JournalSegmentSize int64
	// Logger receives lifecycle events and WAL sync failures. Default: a
	// discard logger.
	Logger *slog.Logger
	// ObserveSync, if not nil, is told how long each fdatasync of the
	// journal took: one per Write in Sync mode, one per SyncInterval that
	// had writes in Async mode (not the syncs of a segment's start, end or
	// Close). It is called with the journal's lock held and must not
	// block. nil: nothing is timed.
	ObserveSync func(d time.Duration)

	// noFlushOnClose (tests) makes Close leave RocksDB's memtables
	// unflushed, losing what a crash loses: the writes since the last
	// flush, which only the journal then has.
	noFlushOnClose bool
}

const (
	defaultSyncInterval    = time.Second
	defaultBlockCacheSize  = 64 << 20
	defaultWriteBufferSize = 64 << 20
	defaultSegmentSize     = 64 << 20
)

// DefaultConfig returns a Config with every default set and Dir "./data".
func DefaultConfig() Config {
	c := Config{Dir: "./data"}
	c.setDefaults()
	return c
}

func (c *Config) setDefaults() {
	if c.SyncInterval == 0 {
		c.SyncInterval = defaultSyncInterval
	}
	if c.BlockCacheSize == 0 {
		c.BlockCacheSize = defaultBlockCacheSize
	}
	if c.WriteBufferSize == 0 {
		c.WriteBufferSize = defaultWriteBufferSize
	}
	if c.JournalSegmentSize == 0 {
		c.JournalSegmentSize = defaultSegmentSize
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
}

// Validate reports the first invalid field. Zero values that have a
// default are valid.
func (c Config) Validate() error {
	switch {
	case c.Dir == "":
		return errors.New("rocksdb: config: Dir is required")
	case c.Durability != Async && c.Durability != Sync:
		return fmt.Errorf("rocksdb: config: invalid Durability %d", uint8(c.Durability))
	case c.SyncInterval < 0:
		return fmt.Errorf("rocksdb: config: negative SyncInterval %v", c.SyncInterval)
	case c.BlockCacheSize < 0:
		return fmt.Errorf("rocksdb: config: negative BlockCacheSize %d", c.BlockCacheSize)
	case c.WriteBufferSize < 0:
		return fmt.Errorf("rocksdb: config: negative WriteBufferSize %d", c.WriteBufferSize)
	case c.JournalSegmentSize < 0:
		return fmt.Errorf("rocksdb: config: negative JournalSegmentSize %d", c.JournalSegmentSize)
	}
	return nil
}

// URI parameters understood by ParseURI.
const (
	paramDurability   = "durability"
	paramSyncInterval = "syncInterval"
)

// ParseURI parses a storage URI of the form KiteQ uses,
// "rocksdb://./db/" (the directory is host plus path, as KiteQ reads it),
// with optional parameters durability=async|sync and syncInterval=<Go
// duration>, e.g. "rocksdb://./data?durability=sync&syncInterval=200ms".
// An unknown parameter is an error. The result has every default set.
func ParseURI(uri string) (Config, error) {
	u, err := url.Parse(uri)
	if err != nil {
		return Config{}, fmt.Errorf("rocksdb: uri %q: %w", uri, err)
	}
	switch {
	case u.Scheme != "rocksdb":
		return Config{}, fmt.Errorf("rocksdb: uri %q: scheme must be rocksdb://", uri)
	case u.Opaque != "" || u.User != nil || u.Fragment != "":
		return Config{}, fmt.Errorf("rocksdb: uri %q: want rocksdb://<dir>[?params]", uri)
	case u.Host+u.Path == "":
		return Config{}, fmt.Errorf("rocksdb: uri %q: no directory", uri)
	}
	q, err := url.ParseQuery(u.RawQuery)
	if err != nil {
		return Config{}, fmt.Errorf("rocksdb: uri %q: %w", uri, err)
	}
	cfg := DefaultConfig()
	cfg.Dir = u.Host + u.Path
	if err := applyParams(&cfg, q); err != nil {
		return Config{}, fmt.Errorf("rocksdb: uri %q: %w", uri, err)
	}
	return cfg, cfg.Validate()
}

func applyParams(cfg *Config, q url.Values) error {
	names := make([]string, 0, len(q))
	for k := range q {
		names = append(names, k)
	}
	slices.Sort(names)
	for _, k := range names {
		if len(q[k]) != 1 {
			return fmt.Errorf("parameter %q given %d times", k, len(q[k]))
		}
		v := q[k][0]
		switch k {
		case paramDurability:
			if err := cfg.Durability.UnmarshalText([]byte(v)); err != nil {
				return err
			}
		case paramSyncInterval:
			d, err := time.ParseDuration(v)
			if err != nil || d <= 0 {
				return fmt.Errorf("%s %q: want a positive duration such as 200ms", k, v)
			}
			cfg.SyncInterval = d
		default:
			return fmt.Errorf("unknown parameter %q (known: %s, %s)", k, paramDurability, paramSyncInterval)
		}
	}
	return nil
}
