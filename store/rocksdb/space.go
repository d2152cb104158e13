package rocksdb

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/linxGnu/grocksdb"

	"github.com/kitenats/kitenats/store"
)

// A full disk is a state the Store recovers from by itself, not a failure
// (see doc.go, "A full disk"):
//
//   - While the filesystem has less free than the reserve (MinFreeSpace,
//     plus the size of RocksDB's tables up to compactionHeadroom: a
//     compaction writes its output before it deletes its input, and
//     RocksDB, once a write of its own ran out of space, refuses the
//     compactions that might not fit, the very ones that would give the
//     acked messages' space back), Write refuses
//     the batch's new messages with store.ErrNoSpace and still writes its
//     acks, retries and the rest, so that the journal's segments fill,
//     rotate and retire and the space the acked messages took comes back.
//   - A write that runs out of space all the same (the reserve was taken by
//     someone else) fails its batch with store.ErrNoSpace and nothing of it
//     applied: the journal cuts the record off, and a RocksDB write refused
//     after the record was appended cuts it off too. A rotation or a move
//     of the records to RocksDB that runs out of space is retried.
//   - Meanwhile spaceLoop looks at the free space on a timer (backing off
//     from spaceProbeMin to spaceProbeMax), rotates the journal so that
//     what was acked can retire, compacts RocksDB when deletions dominate
//     it, and leaves the state once free space is back above the reserve
//     plus an eighth.
//
// Only an error that leaves the journal in a state it cannot vouch for (a
// failed fsync, a record it could not cut off) still fails the store until
// it is reopened.

const (
	// spaceCheckEvery bounds how often Write looks at the free space.
	spaceCheckEvery = 50 * time.Millisecond
	spaceProbeMin   = 100 * time.Millisecond
	spaceProbeMax   = 2 * time.Second
	// compactEvery bounds how often spaceLoop compacts RocksDB.
	compactEvery = 2 * time.Second
	// pressedBelow: with less than this many reserves free, spaceLoop
	// works to give space back.
	pressedBelow = 4
	// compactionHeadroom caps the space kept for RocksDB's compactions,
	// which write their output before they delete their input: up to the
	// size of the tables (an L0 to L1 compaction rewrites all of L1), and
	// L1 is at most max_bytes_for_level_base, 256 MiB by default.
	compactionHeadroom = 256 << 20
)

// statfs returns the bytes available to an unprivileged user on dir's
// filesystem, and its size.
func statfs(dir string) (free, size int64, err error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return -1, -1, err
	}
	return int64(st.Bavail) * st.Bsize, int64(st.Blocks) * st.Bsize, nil //nolint:gosec // block counts fit
}

// isNoSpace reports whether err says the disk (or the quota) is full: the
// journal's ENOSPC, or RocksDB's NoSpace status, which reaches Go as text.
func isNoSpace(err error) bool {
	if err == nil {
		return false
	}
	if errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT) {
		return true
	}
	msg := err.Error()
	return strings.Contains(msg, "No space left on device") || strings.Contains(msg, "Disk quota exceeded")
}

// mib formats a byte count for a log line or an error.
func mib(n int64) string { return strconv.FormatFloat(float64(n)/(1<<20), 'f', 1, 64) + " MiB" }

// initSpace sets the reserve (MinFreeSpace, or its default) at Open.
func (s *Store) initSpace() {
	s.minFree = s.cfg.MinFreeSpace
	free, size, err := statfs(s.cfg.Dir)
	if s.minFree == 0 {
		s.minFree = 2 * s.cfg.JournalSegmentSize
		if err == nil && s.minFree > size/4 {
			s.minFree = size / 4
		}
	}
	s.ballast = s.minFree / 2
	if err == nil {
		s.judge(free, time.Now())
	}
}

// The ballast is a file of minFree/2 bytes (DIR/SPACE-RESERVE, blocks
// allocated) that the store deletes the moment a write of its own or of
// RocksDB runs out of space, and makes again once there is room. The
// reserve keeps writes from running out, but a compaction writes before
// it deletes and a flush lands at any time: when one runs out anyway,
// RocksDB refuses every write, acks included, until its SstFileManager
// sees as much free as the failed compaction's input, and nothing but the
// acks would give space back. Deleting the ballast breaks that circle.

// ballastName is the ballast's file.
func (s *Store) ballastName() string { return filepath.Join(s.cfg.Dir, "SPACE-RESERVE") }

