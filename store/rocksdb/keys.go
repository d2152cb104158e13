package rocksdb

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math"
	"time"
)

// Key prefixes: one byte each, all in the default column family. doc.go
// describes every key and its value.
const (
	prefixMessage = 'm' // m topic id                  → message record
	prefixDue     = 'd' // d group tk(next) topic id   → empty
	prefixCheck   = 'c' // c tk(nextCheck) topic id    → empty
	prefixDedup   = 'w' // w bucket(until) topic id    → tk(until) seq
	prefixDead    = 'l' // l topic group seq           → dead letter record
	prefixDeadRef = 'r' // r topic group id            → seq…
	prefixBinding = 'b' // b group                     → binding document
	prefixMeta    = 'v' // v                           → format version

	// Format 1 kept dedup entries unbucketed, with an expiry index; Open
	// migrates them (migrate.go).
	prefixDedupV1    = 'u' // u topic id           → tk(until) seq
	prefixDedupExpV1 = 'x' // x tk(until) topic id → empty
)

// formatVersion is the layout version stored under the meta key. Open
// refuses a directory written with another one.
const formatVersion = 3

// dedupBucket is the width of a dedup bucket: a dedup entry's key starts
// with the time key of its expiry rounded down to a multiple of it, so that
// whole buckets of expired entries are dropped with one range delete.
const dedupBucket = uint64(time.Minute)

// bucketKey rounds time key tk down to its dedup bucket.
func bucketKey(tk uint64) uint64 { return tk - tk%dedupBucket }

// errCorrupt reports a key or value this package cannot decode.
var errCorrupt = errors.New("corrupt data")

// appendStr appends s as an order-preserving, self-delimiting component: a
// 0x00 byte becomes 0x00 0xFF and the component ends with 0x00 0x01. Any byte
// string is allowed, no component is a prefix of another, and byte order of
// encoded components is the byte order of the strings.
func appendStr(b []byte, s string) []byte {
	for {
		i := indexZero(s)
		if i < 0 {
			b = append(b, s...)
			return append(b, 0x00, 0x01)
		}
		b = append(b, s[:i]...)
		b = append(b, 0x00, 0xFF)
		s = s[i+1:]
	}
}

func indexZero(s string) int {
	for i := 0; i < len(s); i++ {
		if s[i] == 0 {
			return i
		}
	}
	return -1
}

// readStr decodes a component written by appendStr and returns the rest.
func readStr(b []byte) (string, []byte, error) {
	var out []byte
	for {
		i := bytes.IndexByte(b, 0x00)
		if i < 0 || i+1 >= len(b) {
			return "", nil, errCorrupt
		}
		switch b[i+1] {
		case 0x01:
			if out == nil {
				return string(b[:i]), b[i+2:], nil
			}
			return string(append(out, b[:i]...)), b[i+2:], nil
		case 0xFF:
			out = append(append(out, b[:i]...), 0x00)
			b = b[i+2:]
		default:
			return "", nil, errCorrupt
		}
	}
}

// timeKey maps t to an unsigned integer whose big-endian bytes sort as the
// times do: UnixNano with the sign bit flipped, clamped to the int64 range.
// The zero time maps to the Unix epoch, so it sorts before any real clock
// value and is always due.
func timeKey(t time.Time) uint64 {
	var n int64
	switch {
	case t.IsZero():
		n = 0
	case t.Before(minNanoTime):
		n = math.MinInt64
	case t.After(maxNanoTime):
		n = math.MaxInt64
	default:
		n = t.UnixNano()
	}
	return uint64(n) ^ (1 << 63)
}

var (
	minNanoTime = time.Unix(0, math.MinInt64)
	maxNanoTime = time.Unix(0, math.MaxInt64)
)

func appendU64(b []byte, v uint64) []byte { return binary.BigEndian.AppendUint64(b, v) }

func readU64(b []byte) (uint64, []byte, error) {
	if len(b) < 8 {
		return 0, nil, errCorrupt
	}
	return binary.BigEndian.Uint64(b), b[8:], nil
}

// key builds a key: prefix byte, then the string components.
func key(prefix byte, parts ...string) []byte {
	n := 1
	for _, p := range parts {
		n += len(p) + 2
	}
	b := append(make([]byte, 0, n+8), prefix)
	for _, p := range parts {
		b = appendStr(b, p)
	}
	return b
}

func msgKey(topic, id string) []byte { return key(prefixMessage, topic, id) }
func bindingKey(group string) []byte { return key(prefixBinding, group) }
func metaKey() []byte                { return []byte{prefixMeta} }

// isRecordKey reports whether k is a message record's key.
func isRecordKey(k []byte) bool { return len(k) > 0 && k[0] == prefixMessage }

func deadRefKey(topic, group, id string) []byte { return key(prefixDeadRef, topic, group, id) }

// duePrefix is the range of one group's due index.
func duePrefix(group string) []byte { return key(prefixDue, group) }

func dueKey(group string, tk uint64, topic, id string) []byte {
	b := appendU64(duePrefix(group), tk)
	return appendStr(appendStr(b, topic), id)
}

func checkKey(tk uint64, topic, id string) []byte {
	b := appendU64([]byte{prefixCheck}, tk)
	return appendStr(appendStr(b, topic), id)
}

// dedupKey is the key of the dedup entry of (topic, id) expiring at time
// key untilK.
func dedupKey(untilK uint64, topic, id string) []byte {
	b := appendU64([]byte{prefixDedup}, bucketKey(untilK))
	return appendStr(appendStr(b, topic), id)
}

// deadPrefix is the range of the dead letters of (topic, group).
func deadPrefix(topic, group string) []byte { return key(prefixDead, topic, group) }

func deadKey(topic, group string, seq uint64) []byte {
	return appendU64(deadPrefix(topic, group), seq)
}

// timeIndexKey splits a due, check or dedup-expiry key suffix, tk topic id.
func timeIndexKey(b []byte) (tk uint64, topic, id string, err error) {
	if tk, b, err = readU64(b); err != nil {
		return 0, "", "", err
	}
	if topic, b, err = readStr(b); err != nil {
		return 0, "", "", err
	}
	if id, b, err = readStr(b); err != nil || len(b) != 0 {
		return 0, "", "", errCorrupt
	}
	return tk, topic, id, nil
}

// splitDeadKey splits a dead letter key into topic, group and sequence.
func splitDeadKey(k []byte) (topic, group string, seq uint64, err error) {
	if len(k) == 0 || k[0] != prefixDead {
		return "", "", 0, errCorrupt
	}
	b := k[1:]
	if topic, b, err = readStr(b); err != nil {
		return "", "", 0, err
	}
	if group, b, err = readStr(b); err != nil {
		return "", "", 0, err
	}
	if seq, b, err = readU64(b); err != nil || len(b) != 0 {
		return "", "", 0, errCorrupt
	}
	return topic, group, seq, nil
}

// afterTime is the first key of an index range above time key tk, or the
// end of the range when tk is the largest time key.
func afterTime(prefix []byte, tk uint64) []byte {
	if tk == math.MaxUint64 {
		return prefixEnd(prefix)
	}
	return appendU64(bytes.Clone(prefix), tk+1)
}

// prefixEnd is the smallest key greater than every key starting with p.
// Every prefix used here ends below 0xFF, so the result is never empty.
func prefixEnd(p []byte) []byte {
	end := bytes.Clone(p)
	for i := len(end) - 1; i >= 0; i-- {
		if end[i] < 0xFF {
			end[i]++
			return end[:i+1]
		}
	}
	return nil
}
