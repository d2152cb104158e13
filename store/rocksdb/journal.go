package rocksdb

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/linxGnu/grocksdb"
)

// The journal is the Store's write-ahead log: every Write appends its
// writes to it as one record before it applies them, and RocksDB's own WAL
// is off for those writes. See doc.go, "Journal", for why and for what it
// promises.
//
// On disk it is a directory of segment files named by an increasing
// number (000001.log, …). A segment starts with journalMagic and holds
// records: a 4-byte little-endian payload length, the payload's CRC-32C (4
// bytes, little-endian), then the payload: the Write's operations, each a
// kind byte (its opKind plus one: put 1, delete 2, range delete 3; the
// opKind values are part of the format), the uvarint-prefixed key and, for
// a put or a range delete, the uvarint-prefixed value (the range's end).

const (
	journalDirName = "journal"
	journalMagic   = "KNJRNL\x00\x01"
	recordHeader   = 8
	// maxRecord bounds a record's declared length, so that a damaged
	// length field cannot make replay allocate gigabytes.
	maxRecord = 1 << 30
)

var crcTable = crc32.MakeTable(crc32.Castagnoli)

// journal appends records to the current segment. Write (under
// Store.writeMu) appends and rotates; the WAL syncer syncs. mu guards the
// file against that concurrency.
type journal struct {
	dir string

	mu    sync.Mutex
	f     *os.File
	seg   uint64 // number of the segment f is
	size  int64  // bytes in f
	dirty bool   // f was written since it was last synced
	// broken is set when a failed append or sync may have left f holding
	// part of a record, or acknowledged bytes unsynced: nothing more may
	// be appended.
	broken bool

	// write writes to f; tests replace it to inject failures.
	write func(f *os.File, b []byte) (int, error)
	// observe, if not nil, is told how long each fsync took
	// (Config.ObserveSync).
	observe func(time.Duration)
}

// segmentName is the file name of segment n.
func segmentName(n uint64) string { return fmt.Sprintf("%06d.log", n) }

// listSegments returns the segment numbers in dir, oldest first. A missing
// dir has none.
func listSegments(dir string) ([]uint64, error) {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var segs []uint64
	for _, e := range entries {
		name, ok := strings.CutSuffix(e.Name(), ".log")
		if !ok || e.IsDir() {
			continue
		}
		n, err := strconv.ParseUint(name, 10, 64)
		if err != nil {
			continue
		}
		segs = append(segs, n)
	}
	slices.Sort(segs)
	return segs, nil
}

// openJournal starts segment seg in dir (creating dir), ready to append.
func openJournal(dir string, seg uint64) (*journal, error) {
	if err := mkdirAll(dir); err != nil {
		return nil, err
	}
	j := &journal{dir: dir, write: (*os.File).Write}
	if err := j.start(seg); err != nil {
		return nil, err
	}
	return j, nil
}

// start creates segment seg, writes its magic and syncs it and the
// directory, so that the segment exists after a power loss. caller must
// hold j.mu (or own j)
func (j *journal) start(seg uint64) error {
	f, err := os.OpenFile(filepath.Join(j.dir, segmentName(seg)), os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o640)
	if err != nil {
		return err
	}
	if _, err := f.WriteString(journalMagic); err != nil {
		_ = f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		_ = f.Close()
		return err
	}
	if err := syncDir(j.dir); err != nil {
		_ = f.Close()
		return err
	}
	j.f, j.seg, j.size, j.dirty = f, seg, int64(len(journalMagic)), false
	return nil
}

// append writes rec as one record and syncs it when sync is set. rec
// starts with recordHeader bytes that append fills in (so that the record
// takes one write(2)), then the payload. When the write fails (a full
// disk), append cuts the segment back to where the record began, so the
// journal stays whole and later appends may succeed; if that fails too,
// or the sync fails, the journal is broken (see broken), and the Store
// refuses every later Write.
func (j *journal) append(rec []byte, sync bool) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.broken {
		return errors.New("journal broken by an earlier failure")
	}
	payload := rec[recordHeader:]
	if len(payload) > maxRecord {
		// Replay would take it for damage. (The Batcher's byte bound keeps
		// batches far below this.)
		return fmt.Errorf("a %d-byte batch is over the journal's %d-byte record limit", len(payload), maxRecord)
	}
	binary.LittleEndian.PutUint32(rec[:4], uint32(len(payload)))
	binary.LittleEndian.PutUint32(rec[4:recordHeader], crc32.Checksum(payload, crcTable))
	if _, err := j.write(j.f, rec); err != nil {
		if e := j.undo(); e != nil {
			j.broken = true
			return fmt.Errorf("%w (and cutting the record off failed: %w)", err, e)
		}
		return err
	}
	j.size += int64(len(rec))
	if sync {
		if err := j.fdatasync(); err != nil {
			// After a failed fsync the kernel may have dropped the pages:
			// what the journal holds is unknown.
			j.broken = true
			return err
		}
		return nil
	}
	j.dirty = true
	return nil
}

