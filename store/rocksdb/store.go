package rocksdb

import (
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/linxGnu/grocksdb"

	"github.com/kitenats/kitenats/store"
)

// ErrLocked is returned by Open, wrapped as "rocksdb: open DIR: …" with
// RocksDB's own message, when the directory's RocksDB lock (DIR/LOCK) is
// held: another process, or another Store of this one, has it open.
var ErrLocked = errors.New("directory lock held by another process")

var (
	_ store.Store        = (*Store)(nil)
	_ store.BindingStore = (*Store)(nil)
	_ store.Failer       = (*Store)(nil)
)

// Store is the RocksDB backend. It is safe for concurrent use; see doc.go
// for its locks.
type Store struct {
	cfg Config
	log *slog.Logger

	// The RocksDB handles, created by Open and freed by Close under
	// life.Lock. ro (default read options, for point reads), wo (RocksDB's
	// WAL, synced as Durability says: bindings and Open's own writes) and
	// wj (no WAL: the writes of Write, which the journal holds) are never
	// modified after Open.
	db    *grocksdb.DB
	opts  *grocksdb.Options
	bbto  *grocksdb.BlockBasedTableOptions
	cache *grocksdb.Cache
	ro    *grocksdb.ReadOptions
	wo    *grocksdb.WriteOptions
	wj    *grocksdb.WriteOptions

	jrnl *journal    // the write-ahead log of Write; see doc.go, "Journal"
	hot  *hotRecords // message records written since they last moved to RocksDB

	// life is held shared by every method while it uses db, and exclusively
	// by Close while it frees the handles. It guards closed.
	life   sync.RWMutex
	closed bool

	// writeMu serializes Write. It guards deadSeq (the last dead letter
	// sequence number given out) and swept (the dedup buckets below it are
	// already dropped).
	writeMu  sync.Mutex
	deadSeq  uint64
	swept    uint64
	deferred *deferredIndex // due keys not written yet; see deferredIndex
	filters  dedupFilters   // which dedup buckets may hold an id; guarded by writeMu
	spare    *tx            // the last Write's tx, its maps reused by the next; guarded by writeMu
	rec      []byte         // the journal record being built, reused; guarded by writeMu
	recOps   []op           // the record writes of the batch, reused; guarded by writeMu
	// failed, once set, fails every Write: a journal append or a write to
	// RocksDB failed after the record may have reached the journal, so the
	// memory and the database may disagree until a reopen replays it; or
	// the syncer's sync failed. An atomic: Failed, for /healthz, must not
	// wait for a Write.
	failed atomic.Pointer[error]

	// retired is the last journal segment whose writes RocksDB holds in
	// memtables (Write moved the records there when it rotated); the
	// retirer flushes RocksDB and deletes the segments up to it. retire
	// wakes the retirer.
	retired atomic.Uint64
	retire  chan struct{}

	counters counters // in-memory statistics; own lock
	hints    dueHints // where each group's due scan may start; own lock

	stop      chan struct{} // closed by Close: stops the WAL syncer and the retirer
	wg        sync.WaitGroup
	closeOnce sync.Once
	closeErr  error
}

// Open opens (or creates) the store in cfg.Dir, rebuilds its statistics
// with one scan, and in Async mode starts the WAL syncer that Close stops.
func Open(cfg Config) (*Store, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if err := mkdirAll(cfg.Dir); err != nil {
		return nil, fmt.Errorf("rocksdb: open: %w", err)
	}
	s := &Store{
		cfg:      cfg,
		log:      cfg.Logger.With("store", "rocksdb://"+cfg.Dir),
		hot:      newHotRecords(),
		retire:   make(chan struct{}, 1),
		deferred: newDeferredIndex(),
		filters:  newDedupFilters(),
		counters: newCounters(),
		hints:    newDueHints(),
		stop:     make(chan struct{}),
	}
	s.newOptions()
	db, err := grocksdb.OpenDb(s.opts, cfg.Dir)
	if err != nil {
		s.freeHandles()
		if isLockError(err) {
			return nil, fmt.Errorf("rocksdb: open %s: %w (%v)", cfg.Dir, ErrLocked, err)
		}
		return nil, fmt.Errorf("rocksdb: open %s: %w", cfg.Dir, err)
	}
	s.db = db
	start := time.Now()
	if err := s.load(); err != nil {
		if s.jrnl != nil {
			_ = s.jrnl.close()
		}
		s.db.Close()
		s.freeHandles()
		return nil, err
	}
	if cfg.Durability == Async {
		s.wg.Add(1)
		go s.syncLoop()
	}
	s.wg.Add(1)
	go s.retireLoop()
	s.log.Info("store opened", "durability", cfg.Durability.String(), "took", time.Since(start))
	return s, nil
}

