package rocksdb

import (
	"encoding/binary"
	"time"

	"github.com/kitenats/kitenats/store"
)

// recordVersion leads every message and dead letter value, so the encoding
// can change without a migration of what is already stored.
const recordVersion = 1

const (
	flagPrepared = 1 << 0
	// flagDeferred marks a record with a due key kept in memory only
	// (deferredIndex); Open writes the key and clears the flag.
	flagDeferred = 1 << 1
)

// encodeMessage encodes m as a message record:
//
//	version u8 | flags u8 | seq uvarint | topic, id, type, group str |
//	body type u8 | deliver limit, checks varint | created, expires,
//	next check time | n uvarint, n × (key, value str) |
//	n uvarint, n × (group str, attempts varint, next time) | body bytes
//
// str and bytes are a uvarint length and the bytes. A time is uvarint
// nanoseconds+1 then varint Unix seconds, or a single 0 for the zero time,
// so every time.Time round-trips exactly. Seq comes first: the duplicate
// check reads only it.
func encodeMessage(m *store.Message) []byte { return encodeRecord(m, false) }

// encodeRecord is encodeMessage with flagDeferred set when deferred is.
func encodeRecord(m *store.Message, deferred bool) []byte {
	b := make([]byte, 0, 96+len(m.Topic)+len(m.ID)+len(m.MessageType)+len(m.Group)+len(m.Body)+24*len(m.Groups))
	var flags byte
	if m.Prepared {
		flags |= flagPrepared
	}
	if deferred {
		flags |= flagDeferred
	}
	b = append(b, recordVersion, flags)
	b = binary.AppendUvarint(b, m.Seq)
	for _, s := range [...]string{m.Topic, m.ID, m.MessageType, m.Group} {
		b = appendLenStr(b, s)
	}
	b = append(b, byte(m.BodyType))
	b = binary.AppendVarint(b, int64(m.DeliverLimit))
	b = binary.AppendVarint(b, int64(m.Checks))
	b = appendTime(appendTime(appendTime(b, m.Created), m.Expires), m.NextCheck)
	b = binary.AppendUvarint(b, uint64(len(m.Properties)))
	for _, p := range m.Properties {
		b = appendLenStr(appendLenStr(b, p.Key), p.Value)
	}
	b = binary.AppendUvarint(b, uint64(len(m.Groups)))
	for _, g := range m.Groups {
		b = appendLenStr(b, g.Group)
		b = binary.AppendVarint(b, int64(g.Attempts))
		b = appendTime(b, g.NextAttempt)
	}
	b = binary.AppendUvarint(b, uint64(len(m.Body)))
	return append(b, m.Body...)
}

func appendLenStr(b []byte, s string) []byte {
	return append(binary.AppendUvarint(b, uint64(len(s))), s...)
}

func appendTime(b []byte, t time.Time) []byte {
	if t.IsZero() {
		return append(b, 0)
	}
	b = binary.AppendUvarint(b, uint64(t.Nanosecond())+1)
	return binary.AppendVarint(b, t.Unix())
}

// decodeMessage decodes a message record. Body aliases b: callers pass a
// buffer they own and never reuse.
func decodeMessage(b []byte) (*store.Message, error) {
	d := decoder{b: b}
	m := d.message()
	if d.err != nil || len(d.b) != 0 {
		return nil, errCorrupt
	}
	return m, nil
}

// recordDeferred reports whether a message record has flagDeferred.
func recordDeferred(b []byte) bool {
	return len(b) >= 2 && b[0] == recordVersion && b[1]&flagDeferred != 0
}

// recordSeq reads only the Seq of a message record.
func recordSeq(b []byte) (uint64, error) {
	if len(b) < 3 || b[0] != recordVersion {
		return 0, errCorrupt
	}
	d := decoder{b: b[2:]}
	seq := d.uvarint()
	return seq, d.err
}

// encodeDead encodes a dead letter: version u8 | group, reason str | at
// time | message record (without groups).
func encodeDead(dl store.DeadLetter) []byte {
	b := []byte{recordVersion}
	b = appendLenStr(appendLenStr(b, dl.Group), dl.Reason)
	b = appendTime(b, dl.At)
	return append(b, encodeMessage(dl.Message)...)
}