// undo cuts the segment back to j.size, dropping what a failed write
// left. caller must hold j.mu
func (j *journal) undo() error {
	if err := j.f.Truncate(j.size); err != nil {
		return err
	}
	_, err := j.f.Seek(j.size, io.SeekStart)
	return err
}

// length returns the bytes in the current segment.
func (j *journal) length() int64 {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.size
}

// sync syncs the current segment if it was written since its last sync.
// A failure breaks the journal, as in append.
func (j *journal) sync() error {
	j.mu.Lock()
	defer j.mu.Unlock()
	if !j.dirty {
		return nil
	}
	if err := j.fdatasync(); err != nil {
		j.broken = true
		return err
	}
	j.dirty = false
	return nil
}

// rotate syncs and closes the current segment and starts the next one. It
// returns the number of the closed segment.
func (j *journal) rotate() (uint64, error) {
	j.mu.Lock()
	defer j.mu.Unlock()
	old := j.seg
	if err := j.f.Sync(); err != nil {
		return 0, err
	}
	if err := j.f.Close(); err != nil {
		return 0, err
	}
	return old, j.start(old + 1)
}

// close syncs and closes the current segment.
func (j *journal) close() error {
	j.mu.Lock()
	defer j.mu.Unlock()
	err := j.f.Sync()
	if e := j.f.Close(); err == nil {
		err = e
	}
	return err
}

// removeSegmentsThrough deletes the segments of dir numbered up to through.
func removeSegmentsThrough(dir string, through uint64) error {
	segs, err := listSegments(dir)
	if err != nil {
		return err
	}
	for _, n := range segs {
		if n > through {
			break
		}
		if err := os.Remove(filepath.Join(dir, segmentName(n))); err != nil {
			return err
		}
	}
	return syncDir(dir)
}

// appendTo appends o to a journal record.
func (o op) appendTo(rec []byte) []byte {
	rec = append(rec, byte(o.kind)+1)
	rec = binary.AppendUvarint(rec, uint64(len(o.k)))
	rec = append(rec, o.k...)
	if o.kind != opDelete {
		rec = binary.AppendUvarint(rec, uint64(len(o.v)))
		rec = append(rec, o.v...)
	}
	return rec
}

var errBadRecord = errors.New("malformed journal record")

// decodeRecord decodes the operations of one record payload. Their keys
// and values alias p.
func decodeRecord(p []byte, ops []op) ([]op, error) {
	ops = ops[:0]
	field := func() ([]byte, bool) {
		n, w := binary.Uvarint(p)
		if w <= 0 || n > uint64(len(p)-w) {
			return nil, false
		}
		f := p[w : w+int(n)]
		p = p[w+int(n):]
		return f, true
	}
	for len(p) > 0 {
		if p[0] < byte(opPut)+1 || p[0] > byte(opDeleteRange)+1 {
			return nil, fmt.Errorf("%w: op kind %d", errBadRecord, p[0])
		}
		o := op{kind: opKind(p[0] - 1)}
		p = p[1:]
		var ok bool
		if o.k, ok = field(); !ok {
			return nil, fmt.Errorf("%w: key", errBadRecord)
		}
		if o.kind != opDelete {
			if o.v, ok = field(); !ok {
				return nil, fmt.Errorf("%w: value", errBadRecord)
			}
		}
		ops = append(ops, o)
	}
	return ops, nil
}

// errTorn reports a record cut short or damaged: what a crash leaves at
// the end of the last segment.
var errTorn = errors.New("torn journal record")

