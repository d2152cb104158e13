package rocksdb

import (
	"bytes"
	"slices"

	"github.com/linxGnu/grocksdb"
)

// opKind is the kind of one buffered write.
type opKind uint8

const (
	opPut opKind = iota
	opDelete
	opSingleDelete
)

// op is one buffered write of a Write's batch.
type op struct {
	kind opKind
	pos  int32 // position in the batch: the tie-break between writes of one key
	k, v []byte
}

// opBatch buffers the writes of one Write so that they reach RocksDB sorted
// by key.
//
// Why: the memtable is a skip list of tens of megabytes, far larger than
// the CPU caches. Inserting keys in the order a Write produces them (record,
// due key, dedup entry, expiry key, next message…) jumps across the whole
// list, and each insert pays a full descent with a cache miss per level.
// RocksDB keeps the position of the previous insert and starts the next one
// from there, so keys inserted in sorted order are found a few nodes away:
// the due and expiry keys (time ordered, mostly equal times) become near
// appends, and even random ids save the upper levels. The profile of the
// save+ack benchmark was ~40 % skip list search before this.
//
// Writes of one key keep their order (ties sort by position), which is all
// the WriteBatch semantics depend on: the batch is still applied
// atomically, and every key ends in the state of its last write. (A
// pattern-defeating sort with the position as tie-break is cheaper than
// slices.SortStableFunc, whose merges move entries many times.)
type opBatch struct {
	ops []op
}

func (b *opBatch) add(kind opKind, k, v []byte) {
	b.ops = append(b.ops, op{kind: kind, pos: int32(len(b.ops)), k: k, v: v})
}

func (b *opBatch) Put(k, v []byte)       { b.add(opPut, k, v) }
func (b *opBatch) Delete(k []byte)       { b.add(opDelete, k, nil) }
func (b *opBatch) SingleDelete(k []byte) { b.add(opSingleDelete, k, nil) }
func (b *opBatch) Count() int            { return len(b.ops) }

// writeTo sorts the buffered writes by key and adds them to wb.
func (b *opBatch) writeTo(wb *grocksdb.WriteBatch) {
	slices.SortFunc(b.ops, func(x, y op) int {
		if c := bytes.Compare(x.k, y.k); c != 0 {
			return c
		}
		return int(x.pos - y.pos)
	})
	for _, o := range b.ops {
		switch o.kind {
		case opPut:
			wb.Put(o.k, o.v)
		case opDelete:
			wb.Delete(o.k)
		case opSingleDelete:
			wb.SingleDelete(o.k)
		}
	}
}