func decodeDead(b []byte) (store.DeadLetter, error) {
	d := decoder{b: b}
	if d.byte() != recordVersion {
		return store.DeadLetter{}, errCorrupt
	}
	dl := store.DeadLetter{Group: d.str(), Reason: d.str(), At: d.time()}
	dl.Message = d.message()
	if d.err != nil || len(d.b) != 0 {
		return store.DeadLetter{}, errCorrupt
	}
	return dl, nil
}

// encodeDedup encodes a dedup entry: until time key u64 | seq u64.
func encodeDedup(untilKey, seq uint64) []byte {
	return appendU64(appendU64(make([]byte, 0, 16), untilKey), seq)
}

func decodeDedup(b []byte) (untilKey, seq uint64, err error) {
	if len(b) != 16 {
		return 0, 0, errCorrupt
	}
	return binary.BigEndian.Uint64(b), binary.BigEndian.Uint64(b[8:]), nil
}

// decoder reads the encodings above; the first error sticks and later
// reads return zero values.
type decoder struct {
	b   []byte
	err error
}

func (d *decoder) fail() { d.err, d.b = errCorrupt, nil }

func (d *decoder) byte() byte {
	if len(d.b) < 1 {
		d.fail()
		return 0
	}
	c := d.b[0]
	d.b = d.b[1:]
	return c
}

func (d *decoder) uvarint() uint64 {
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.fail()
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) varint() int64 {
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.fail()
		return 0
	}
	d.b = d.b[n:]
	return v
}

// bytes returns the next length-prefixed bytes, aliasing the input.
func (d *decoder) bytes() []byte {
	n := d.uvarint()
	if n > uint64(len(d.b)) {
		d.fail()
		return nil
	}
	v := d.b[:n:n]
	d.b = d.b[n:]
	return v
}

func (d *decoder) str() string { return string(d.bytes()) }

// count reads a slice length and rejects one larger than the input could
// hold (each element takes at least min bytes).
func (d *decoder) count(min int) int {
	n := d.uvarint()
	if n > uint64(len(d.b)/min) {
		d.fail()
		return 0
	}
	return int(n)
}

func (d *decoder) time() time.Time {
	ns := d.uvarint()
	if ns == 0 || d.err != nil {
		return time.Time{}
	}
	if ns > 1e9 {
		d.fail()
		return time.Time{}
	}
	return time.Unix(d.varint(), int64(ns-1)).UTC()
}

func (d *decoder) message() *store.Message {
	if d.byte() != recordVersion {
		d.fail()
		return nil
	}
	flags := d.byte()
	m := &store.Message{Seq: d.uvarint(), Prepared: flags&flagPrepared != 0}
	m.Topic, m.ID, m.MessageType, m.Group = d.str(), d.str(), d.str(), d.str()
	m.BodyType = store.BodyType(d.byte())
	m.DeliverLimit, m.Checks = int(d.varint()), int(d.varint())
	m.Created, m.Expires, m.NextCheck = d.time(), d.time(), d.time()
	if n := d.count(2); n > 0 {
		m.Properties = make([]store.Property, n)
		for i := range m.Properties {
			m.Properties[i] = store.Property{Key: d.str(), Value: d.str()}
		}
	}
	if n := d.count(3); n > 0 {
		m.Groups = make([]store.GroupState, n)
		for i := range m.Groups {
			m.Groups[i] = store.GroupState{Group: d.str(), Attempts: int(d.varint()), NextAttempt: d.time()}
		}
	}
	m.Body = d.bytes()
	if d.err != nil {
		return nil
	}
	return m
}

// encodeSeqs and decodeSeqs encode the value of a dead letter reference:
// the sequence numbers of the letters of one (topic, group, id), oldest
// first (more than one only when an id was dead-lettered, expired from the
// dedup window, published again and dead-lettered again).
func encodeSeqs(seqs []uint64) []byte {
	b := make([]byte, 0, 8*len(seqs))
	for _, s := range seqs {
		b = appendU64(b, s)
	}
	return b
}

func decodeSeqs(b []byte) ([]uint64, error) {
	if len(b) == 0 || len(b)%8 != 0 {
		return nil, errCorrupt
	}
	out := make([]uint64, 0, len(b)/8)
	for ; len(b) > 0; b = b[8:] {
		out = append(out, binary.BigEndian.Uint64(b))
	}
	return out, nil
}