// readSegment calls fn with the operations of each record of segment data,
// in order. It returns errTorn (wrapped, with the offset) at the first
// record that is incomplete or fails its checksum; the records before it
// were applied.
func readSegment(data []byte, fn func(ops []op) error) error {
	if len(data) < len(journalMagic) {
		return fmt.Errorf("%w: segment header cut short (%d bytes)", errTorn, len(data))
	}
	if string(data[:len(journalMagic)]) != journalMagic {
		return fmt.Errorf("%w: not a journal segment", errBadRecord)
	}
	var ops []op
	off := len(journalMagic)
	for off < len(data) {
		if len(data)-off < recordHeader {
			return fmt.Errorf("%w at offset %d: header cut short", errTorn, off)
		}
		n := binary.LittleEndian.Uint32(data[off:])
		sum := binary.LittleEndian.Uint32(data[off+4:])
		if n > maxRecord || int64(n) > int64(len(data)-off-recordHeader) {
			return fmt.Errorf("%w at offset %d: %d-byte record cut short", errTorn, off, n)
		}
		p := data[off+recordHeader : off+recordHeader+int(n)]
		if crc32.Checksum(p, crcTable) != sum {
			return fmt.Errorf("%w at offset %d: checksum mismatch", errTorn, off)
		}
		var err error
		if ops, err = decodeRecord(p, ops); err != nil {
			return fmt.Errorf("offset %d: %w", off, err)
		}
		if err := fn(ops); err != nil {
			return err
		}
		off += recordHeader + int(n)
	}
	return nil
}

// fdatasync syncs the current segment's data, timed for observe.
// caller must hold j.mu
func (j *journal) fdatasync() error {
	if j.observe == nil {
		return fdatasync(j.f)
	}
	start := time.Now()
	err := fdatasync(j.f)
	j.observe(time.Since(start))
	return err
}

// fdatasync flushes f's data (and the metadata needed to read it back).
func fdatasync(f *os.File) error {
	for {
		err := syscall.Fdatasync(int(f.Fd()))
		if err != syscall.EINTR {
			return err
		}
	}
}

// syncDir syncs a directory, so that files created or removed in it stay so
// after a power loss.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if e := d.Close(); err == nil {
		err = e
	}
	return err
}

// mkdirAll creates dir and any missing parent, as os.MkdirAll does, and
// syncs the parent of every directory it creates, so that they exist after
// a power loss: a file synced in a directory whose own name was never
// synced into its parent may be gone with it. The parent of a dir that
// already existed is synced too, best effort (a crash may have come
// between an earlier creation and its sync).
func mkdirAll(dir string) error {
	dir = filepath.Clean(dir)
	parent := filepath.Dir(dir)
	fi, err := os.Stat(dir)
	switch {
	case err == nil && !fi.IsDir():
		return fmt.Errorf("%s: not a directory", dir)
	case err == nil:
		_ = syncDir(parent)
		return nil
	case !errors.Is(err, fs.ErrNotExist):
		return err
	}
	if parent != dir {
		if err := mkdirAll(parent); err != nil {
			return err
		}
	}
	if err := os.Mkdir(dir, 0o750); err != nil && !errors.Is(err, fs.ErrExist) {
		return err
	}
	return syncDir(parent)
}

// journalDir is the Store's journal directory.
func (s *Store) journalDir() string { return filepath.Join(s.cfg.Dir, journalDirName) }