// makeBallast creates the ballast when it is missing. A failure (no room,
// say) leaves none, and the next call tries again.
func (s *Store) makeBallast() {
	s.ballastMu.Lock()
	defer s.ballastMu.Unlock()
	if s.ballastUp || s.ballast <= 0 {
		return
	}
	name := s.ballastName()
	f, err := os.OpenFile(name, os.O_CREATE|os.O_WRONLY, 0o640)
	if err != nil {
		return
	}
	err = syscall.Fallocate(int(f.Fd()), 0, 0, s.ballast)
	if errors.Is(err, syscall.EOPNOTSUPP) {
		err = f.Truncate(0) // a filesystem without fallocate: written out
		chunk := make([]byte, 1<<20)
		for n := int64(0); err == nil && n < s.ballast; n += int64(len(chunk)) {
			_, err = f.Write(chunk[:min(int64(len(chunk)), s.ballast-n)])
		}
	}
	if e := f.Close(); err == nil {
		err = e
	}
	if err != nil {
		_ = os.Remove(name)
		return
	}
	s.ballastUp = true
}

// openRoom, at Open, deletes a ballast a previous run left when the disk
// is nearly full (less free than a journal segment): opening RocksDB and
// replaying the journal write files, and a restart on a full disk would
// fail without it. initSpace makes it again once there is room. caller
// owns s exclusively (Open)
func (s *Store) openRoom() {
	free, _, err := statfs(s.cfg.Dir)
	if err != nil || free >= s.cfg.JournalSegmentSize {
		return
	}
	if err := os.Remove(s.ballastName()); err == nil {
		s.log.Warn("store: opening on a nearly full disk: deleted the space reserve file", "file", s.ballastName(), "free", mib(free))
	}
}

// releaseBallast deletes the ballast, if there is one.
func (s *Store) releaseBallast() {
	s.ballastMu.Lock()
	defer s.ballastMu.Unlock()
	if !s.ballastUp {
		return
	}
	if err := os.Remove(s.ballastName()); err != nil && !errors.Is(err, os.ErrNotExist) {
		s.log.Error("store: could not delete the space reserve file", "err", err)
		return
	}
	s.ballastUp = false
	s.log.Warn("store: a write ran out of space: deleted the space reserve file, so that acks and RocksDB's recovery have room", "file", s.ballastName(), "size", mib(s.ballast))
}

// checkSpace looks at the free space, at most every spaceCheckEvery, and
// enters or leaves the no-space state. caller must hold s.writeMu
func (s *Store) checkSpace(now time.Time) {
	if now.Sub(s.spaceChecked) < spaceCheckEvery && s.sinceCheck < s.minFree/16 {
		return
	}
	s.spaceChecked, s.sinceCheck = now, 0
	if free, _, err := statfs(s.cfg.Dir); err == nil {
		s.judge(free, now)
	}
}

// judge enters the no-space state when free is below the reserve (see
// reserve), and leaves it when free is back above it plus an eighth of
// minFree.
func (s *Store) judge(free int64, now time.Time) {
	s.lastFree.Store(free)
	low := s.noSpace.Load() != nil
	tables := s.tablesSize()
	reserve := s.minFree + min(tables, compactionHeadroom)
	switch {
	case !low && free < reserve:
		_ = s.outOfSpace("reserve", fmt.Errorf("%s free in %s, below the %s kept for acks and compactions (minFree %s, and %s for RocksDB's tables)",
			mib(free), s.cfg.Dir, mib(reserve), mib(s.minFree), mib(min(tables, compactionHeadroom))))
	case low && free >= reserve+s.minFree/8:
		// RocksDB, after a flush ran out of space, refuses writes until it
		// has recovered by itself (its SstFileManager polls the free space):
		// an idempotent write without WAL tells.
		if err := s.db.Put(s.wj, metaKey(), []byte(strconv.Itoa(formatVersion))); err != nil {
			return
		}
		s.noSpace.Store(nil)
		s.log.Warn("store: disk space is back: publishes accepted again", "free", mib(free), "reserve", mib(reserve),
			"refused_for", now.Sub(time.Unix(0, s.noSpaceSince.Load())).Round(time.Millisecond))
		s.maybeBallast(free, reserve)
	case !low:
		s.maybeBallast(free, reserve)
	}
}

// maybeBallast makes the ballast again once there is room for it.
func (s *Store) maybeBallast(free, reserve int64) {
	if free >= reserve+s.ballast+s.minFree/8 {
		s.makeBallast()
	}
}

// tablesSize is the size of RocksDB's live tables (0 when unknown).
func (s *Store) tablesSize() int64 {
	n, _ := strconv.ParseInt(s.db.GetProperty("rocksdb.total-sst-files-size"), 10, 64)
	return n
}

// outOfSpace enters (or stays in) the no-space state and returns the error
// for the batch that ran out: store.ErrNoSpace with why. A write that ran
// out (what is not "reserve") also releases the ballast. Safe for
// concurrent use.
func (s *Store) outOfSpace(what string, cause error) error {
	err := fmt.Errorf("rocksdb: %s: %w: %w: publishes are refused until space returns", what, store.ErrNoSpace, cause)
	if what == "reserve" {
		err = fmt.Errorf("rocksdb: %w: %w: publishes are refused until space returns (acks are still written)", store.ErrNoSpace, cause)
	}
	if s.noSpace.Swap(&err) == nil {
		s.noSpaceSince.Store(time.Now().UnixNano())
		s.log.Error("store: disk full: refusing publishes until space returns", "err", err)
	}
	if what != "reserve" {
		s.releaseBallast()
	}
	select {
	case s.spaceWake <- struct{}{}:
	default:
	}
	return err
}

