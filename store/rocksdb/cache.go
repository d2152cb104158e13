package rocksdb

// recordCache keeps the message records the last Writes put, so that the
// updates that soon follow a save (the ack of the one group, a retry, a
// commit) read the record from memory instead of with a RocksDB point
// read. In the broker's steady state a message is acked tens of
// milliseconds after it is saved, so a cache of the last few thousand
// records serves almost every ack; the point read it saves was the most
// expensive single call of the write path (a hit copies the record out of
// the memtable or a table block, through cgo).
//
// It holds only records as they are on disk after a successful Write: a
// Write fills it in commit, after its batch is written, with every record
// key the batch put (the new value) or deleted (dropped). A failed Write
// changes nothing. Every record write goes through Write, serialized by
// Store.writeMu, which also guards the cache; Get, Due and the other reads
// do not use it. So a cached value is always the stored one, and a key
// that is not cached is simply read from the database.
//
// It is bounded by count and by bytes, oldest insertion first out.
type recordCache struct {
	m        map[string]cacheEntry
	fifo     []cacheRef // ring of insertions; stale refs are skipped
	head, n  int        // oldest ref and number of refs in fifo
	bytes    int        // sum of len(val) over m
	maxBytes int
	gen      uint64 // insertion counter: tells a stale ref from a live one
}

type cacheEntry struct {
	val []byte
	gen uint64
}

type cacheRef struct {
	key string
	gen uint64
}

const (
	cacheEntries = 1 << 16
	cacheBytes   = 32 << 20
)

func newRecordCache(entries, maxBytes int) recordCache {
	return recordCache{
		m:        make(map[string]cacheEntry),
		fifo:     make([]cacheRef, entries),
		maxBytes: maxBytes,
	}
}

// get returns the cached record of key k, if it is cached.
func (c *recordCache) get(k string) ([]byte, bool) {
	e, ok := c.m[k]
	return e.val, ok
}

// set caches v as the record of k, or drops k when v is nil (deleted).
// The cache keeps v: the caller never modifies it.
func (c *recordCache) set(k string, v []byte) {
	if old, ok := c.m[k]; ok {
		c.bytes -= len(old.val)
		delete(c.m, k)
	}
	if v == nil || len(v) > c.maxBytes {
		return
	}
	for c.n == len(c.fifo) || c.bytes+len(v) > c.maxBytes {
		c.evict()
	}
	c.gen++
	c.m[k] = cacheEntry{val: v, gen: c.gen}
	c.bytes += len(v)
	c.fifo[(c.head+c.n)%len(c.fifo)] = cacheRef{key: k, gen: c.gen}
	c.n++
}

// evict drops the oldest insertion, if it is still the cached value of its
// key. caller ensures c.n > 0
func (c *recordCache) evict() {
	r := c.fifo[c.head]
	c.fifo[c.head] = cacheRef{}
	c.head = (c.head + 1) % len(c.fifo)
	c.n--
	if e, ok := c.m[r.key]; ok && e.gen == r.gen {
		c.bytes -= len(e.val)
		delete(c.m, r.key)
	}
}

// clear empties the cache, after a Write whose outcome is unknown.
func (c *recordCache) clear() {
	clear(c.m)
	clear(c.fifo)
	c.head, c.n, c.bytes = 0, 0, 0
}