// isLockError reports whether err is RocksDB's refusal of a held DIR/LOCK:
// "While lock file" when another process holds it (fcntl), "lock hold by
// current process" when this one does (PosixFileSystem::LockFile).
func isLockError(err error) bool {
	msg := err.Error()
	return strings.Contains(msg, "While lock file") || strings.Contains(msg, "lock hold by current process")
}

// newOptions creates the RocksDB options: a bloom filter (most point reads,
// the dedup checks, miss), an LRU block cache and the memtable size.
func (s *Store) newOptions() {
	s.cache = grocksdb.NewLRUCache(uint64(s.cfg.BlockCacheSize))
	s.bbto = grocksdb.NewDefaultBlockBasedTableOptions()
	s.bbto.SetBlockCache(s.cache)
	s.bbto.SetFilterPolicy(grocksdb.NewBloomFilterFull(10)) // owned by bbto from here on
	s.opts = grocksdb.NewDefaultOptions()
	s.opts.SetCreateIfMissing(true)
	s.opts.SetBlockBasedTableFactory(s.bbto)
	s.opts.SetWriteBufferSize(uint64(s.cfg.WriteBufferSize))
	s.opts.SetMemTablePrefixBloomSizeRatio(0.05)
	s.opts.SetMemtableWholeKeyFiltering(true)
	s.opts.SetKeepLogFileNum(4)
	if s.cfg.noFlushOnClose {
		o, err := grocksdb.GetOptionsFromString(s.opts, "avoid_flush_during_shutdown=true")
		if err != nil {
			panic(err) // a constant option string
		}
		s.opts.Destroy()
		s.opts = o
	}
	s.ro = grocksdb.NewDefaultReadOptions()
	s.wo = grocksdb.NewDefaultWriteOptions()
	s.wo.SetSync(s.cfg.Durability == Sync)
	s.wj = grocksdb.NewDefaultWriteOptions()
	s.wj.DisableWAL(true)
}

// freeHandles frees every handle but the DB. caller must hold life.Lock
// (or own s exclusively, as Open does).
func (s *Store) freeHandles() {
	s.ro.Destroy()
	s.wo.Destroy()
	s.wj.Destroy()
	s.opts.Destroy()
	s.bbto.Destroy()
	s.cache.Destroy()
}

// load checks the format version and rebuilds the in-memory state.
func (s *Store) load() error {
	v, err := s.db.GetBytes(s.ro, metaKey())
	switch {
	case err != nil:
		return fmt.Errorf("rocksdb: open: read format: %w", err)
	case v == nil:
		if err := s.db.Put(s.wo, metaKey(), []byte(strconv.Itoa(formatVersion))); err != nil {
			return fmt.Errorf("rocksdb: open: write format: %w", err)
		}
	case string(v) == "1":
		if err := s.migrateV1(); err != nil {
			return fmt.Errorf("rocksdb: open %s: migrate format 1: %w", s.cfg.Dir, err)
		}
	case string(v) == "2":
		// Format 2 is format 3 without a journal: only the version moves.
		if err := s.db.Put(s.wo, metaKey(), []byte(strconv.Itoa(formatVersion))); err != nil {
			return fmt.Errorf("rocksdb: open %s: migrate format 2: %w", s.cfg.Dir, err)
		}
	case string(v) != strconv.Itoa(formatVersion):
		return fmt.Errorf("rocksdb: open %s: format version %q, want %d (or 1 or 2, migrated)", s.cfg.Dir, v, formatVersion)
	}
	if err := s.replay(); err != nil {
		return err
	}
	if err := s.rebuild(); err != nil {
		return err
	}
	return s.loadDedupFilters()
}

