package rocksdb

import (
	"bytes"
	"fmt"
	"strconv"
	"time"

	"github.com/linxGnu/grocksdb"
)

// migrateChunk is how many format 1 dedup entries one migration batch
// converts.
const migrateChunk = 10000

// migrateV1 upgrades a format 1 directory to format 2: format 1 kept one
// dedup entry per (topic, id) under "u" and an expiry index under "x";
// format 2 keeps the entry in its expiry bucket under "w" and has no index.
// The entries still in force are copied in chunks, then the old ranges are
// dropped and the version set in one last batch. A crash in between leaves
// version 1, and the next Open copies again (a copy is idempotent).
// caller owns s exclusively (Open)
func (s *Store) migrateV1() error {
	nowK := timeKey(time.Now())
	start := []byte{prefixDedupV1}
	end := []byte{prefixDedupV1 + 1}
	copied := 0
	for {
		wb := grocksdb.NewWriteBatch()
		var next []byte
		n := 0
		v := s.newView(false)
		err := v.scan(start, end, func(k, val []byte) error {
			if n == migrateChunk {
				next = bytes.Clone(k)
				return errStop
			}
			n++
			topic, rest, err := readStr(k[1:])
			if err != nil {
				return nil // not ours to read: dropped with the range
			}
			id, rest, err := readStr(rest)
			if err != nil || len(rest) != 0 {
				return nil
			}
			until, _, err := decodeDedup(val)
			if err != nil || until <= nowK {
				return nil // corrupt or expired: nothing to keep
			}
			wb.Put(dedupKey(until, topic, id), bytes.Clone(val))
			copied++
			return nil
		})
		v.close()
		if err == nil && wb.Count() > 0 {
			err = s.db.Write(s.wo, wb)
		}
		wb.Destroy()
		if err != nil {
			return err
		}
		if next == nil {
			break
		}
		start = next
	}
	wb := grocksdb.NewWriteBatch()
	defer wb.Destroy()
	wb.DeleteRange([]byte{prefixDedupV1}, []byte{prefixDedupV1 + 1})
	wb.DeleteRange([]byte{prefixDedupExpV1}, []byte{prefixDedupExpV1 + 1})
	wb.Put(metaKey(), []byte(strconv.Itoa(formatVersion)))
	if err := s.db.Write(s.wo, wb); err != nil {
		return fmt.Errorf("drop format 1 dedup index: %w", err)
	}
	s.log.Info("rocksdb: migrated format 1 to 2", "dedup_entries", copied)
	return nil
}
