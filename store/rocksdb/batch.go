package rocksdb

import (
	"bytes"
	"fmt"
	"slices"

	"github.com/linxGnu/grocksdb"
)

// opKind is the kind of one buffered write.
type opKind uint8

const (
	opPut opKind = iota
	opDelete
	opDeleteRange // k..v
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
//
// Keys put by this batch that were absent before it ("fresh": a new
// message's record and due keys) collapse: if the batch also deletes one,
// none of its writes reach RocksDB, since the key ends as it began; if it
// puts one several times, only the last put does. A message saved and
// acked in the same group-committed batch (the broker delivers a message
// with a broker-made id while its save waits for the writer, so its ack
// can join the save) then costs its dedup entry only.
type opBatch struct {
	ops   []op
	fresh map[string]struct{} // keys known absent before the batch
}

// reset empties b, keeping its capacity.
func (b *opBatch) reset() {
	clear(b.ops) // drop the keys and values for the GC
	b.ops = b.ops[:0]
	clear(b.fresh)
}

func (b *opBatch) add(kind opKind, k, v []byte) {
	b.ops = append(b.ops, op{kind: kind, pos: int32(len(b.ops)), k: k, v: v})
}

func (b *opBatch) Put(k, v []byte) { b.add(opPut, k, v) }

// PutFresh puts k, which the caller knows was absent before this batch.
func (b *opBatch) PutFresh(k, v []byte) {
	b.markFresh(k)
	b.add(opPut, k, v)
}

// markFresh records that k was absent before this batch.
func (b *opBatch) markFresh(k []byte) {
	if b.fresh == nil {
		b.fresh = make(map[string]struct{})
	}
	b.fresh[string(k)] = struct{}{}
}

func (b *opBatch) Delete(k []byte) { b.add(opDelete, k, nil) }

// DeleteRange deletes every key from start up to, not including, end.
func (b *opBatch) DeleteRange(start, end []byte) { b.add(opDeleteRange, start, end) }

// isFresh reports whether k was put with PutFresh.
func (b *opBatch) isFresh(k []byte) bool {
	_, ok := b.fresh[string(k)]
	return ok
}

func (b *opBatch) Count() int { return len(b.ops) }

// each sorts the buffered writes by key, collapses the writes of fresh
// keys, and calls fn with every write that is left, in order. It returns
// how many it passed.
func (b *opBatch) each(fn func(o op)) int {
	slices.SortFunc(b.ops, func(x, y op) int {
		if c := bytes.Compare(x.k, y.k); c != 0 {
			return c
		}
		return int(x.pos - y.pos)
	})
	n := 0
	for i := 0; i < len(b.ops); {
		j := i + 1
		for j < len(b.ops) && bytes.Equal(b.ops[j].k, b.ops[i].k) {
			j++
		}
		run := b.ops[i:j]
		i = j
		if _, ok := b.fresh[string(run[0].k)]; ok {
			if last := run[len(run)-1]; last.kind == opPut {
				run = run[len(run)-1:]
			} else {
				continue // absent before, absent after
			}
		}
		for _, o := range run {
			fn(o)
			n++
		}
	}
	return n
}

// addTo adds o to wb.
func (o op) addTo(wb *grocksdb.WriteBatch) {
	switch o.kind {
	case opPut:
		wb.Put(o.k, o.v)
	case opDelete:
		wb.Delete(o.k)
	case opDeleteRange:
		wb.DeleteRange(o.k, o.v)
	}
}

// isRecord reports whether o writes one message record (an "m" key), which
// goes to hotRecords instead of RocksDB. A range delete never covers
// records: the store range-deletes dedup buckets only.
func (o op) isRecord() bool {
	if o.kind == opDeleteRange {
		if o.k[0] <= prefixMessage && (len(o.v) == 0 || o.v[0] > prefixMessage) {
			panic(fmt.Sprintf("rocksdb: a range delete %q..%q covers message records", o.k, o.v))
		}
		return false
	}
	return isRecordKey(o.k)
}