// NoSpace returns why new messages are refused for lack of disk space, or
// nil.
func (s *Store) NoSpace() error {
	if p := s.noSpace.Load(); p != nil {
		return *p
	}
	return nil
}

// Condition implements store.Reporter.
func (s *Store) Condition() store.Condition {
	c := store.Condition{NoSpace: s.NoSpace(), Failed: s.Failed(), DiskFree: -1, DiskSize: -1, CorruptRecords: s.corrupt.Load()}
	if free, size, err := statfs(s.cfg.Dir); err == nil {
		c.DiskFree, c.DiskSize = free, size
	}
	c.JournalBytes = journalBytes(s.journalDir())
	return c
}

// journalBytes is the size of the segments in dir.
func journalBytes(dir string) int64 {
	segs, _ := listSegments(dir)
	var n int64
	for _, seg := range segs {
		if fi, err := os.Stat(filepath.Join(dir, segmentName(seg))); err == nil {
			n += fi.Size()
		}
	}
	return n
}

// spaceLoop, while the store is out of space or near it (less than
// pressedBelow times the reserve free), probes on a timer: it rotates the journal (so that
// what was acked since the last rotation can retire), moves the records
// held in memory, wakes the retirer, compacts RocksDB when deletions
// dominate it, and leaves the no-space state once there is room. The timer
// backs off from spaceProbeMin to spaceProbeMax; with room to spare it only
// looks at the free space every spaceProbeMax. It is owned by the Store:
// Close stops it.
func (s *Store) spaceLoop() {
	defer s.wg.Done()
	wait := spaceProbeMin
	t := time.NewTimer(wait)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-s.spaceWake:
			wait = spaceProbeMin
			if !t.Stop() {
				select {
				case <-t.C:
				default:
				}
			}
		case <-t.C:
		}
		pressed := s.noSpace.Load() != nil || s.lastFree.Load() < pressedBelow*s.minFree
		if pressed && !s.probeSpace() {
			return
		}
		if !pressed {
			if free, _, err := statfs(s.cfg.Dir); err == nil {
				s.lastFree.Store(free)
				s.maybeBallast(free, s.minFree+min(s.tablesSize(), compactionHeadroom))
			}
			wait = spaceProbeMax
		} else {
			wait = min(2*wait, spaceProbeMax)
		}
		t.Reset(wait)
	}
}

// probeSpace is one round of spaceLoop. It returns false once the store is
// closed.
func (s *Store) probeSpace() bool {
	s.life.RLock()
	defer s.life.RUnlock()
	if s.closed {
		return false
	}
	s.writeMu.Lock()
	if s.Failed() == nil {
		// A segment worth retiring: what was acked in it gives its space back.
		s.maintain(s.jrnl.length() > s.cfg.JournalSegmentSize/16)
	}
	s.writeMu.Unlock()
	select {
	case s.retire <- struct{}{}:
	default:
	}
	if time.Since(s.compacted) >= compactEvery && s.deletionsDominate() {
		s.compacted = time.Now()
		s.db.CompactRange(grocksdb.Range{})
		s.log.Info("store: compacted, deletions dominated while disk space was short", "took", time.Since(s.compacted).Round(time.Millisecond))
	}
	free, _, err := statfs(s.cfg.Dir)
	if err != nil {
		return true
	}
	s.writeMu.Lock()
	s.judge(free, time.Now())
	s.writeMu.Unlock()
	return true
}

// deletionsDominate reports whether tombstones are at least a third of
// the entries in RocksDB's tables (so that most of what they hold is dead),
// the tables are worth compacting (over an eighth of the reserve) and what
// would stay of them fits in the free space: a full compaction then gives
// back more than it takes.
func (s *Store) deletionsDominate() bool {
	props := s.db.GetProperty("rocksdb.aggregated-table-properties")
	entries, dels := tableProp(props, "# entries="), tableProp(props, "# deletions=")+tableProp(props, "# range deletions=")
	total, err := strconv.ParseInt(s.db.GetProperty("rocksdb.total-sst-files-size"), 10, 64)
	if err != nil || entries <= 0 || 3*dels < entries || total < s.minFree/8 {
		return false
	}
	free, _, err := statfs(s.cfg.Dir)
	return err == nil && total/entries*(entries-dels) < free
}

// tableProp reads the count after name in RocksDB's table properties text
// ("# entries=4; # deletions=1; …"); 0 when absent.
func tableProp(props, name string) int64 {
	i := strings.Index(props, name)
	if i < 0 {
		return 0
	}
	v := props[i+len(name):]
	if j := strings.IndexByte(v, ';'); j >= 0 {
		v = v[:j]
	}
	n, _ := strconv.ParseInt(v, 10, 64)
	return n
}