// replay applies the journal's records to RocksDB, in order, flushes
// RocksDB, deletes the segments and starts a new one. RocksDB then holds
// every acknowledged Write: its tables hold the writes up to some point of
// the history and the journal every write since its oldest segment, and a
// record is a list of plain puts and deletes, so applying it again over
// state that already has it changes nothing. A torn record at the end of
// the last segment (a crash cut the append short: its Write never
// returned) is dropped; anywhere else it is an error.
// caller owns s exclusively (Open)
func (s *Store) replay() error {
	dir := s.journalDir()
	segs, err := listSegments(dir)
	if err != nil {
		return fmt.Errorf("rocksdb: open: journal: %w", err)
	}
	next := uint64(1)
	if len(segs) > 0 {
		records, start := 0, time.Now()
		wb := grocksdb.NewWriteBatch()
		defer wb.Destroy()
		apply := func(ops []op) error {
			wb.Clear()
			for _, o := range ops {
				o.addTo(wb)
			}
			records++
			return s.db.Write(s.wj, wb)
		}
		for i, n := range segs {
			name := filepath.Join(dir, segmentName(n))
			data, err := os.ReadFile(name)
			if err != nil {
				return fmt.Errorf("rocksdb: open: journal: %w", err)
			}
			err = readSegment(data, apply)
			if errors.Is(err, errTorn) && i == len(segs)-1 {
				s.log.Warn("journal: dropped the torn end of the last segment, a write a crash cut short (never acknowledged)", "segment", name, "err", err)
				err = nil
			}
			if err != nil {
				return fmt.Errorf("rocksdb: open: journal %s: %w", name, err)
			}
		}
		if err := s.flush(); err != nil {
			return fmt.Errorf("rocksdb: open: journal replay: %w", err)
		}
		if err := removeSegmentsThrough(dir, segs[len(segs)-1]); err != nil {
			return fmt.Errorf("rocksdb: open: journal: %w", err)
		}
		s.log.Info("journal replayed", "segments", len(segs), "records", records, "took", time.Since(start))
		next = segs[len(segs)-1] + 1
	}
	if s.jrnl, err = openJournal(dir, next); err != nil {
		return fmt.Errorf("rocksdb: open: journal: %w", err)
	}
	s.jrnl.observe = s.cfg.ObserveSync
	return nil
}

// flush writes RocksDB's memtables to tables and waits for it.
func (s *Store) flush() error {
	fo := grocksdb.NewDefaultFlushOptions()
	defer fo.Destroy()
	fo.SetWait(true)
	return s.db.Flush(fo)
}

// rotate starts a new journal segment and moves the records in s.hot to
// RocksDB (no WAL), then wakes the retirer, which flushes RocksDB and
// deletes the old segments. A failure fails the store (the records would
// otherwise be lost with the segments). caller must hold s.writeMu
func (s *Store) rotate() {
	old, err := s.jrnl.rotate()
	if err != nil {
		_ = s.fail("journal rotate", err)
		return
	}
	if err := s.moveHot(); err != nil {
		return
	}
	s.retired.Store(old)
	select {
	case s.retire <- struct{}{}:
	default:
	}
}

// moveHot writes the records in s.hot to RocksDB (no WAL) and empties
// it. A failure fails the store. caller must hold s.writeMu
func (s *Store) moveHot() error {
	if s.hot.len() == 0 {
		return nil
	}
	if err := s.hot.moveTo(s.db, s.wj); err != nil {
		return s.fail("move records", err)
	}
	s.hot.reset()
	return nil
}

// retireAll, at a clean Close, moves the records held in memory to
// RocksDB, flushes it and deletes every journal segment, so that the next
// Open has nothing to replay. It does nothing for a failed store (its
// journal may hold what RocksDB does not) or with Config.noFlushOnClose
// (tests: a Close that loses what a crash loses). On an error the journal
// stays, and Open replays it. caller must hold s.life exclusively, with
// the journal closed
func (s *Store) retireAll() error {
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	if s.Failed() != nil || s.cfg.noFlushOnClose {
		return nil
	}
	if err := s.moveHot(); err != nil {
		return err
	}
	if err := s.flush(); err != nil {
		return fmt.Errorf("flush: %w", err)
	}
	return removeSegmentsThrough(s.journalDir(), s.jrnl.seg)
}

// retireLoop flushes RocksDB and deletes the journal segments up to
// s.retired whenever rotate moves it. It is owned by the Store: Close
// stops it. A failure is logged and retried at the next rotation: the
// segments stay, and Open would replay them.
func (s *Store) retireLoop() {
	defer s.wg.Done()
	var done uint64
	for {
		select {
		case <-s.stop:
			return
		case <-s.retire:
		}
		through := s.retired.Load()
		if through <= done {
			continue
		}
		if err := s.retireThrough(through); err != nil {
			s.log.Error("journal: could not retire old segments; they stay until the next try", "through", through, "err", err)
			continue
		}
		done = through
	}
}

func (s *Store) retireThrough(seg uint64) error {
	s.life.RLock()
	defer s.life.RUnlock()
	if s.closed {
		return nil
	}
	if err := s.flush(); err != nil {
		return fmt.Errorf("flush: %w", err)
	}
	return removeSegmentsThrough(s.journalDir(), seg)
}

// isBroken reports whether an append or sync broke the journal.
func (j *journal) isBroken() bool {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.broken
}