// syncLoop syncs the WAL every SyncInterval while something was written
// since the last sync. It is the Store's only goroutine; Close stops it
// before it closes the database.
func (s *Store) syncLoop() {
	defer s.wg.Done()
	t := time.NewTicker(s.cfg.SyncInterval)
	defer t.Stop()
	var synced uint64
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
			if err := s.jrnl.sync(); err != nil {
				// Acknowledged writes may not survive a power loss.
				_ = s.fail("journal sync", err)
			}
			seq := s.db.GetLatestSequenceNumber()
			if seq == synced {
				continue
			}
			if err := s.db.FlushWAL(true); err != nil {
				s.log.Error("WAL sync failed: acknowledged writes are not yet safe from a power loss", "err", err)
				continue
			}
			synced = seq
		}
	}
}

// Close stops the WAL syncer, waits for the calls in progress, syncs the
// WAL (so a clean Close loses nothing in either mode) and closes the
// database. It is idempotent; later calls return the first one's result.
func (s *Store) Close() error {
	s.closeOnce.Do(func() { s.closeErr = s.close() })
	return s.closeErr
}

func (s *Store) close() error {
	close(s.stop)
	s.wg.Wait()
	s.life.Lock()
	defer s.life.Unlock()
	s.closed = true
	var err error
	if e := s.jrnl.close(); e != nil {
		err = fmt.Errorf("rocksdb: close: sync journal: %w", e)
	} else if e := s.retireAll(); e != nil {
		s.log.Warn("journal kept: the next open replays it", "err", e)
	}
	if e := s.db.FlushWAL(true); e != nil && err == nil {
		err = fmt.Errorf("rocksdb: close: sync WAL: %w", e)
	}
	s.db.Close()
	s.freeHandles()
	s.log.Info("store closed")
	return err
}

// errClosed is returned, wrapped with the operation, after Close.
func errClosed(op string) error { return fmt.Errorf("rocksdb: %s: %w", op, store.ErrClosed) }

// view reads the database, at one snapshot or at its latest state.
type view struct {
	hot  *hotRecords
	db   *grocksdb.DB
	snap *grocksdb.Snapshot // nil: latest state
	ro   *grocksdb.ReadOptions
}

// newView returns a view; the caller must hold life shared and call close.
func (s *Store) newView(snapshot bool) *view {
	v := &view{hot: s.hot, db: s.db, ro: grocksdb.NewDefaultReadOptions()}
	if snapshot {
		v.snap = s.db.NewSnapshot()
		v.ro.SetSnapshot(v.snap)
	}
	return v
}

func (v *view) close() {
	v.ro.Destroy()
	if v.snap != nil {
		v.db.ReleaseSnapshot(v.snap)
	}
}

// get returns a copy of the value of k, or nil when there is none. A
// message record comes from hotRecords when it is there, at its latest
// state even in a snapshot view: the queries check a record
// against the index key that led to it.
func (v *view) get(k []byte) ([]byte, error) {
	if isRecordKey(k) {
		return v.hot.read(v.db, v.ro, k)
	}
	return v.db.GetBytes(v.ro, k)
}

// errStop ends a scan early without an error.
var errStop = errors.New("stop scan")

// scan calls fn for each key in [lower, upper) in order until fn returns
// errStop or another error. k and val are valid only during the call.
func (v *view) scan(lower, upper []byte, fn func(k, val []byte) error) error {
	ro := grocksdb.NewDefaultReadOptions()
	defer ro.Destroy()
	if v.snap != nil {
		ro.SetSnapshot(v.snap)
	}
	ro.SetIterateLowerBound(lower)
	ro.SetIterateUpperBound(upper)
	it := v.db.NewIterator(ro)
	defer it.Close()
	for it.Seek(lower); it.Valid(); it.Next() {
		k, val := it.Key(), it.Value()
		err := fn(k.Data(), val.Data())
		k.Free()
		val.Free()
		if errors.Is(err, errStop) {
			return nil
		}
		if err != nil {
			return err
		}
	}
	if err := it.Err(); err != nil {
		return fmt.Errorf("iterate: %w", err)
	}
	return nil
}
