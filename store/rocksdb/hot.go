package rocksdb

import (
	"bytes"
	"slices"
	"sync"

	"github.com/linxGnu/grocksdb"
)

// hotRecords holds the message records ("m" keys) that Writes put or
// deleted since the records were last moved to RocksDB, instead of it: the
// journal already has them, and most messages are acked within
// milliseconds, so their record never needs to reach RocksDB at all. When
// the journal rotates, or when the map holds more than a quarter of a
// segment's bytes (records nobody acks: a backlog), the records still
// here are written to RocksDB (moveTo) and the map starts empty.
//
// A key here overrides RocksDB: a nil value means deleted. base says
// whether RocksDB may hold an older value of the key, so that a delete of
// a key RocksDB never had just forgets it, and one of a key it may have
// stays as a tombstone until moveTo deletes it there too.
//
// Write (under Store.writeMu) is the only writer; the reads of Get, Due
// and the other queries take mu shared.
type hotRecords struct {
	mu    sync.RWMutex
	m     map[string]hotRecord
	bytes int // sum of len(val) over m
}

type hotRecord struct {
	val  []byte // nil: deleted
	base bool   // RocksDB may hold an older value
}

func newHotRecords() *hotRecords { return &hotRecords{m: make(map[string]hotRecord)} }

// get returns the record of k and true when the map decides it (val nil:
// deleted), or false when RocksDB does.
func (h *hotRecords) get(k []byte) ([]byte, bool) {
	h.mu.RLock()
	r, ok := h.m[string(k)]
	h.mu.RUnlock()
	return r.val, ok
}

// apply records the record writes of one Write; fresh says whether a key
// was absent before it (so that RocksDB cannot hold it unless the map says
// so).
func (h *hotRecords) apply(ops []op, fresh func(k []byte) bool) {
	if len(ops) == 0 {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, o := range ops {
		r, ok := h.m[string(o.k)]
		if !ok {
			r.base = !fresh(o.k)
		}
		h.bytes -= len(r.val)
		switch {
		case o.kind == opPut:
			r.val = o.v
			h.bytes += len(r.val)
			h.m[string(o.k)] = r
		case r.base:
			r.val = nil
			h.m[string(o.k)] = r
		default:
			delete(h.m, string(o.k))
		}
	}
}

// moveTo writes every record to db with wo (a put, or a delete for a
// tombstone), in key order (RocksDB's memtable inserts in order cheaply)
// and in WriteBatches of about moveChunk bytes (one batch of the whole map
// would double its memory). The batches need not be atomic together: the
// journal holds every record, and the map keeps serving reads until reset.
// The caller (the writer) calls reset once moveTo succeeded.
func (h *hotRecords) moveTo(db *grocksdb.DB, wo *grocksdb.WriteOptions) error {
	keys := make([]string, 0, len(h.m))
	for k := range h.m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	wb := grocksdb.NewWriteBatch()
	defer wb.Destroy()
	size := 0
	for i, k := range keys {
		if r := h.m[k]; r.val != nil {
			wb.Put([]byte(k), r.val)
			size += len(k) + len(r.val)
		} else {
			wb.Delete([]byte(k))
			size += len(k)
		}
		if size >= moveChunk || i == len(keys)-1 {
			if err := db.Write(wo, wb); err != nil {
				return err
			}
			wb.Clear()
			size = 0
		}
	}
	return nil
}

// moveChunk is the size of one WriteBatch of moveTo.
const moveChunk = 1 << 20

// reset empties the map, once moveTo's batch is written.
func (h *hotRecords) reset() {
	h.mu.Lock()
	h.m = make(map[string]hotRecord)
	h.bytes = 0
	h.mu.Unlock()
}

// read returns a copy of the record under k (a decoded message may alias
// it), or nil when there is none: from h when h has k, else from db with
// ro.
func (h *hotRecords) read(db *grocksdb.DB, ro *grocksdb.ReadOptions, k []byte) ([]byte, error) {
	if val, ok := h.get(k); ok {
		return bytes.Clone(val), nil
	}
	return db.GetBytes(ro, k)
}

// len returns the number of keys held.
func (h *hotRecords) len() int {
	h.mu.RLock()
	defer h.mu.RUnlock()
	return len(h.m)
}
