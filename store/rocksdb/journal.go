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
	last  int64  // size before the last append, for unappend; 0: none
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
	f, err := j.create(seg)
	if err != nil {
		return err
	}
	j.f, j.seg, j.size, j.dirty = f, seg, int64(len(journalMagic)), false
	return nil
}

// create creates segment seg with its magic, synced, and syncs the
// directory. On a failure it removes what it created.
func (j *journal) create(seg uint64) (*os.File, error) {
	name := filepath.Join(j.dir, segmentName(seg))
	f, err := os.OpenFile(name, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o640)
	if err != nil {
		return nil, err
	}
	_, err = f.WriteString(journalMagic)
	if err == nil {
		err = f.Sync()
	}
	if err == nil {
		err = syncDir(j.dir)
	}
	if err != nil {
		_ = f.Close()
		_ = os.Remove(name)
		return nil, err
	}
	return f, nil
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
	j.last = j.size
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

// unappend cuts the last record appended off again, for a Write that
// failed after its append (nothing acknowledged it). A failure breaks the
// journal. Should a power loss bring the record back (its cut was not
// synced), replay applies a batch nobody was told succeeded: as a crash
// before an ack, at-least-once.
func (j *journal) unappend() error {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.broken || j.last == 0 {
		return errors.New("journal: no record to cut off")
	}
	j.size, j.last = j.last, 0
	if err := j.undo(); err != nil {
		j.broken = true
		return err
	}
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

// rotate starts the next segment, then syncs and closes the current one.
// It returns the number of the closed segment. When the next segment cannot
// be started (a full disk), what was created of it is removed and the
// current segment stays, whole and open: rotate may be called again. A
// failed sync of the current segment breaks the journal.
func (j *journal) rotate() (uint64, error) {
	j.mu.Lock()
	defer j.mu.Unlock()
	old, of := j.seg, j.f
	f, err := j.create(old + 1)
	if err != nil {
		return 0, err
	}
	if err := of.Sync(); err != nil {
		j.broken = true
		_ = f.Close()
		return 0, err
	}
	_ = of.Close() // synced: a failed close loses nothing
	j.f, j.seg, j.size, j.dirty = f, old+1, int64(len(journalMagic)), false
	return old, nil
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

// damage is a stretch of a segment that could not be read: [off, end).
type damage struct {
	off, end int
	why      string
	// tail is set when no readable record follows: what a crash leaves at
	// the end of the last segment (a write cut short).
	tail bool
	// record is set when the stretch is one record whose length still led
	// to a readable one (a flipped bit in its payload or checksum); ids are
	// then the messages ("topic/id") it put, as far as they can be told.
	record bool
	ids    []string
	nIDs   int // all of them; ids holds the first maxNamed
}

// readSegment calls fn with the operations of each readable record of
// segment data, in order, and returns the stretches it could not read. A
// record is readable when it is whole, passes its checksum and decodes.
// After a damaged one reading goes on at the next readable record: where
// the damaged record's length leads (a flipped bit in its payload or
// checksum), or else the first offset where a readable record starts (a
// damaged length). Only fn's error is returned.
func readSegment(data []byte, fn func(ops []op) error) ([]damage, error) {
	var damages []damage
	var ops []op
	off := len(journalMagic)
	switch {
	case len(data) < off:
		return []damage{{off: 0, end: len(data), why: "segment header cut short", tail: true}}, nil
	case string(data[:off]) != journalMagic:
		d := damage{off: 0, why: "segment header damaged"}
		if off = nextRecord(data, off); off < 0 {
			off, d.tail = len(data), true
		}
		d.end = off
		damages = append(damages, d)
	}
	for off < len(data) {
		n, why := recordAt(data, off, &ops)
		if why == "" {
			if err := fn(ops); err != nil {
				return damages, err
			}
			off += n
			continue
		}
		d := damage{off: off, why: why}
		next := -1
		if len(data)-off >= recordHeader {
			size := int64(binary.LittleEndian.Uint32(data[off:]))
			if end := int64(off) + recordHeader + size; size > 0 && end < int64(len(data)) {
				if _, bad := recordAt(data, int(end), &ops); bad == "" {
					next, d.record = int(end), true
					d.ids, d.nIDs = recordIDs(data[off+recordHeader : end])
				}
			}
		}
		if next < 0 {
			next = nextRecord(data, off+1)
		}
		if next < 0 {
			next, d.tail = len(data), true
		}
		d.end = next
		damages = append(damages, d)
		off = next
	}
	return damages, nil
}

// recordAt decodes the record at off into *ops and returns its size, or
// why it is not readable. A readable record has a payload: Write never
// journals an empty one, and zeroes (a file extended but never written)
// must not read as records.
func recordAt(data []byte, off int, ops *[]op) (int, string) {
	if len(data)-off < recordHeader {
		return 0, "header cut short"
	}
	n := binary.LittleEndian.Uint32(data[off:])
	sum := binary.LittleEndian.Uint32(data[off+4:])
	switch {
	case n == 0:
		return 0, "empty record"
	case n > maxRecord || int64(n) > int64(len(data)-off-recordHeader):
		return 0, fmt.Sprintf("%d-byte record cut short", n)
	}
	p := data[off+recordHeader : off+recordHeader+int(n)]
	var err error
	// Decoding first rejects most offsets that are no record at once.
	if *ops, err = decodeRecord(p, *ops); err != nil {
		return 0, err.Error()
	}
	if crc32.Checksum(p, crcTable) != sum {
		return 0, "checksum mismatch"
	}
	return recordHeader + int(n), ""
}

// nextRecord returns the first offset from off where a readable record
// starts, or -1.
func nextRecord(data []byte, off int) int {
	var ops []op
	for ; off+recordHeader < len(data); off++ {
		if _, why := recordAt(data, off, &ops); why == "" {
			return off
		}
	}
	return -1
}

// recordIDs returns the messages ("topic/id") a damaged record's payload
// puts, as far as they can still be told (the first maxNamed; n counts
// them all): it looks for every
// message record put (op kind 1, the key's uvarint length, a key of the
// message prefix made of exactly two components), whether or not the rest
// of the payload decodes.
func recordIDs(p []byte) (ids []string, n int) {
	seen := map[string]bool{}
	for i := 0; i+2 < len(p); i++ {
		if p[i] != byte(opPut)+1 {
			continue
		}
		kl, w := binary.Uvarint(p[i+1:])
		if w <= 0 || kl < 5 || kl > uint64(len(p)-i-1-w) {
			continue
		}
		k := p[i+1+w : i+1+w+int(kl)]
		if !isRecordKey(k) {
			continue
		}
		topic, rest, err := readStr(k[1:])
		if err != nil {
			continue
		}
		id, rest, err := readStr(rest)
		if err != nil || len(rest) != 0 || seen[topic+"/"+id] {
			continue
		}
		seen[topic+"/"+id] = true
		if n++; len(ids) < maxNamed {
			ids = append(ids, topic+"/"+id)
		}
	}
	return ids, n
}

// maxNamed bounds the messages a damage report names.
const maxNamed = 100

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
// returned) is dropped. Damage anywhere else (a flipped bit, a segment cut
// short) skips what cannot be read and replays the rest, and is reported
// (see reportDamage); the segment is kept aside as NAME.damaged.
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
		var damaged []string
		for i, n := range segs {
			name := filepath.Join(dir, segmentName(n))
			data, err := os.ReadFile(name)
			if err != nil {
				return fmt.Errorf("rocksdb: open: journal: %w", err)
			}
			damages, err := readSegment(data, apply)
			if err != nil {
				return fmt.Errorf("rocksdb: open: journal %s: %w", name, err)
			}
			if s.reportDamage(name, damages, i == len(segs)-1) {
				damaged = append(damaged, name)
			}
		}
		if err := s.flush(); err != nil {
			return fmt.Errorf("rocksdb: open: journal replay: %w", err)
		}
		for _, name := range damaged {
			// Kept for whoever wants to look: no longer a segment (".log").
			if err := os.Rename(name, name+".damaged"); err != nil {
				return fmt.Errorf("rocksdb: open: journal: keep the damaged segment: %w", err)
			}
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

// reportDamage logs the damages of segment name and counts them (see
// Store.corrupt). The torn end of the last segment is a crash's normal
// artefact, logged as a warning; any other damage is logged as an error,
// with the file, the offset, the bytes skipped and the messages the
// record put when it still decodes, and reportDamage returns true.
func (s *Store) reportDamage(name string, damages []damage, last bool) bool {
	bad := false
	for _, d := range damages {
		if d.tail && last {
			s.log.Warn("journal: dropped the torn end of the last segment, a write a crash cut short (never acknowledged; with durability=async, perhaps acknowledged within syncInterval before a power loss)",
				"segment", name, "offset", d.off, "bytes", d.end-d.off, "why", d.why)
			continue
		}
		bad = true
		s.corrupt.Add(1)
		what := "a damaged record"
		if !d.record {
			what = "an unreadable stretch"
		}
		s.log.Error("journal: skipped "+what+"; the records before and after it are recovered, the segment is kept as "+filepath.Base(name)+".damaged",
			"segment", name, "offset", d.off, "bytes", d.end-d.off, "why", d.why, "messages_written", d.nIDs, "messages", d.ids)
	}
	return bad
}

// flush writes RocksDB's memtables to tables and waits for it.
func (s *Store) flush() error {
	fo := grocksdb.NewDefaultFlushOptions()
	defer fo.Destroy()
	fo.SetWait(true)
	return s.db.Flush(fo)
}

// moveHot writes the records in s.hot to RocksDB (no WAL) and empties
// it. A failure for lack of space keeps them there, for the next try; any
// other fails the store. caller must hold s.writeMu
func (s *Store) moveHot() error {
	if s.hot.len() == 0 {
		return nil
	}
	if err := s.hot.moveTo(s.db, s.wj); err != nil {
		if isNoSpace(err) {
			return s.outOfSpace("move records", err) // the records stay, and the next Write tries again
		}
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
	failed := 0 // tries that failed in a row: the first is logged, and the success after
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
			if isNoSpace(err) {
				_ = s.outOfSpace("journal retire", err) // the flush: RocksDB refuses writes until it recovers
			}
			if failed++; failed == 1 {
				s.log.Error("journal: could not retire old segments; they stay, and are tried again", "through", through, "err", err)
			}
			continue
		}
		if failed > 0 {
			s.log.Info("journal: old segments retired after failed tries", "through", through, "failed_tries", failed)
			failed = 0
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
