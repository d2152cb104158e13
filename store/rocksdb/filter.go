package rocksdb

import (
	"fmt"
	"hash/maphash"
)

// dedupFilters keeps one Bloom filter per dedup bucket, of the (topic, id)
// of every dedup entry in it, so that a save with the publisher's id (a
// KiteQ message, a NATS publish with Nats-Msg-Id) reads only the buckets
// that may hold its id: almost always none, where it read every bucket its
// window spans (three or four point reads). A filter never answers "no"
// for an entry that is there: every entry a Write puts is added before it
// can be looked up, Open adds every entry on disk, and a bucket's filter is
// dropped only with the bucket itself. A false "maybe" costs the read it
// would have cost anyway.
//
// Memory: 10 bits per entry a filter has room for, and each filter's last
// block is up to half empty, so 1.25 to 2.5 bytes per entry of the buckets
// in force (the publish rate times the dedup window).
//
// Used by Write (under writeMu) and by Open only.
type dedupFilters struct {
	seed    maphash.Seed
	buckets map[uint64]*bloom
}

func newDedupFilters() dedupFilters {
	return dedupFilters{seed: maphash.MakeSeed(), buckets: make(map[uint64]*bloom)}
}

func (f *dedupFilters) hash(topic, id string) uint64 {
	var h maphash.Hash
	h.SetSeed(f.seed)
	h.WriteString(topic)
	h.WriteByte(0)
	h.WriteString(id)
	return h.Sum64()
}

// add records the entry of (topic, id) in bucket b.
func (f *dedupFilters) add(b uint64, topic, id string) {
	bl := f.buckets[b]
	if bl == nil {
		bl = &bloom{}
		f.buckets[b] = bl
	}
	bl.add(f.hash(topic, id))
}

// mayHave reports whether bucket b may hold an entry of (topic, id).
func (f *dedupFilters) mayHave(b uint64, topic, id string) bool {
	bl := f.buckets[b]
	return bl != nil && bl.mayHave(f.hash(topic, id))
}

// drop forgets the buckets below b (dropped from the store).
func (f *dedupFilters) drop(below uint64) {
	for b := range f.buckets {
		if b < below {
			delete(f.buckets, b)
		}
	}
}

// load adds every dedup entry on disk. caller owns s exclusively (Open)
func (s *Store) loadDedupFilters() error {
	v := s.newView(false)
	defer v.close()
	err := v.scan([]byte{prefixDedup}, []byte{prefixDedup + 1}, func(k, _ []byte) error {
		b, rest, err := readU64(k[1:])
		if err != nil {
			return fmt.Errorf("dedup key %q: %w", k, err)
		}
		topic, rest, err := readStr(rest)
		if err != nil {
			return fmt.Errorf("dedup key %q: %w", k, err)
		}
		id, rest, err := readStr(rest)
		if err != nil || len(rest) != 0 {
			return fmt.Errorf("dedup key %q: %w", k, errCorrupt)
		}
		s.filters.add(b, topic, id)
		return nil
	})
	if err != nil {
		return fmt.Errorf("rocksdb: open: dedup filters: %w", err)
	}
	return nil
}

// bloom is a Bloom filter that grows: a chain of blocks, each twice the
// size of the one before, filled to its capacity at 10 bits per key with 7
// probes (under 1 % false "maybe" per block).
type bloom struct {
	blocks []bloomBlock
}

type bloomBlock struct {
	bits []uint64
	n    int // keys added
	cap  int // keys it takes
}

const (
	bloomFirst  = 1 << 12 // keys in the first block
	bloomProbes = 7
)

func (b *bloom) add(h uint64) {
	if len(b.blocks) == 0 || b.blocks[len(b.blocks)-1].n >= b.blocks[len(b.blocks)-1].cap {
		c := bloomFirst << len(b.blocks)
		b.blocks = append(b.blocks, bloomBlock{bits: make([]uint64, (c*10+63)/64), cap: c})
	}
	blk := &b.blocks[len(b.blocks)-1]
	m := uint64(len(blk.bits) * 64)
	h1, h2 := h, h>>32|h<<32|1
	for i := range uint64(bloomProbes) {
		bit := (h1 + i*h2) % m
		blk.bits[bit/64] |= 1 << (bit % 64)
	}
	blk.n++
}

func (b *bloom) mayHave(h uint64) bool {
	h1, h2 := h, h>>32|h<<32|1
	for i := range b.blocks {
		blk := &b.blocks[i]
		m := uint64(len(blk.bits) * 64)
		hit := true
		for j := range uint64(bloomProbes) {
			bit := (h1 + j*h2) % m
			if blk.bits[bit/64]&(1<<(bit%64)) == 0 {
				hit = false
				break
			}
		}
		if hit {
			return true
		}
	}
	return false
}
