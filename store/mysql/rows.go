package mysql

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"google.golang.org/protobuf/encoding/protowire"

	"github.com/kitenats/kitenats/store"
)

// insertCols are the columns a save writes to a message table, in the
// order of messageRow's values. KiteQ's deliver_count, fail_groups and
// succ_groups keep their defaults (0, 'null', 'null'), as KiteQ writes
// them for a fresh message.
var insertCols = []string{
	"header", "body", "msg_type", "message_id", "topic", "message_type", "publish_group",
	"commit", "expired_time", "publish_time", "deliver_limit", "kite_server", "next_deliver_time",
	"seq", "created_ns", "expires_ns", "checks", "next_check_ns", "dedup_until_ns",
}

// copyCols are the columns copied between a message table and a dead-letter
// table: everything but kite_server and the dead-letter fields.
var copyCols = []string{
	"header", "body", "msg_type", "message_id", "topic", "message_type", "publish_group",
	"commit", "expired_time", "publish_time", "deliver_count", "deliver_limit",
	"fail_groups", "succ_groups", "next_deliver_time",
	"seq", "created_ns", "expires_ns", "checks", "next_check_ns", "dedup_until_ns",
}

func colList(prefix string, cols []string) string {
	q := make([]string, len(cols))
	for i, c := range cols {
		q[i] = prefix + "`" + c + "`"
	}
	return strings.Join(q, ",")
}

// messageRow returns the values of insertCols for m. KiteQ's own columns
// get what KiteQ would write for a fresh message, with the earliest
// pending NextAttempt as next_deliver_time (seconds). dedupUntil is when
// the message's dedup entry would expire: one is written only if the
// message is deleted before then.
func messageRow(m *store.Message, now time.Time, dedupUntil int64, broker string) []any {
	var next int64
	for i, g := range m.Groups {
		if s := unixSeconds(g.NextAttempt); i == 0 || s < next {
			next = s
		}
	}
	return []any{
		blob(encodeHeader(m)), blob(m.Body), uint8(m.BodyType), bin(m.ID), bin(m.Topic),
		bin(m.MessageType), bin(m.Group), !m.Prepared, unixSeconds(m.Expires), unixSeconds(now),
		m.DeliverLimit, bin(broker), next,
		m.Seq, toNS(m.Created), toNS(m.Expires), m.Checks, toNS(m.NextCheck), dedupUntil,
	}
}

// selectCols are read back into a store.Message by scanMessage.
var selectCols = []string{
	"message_id", "topic", "message_type", "publish_group", "msg_type", "body", "header",
	"commit", "deliver_limit", "seq", "created_ns", "expires_ns", "checks", "next_check_ns",
}

type scanner interface{ Scan(dest ...any) error }

// scanMessage reads selectCols, then extra, from sc.
func scanMessage(sc scanner, extra ...any) (*store.Message, error) {
	var (
		id, topic, mtype, group, body, header []byte
		bodyType                              uint8
		commit                                bool
		limit, checks                         int
		seq                                   uint64
		created, expires, nextCheck           int64
	)
	dest := append([]any{&id, &topic, &mtype, &group, &bodyType, &body, &header,
		&commit, &limit, &seq, &created, &expires, &checks, &nextCheck}, extra...)
	if err := sc.Scan(dest...); err != nil {
		return nil, err
	}
	props, err := decodeProperties(header)
	if err != nil {
		return nil, fmt.Errorf("message %s/%s: %w", topic, id, err)
	}
	return &store.Message{
		Topic:        string(topic),
		ID:           string(id),
		MessageType:  string(mtype),
		Group:        string(group),
		BodyType:     store.BodyType(bodyType),
		Body:         body,
		Properties:   props,
		Created:      fromNS(created),
		Expires:      fromNS(expires),
		DeliverLimit: limit,
		Seq:          seq,
		Prepared:     !commit,
		Checks:       checks,
		NextCheck:    fromNS(nextCheck),
	}, nil
}

// byPartition groups keys by partition; ids are sorted so that locking
// reads take row locks in one order.
func byPartition(keys []key) map[int][]key {
	out := make(map[int][]key)
	for _, k := range keys {
		h := partitionOf(k.id)
		out[h] = append(out[h], k)
	}
	for _, ks := range out {
		sort.Slice(ks, func(i, j int) bool {
			return ks[i].id < ks[j].id || ks[i].id == ks[j].id && ks[i].topic < ks[j].topic
		})
	}
	return out
}

// keyFilter returns "`message_id` IN (…) AND `topic` IN (…)" for keys (the
// primary key serves it as a range) and its arguments. It may match a few
// more rows, same id under another listed topic: callers check keys.
func keyFilter(alias string, keys []key) (string, []any) {
	ids, topics := map[string]bool{}, map[string]bool{}
	var args, targs []any
	for _, k := range keys {
		if !ids[k.id] {
			ids[k.id] = true
			args = append(args, bin(k.id))
		}
		if !topics[k.topic] {
			topics[k.topic] = true
			targs = append(targs, bin(k.topic))
		}
	}
	q := alias + "`message_id` IN " + marks(len(args)) + " AND " + alias + "`topic` IN " + marks(len(targs))
	return q, append(args, targs...)
}

// idFilter is keyFilter on ids alone, for tables indexed by id first.
func idFilter(keys []key) (string, []any) {
	seen := map[string]bool{}
	var args []any
	for _, k := range keys {
		if !seen[k.id] {
			seen[k.id] = true
			args = append(args, bin(k.id))
		}
	}
	return "`message_id` IN " + marks(len(args)), args
}

// loadMessages reads the messages with the given keys, with all their
// pending group states. Missing keys are absent from the result.
func (s *Store) loadMessages(ctx context.Context, q queryer, keys []key) (map[key]*store.Message, error) {
	out := make(map[key]*store.Message, len(keys))
	if len(keys) == 0 {
		return out, nil
	}
	parts := byPartition(keys)
	want := make(map[key]bool, len(keys))
	for _, k := range keys {
		want[k] = true
	}
	var msgQ, grpQ []string
	var msgArgs, grpArgs []any
	for h, ks := range parts {
		f, args := keyFilter("", ks)
		msgQ = append(msgQ, "SELECT "+colList("", selectCols)+" FROM "+s.n.msg[h]+" WHERE "+f)
		msgArgs = append(msgArgs, args...)
		grpQ = append(grpQ, "SELECT `message_id`,`topic`,`group_id`,`attempts`,`next_attempt_ns` FROM "+s.n.group[h]+" WHERE "+f)
		grpArgs = append(grpArgs, args...)
	}
	rows, err := q.QueryContext(ctx, strings.Join(msgQ, " UNION ALL "), msgArgs...)
	if err != nil {
		return nil, err
	}
	defer func() { _ = rows.Close() }()
	for rows.Next() {
		m, err := scanMessage(rows)
		if err != nil {
			return nil, err
		}
		if k := (key{m.Topic, m.ID}); want[k] {
			out[k] = m
		}
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	if len(out) == 0 {
		return out, nil
	}
	grows, err := q.QueryContext(ctx, strings.Join(grpQ, " UNION ALL ")+" ORDER BY `group_id`", grpArgs...)
	if err != nil {
		return nil, err
	}
	defer func() { _ = grows.Close() }()
	for grows.Next() {
		var id, topic, group []byte
		var g store.GroupState
		var next int64
		if err := grows.Scan(&id, &topic, &group, &g.Attempts, &next); err != nil {
			return nil, err
		}
		if m := out[key{string(topic), string(id)}]; m != nil {
			g.Group, g.NextAttempt = string(group), fromNS(next)
			m.Groups = append(m.Groups, g)
		}
	}
	return out, grows.Err()
}

// The header column holds a KiteQ protobuf Header (kiteq-protocol.md §2.2),
// with every required field present, so KiteQ's own tools can decode the
// rows. kitenats reads back only its properties (field 9): every other value
// is kept, at full precision, in its own column.
const (
	hdrMessageID    protowire.Number = 1
	hdrTopic        protowire.Number = 2
	hdrMessageType  protowire.Number = 3
	hdrExpiredTime  protowire.Number = 4
	hdrDeliverLimit protowire.Number = 5
	hdrGroupID      protowire.Number = 6
	hdrCommit       protowire.Number = 7
	hdrFly          protowire.Number = 8
	hdrProperties   protowire.Number = 9
	hdrCreateTime   protowire.Number = 10

	entryKey   protowire.Number = 1
	entryValue protowire.Number = 2
)

// encodeHeader returns m's KiteQ Header. Times are Unix seconds, as KiteQ
// has them; a zero time is written as 0.
func encodeHeader(m *store.Message) []byte {
	n := 48 + len(m.ID) + len(m.Topic) + len(m.MessageType) + len(m.Group)
	for _, p := range m.Properties {
		n += 8 + len(p.Key) + len(p.Value)
	}
	b := make([]byte, 0, n)
	b = appendString(b, hdrMessageID, m.ID)
	b = appendString(b, hdrTopic, m.Topic)
	b = appendString(b, hdrMessageType, m.MessageType)
	b = appendVarint(b, hdrExpiredTime, uint64(unixSeconds(m.Expires)))
	b = appendVarint(b, hdrDeliverLimit, uint64(int64(m.DeliverLimit)))
	b = appendString(b, hdrGroupID, m.Group)
	b = appendVarint(b, hdrCommit, protowire.EncodeBool(!m.Prepared))
	b = appendVarint(b, hdrFly, protowire.EncodeBool(false))
	for _, p := range m.Properties {
		var e []byte
		e = appendString(e, entryKey, p.Key)
		e = appendString(e, entryValue, p.Value)
		b = protowire.AppendTag(b, hdrProperties, protowire.BytesType)
		b = protowire.AppendBytes(b, e)
	}
	return appendVarint(b, hdrCreateTime, uint64(unixSeconds(m.Created)))
}

func appendString(b []byte, num protowire.Number, s string) []byte {
	b = protowire.AppendTag(b, num, protowire.BytesType)
	return protowire.AppendString(b, s)
}

func appendVarint(b []byte, num protowire.Number, v uint64) []byte {
	b = protowire.AppendTag(b, num, protowire.VarintType)
	return protowire.AppendVarint(b, v)
}

func unixSeconds(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.Unix()
}

var errHeader = errors.New("malformed header")

// decodeProperties returns the properties of a KiteQ Header, in order.
// Fields it does not need are skipped.
func decodeProperties(b []byte) ([]store.Property, error) {
	var props []store.Property
	err := bytesFields(b, "header", func(num protowire.Number, v []byte) error {
		if num != hdrProperties {
			return nil
		}
		var p store.Property
		err := bytesFields(v, "property", func(num protowire.Number, v []byte) error {
			switch num {
			case entryKey:
				p.Key = string(v)
			case entryValue:
				p.Value = string(v)
			}
			return nil
		})
		props = append(props, p)
		return err
	})
	if err != nil {
		return nil, err
	}
	return props, nil
}

// bytesFields calls fn with the number and value of every length-delimited
// field of the protobuf message b, in order, and skips the other fields.
// what names the message in errors, which wrap errHeader.
func bytesFields(b []byte, what string, fn func(num protowire.Number, v []byte) error) error {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return fmt.Errorf("%w: %s: %w", errHeader, what, protowire.ParseError(n))
		}
		b = b[n:]
		if typ != protowire.BytesType {
			if n = protowire.ConsumeFieldValue(num, typ, b); n < 0 {
				return fmt.Errorf("%w: %s field %d: %w", errHeader, what, num, protowire.ParseError(n))
			}
			b = b[n:]
			continue
		}
		v, n := protowire.ConsumeBytes(b)
		if n < 0 {
			return fmt.Errorf("%w: %s field %d: %w", errHeader, what, num, protowire.ParseError(n))
		}
		b = b[n:]
		if err := fn(num, v); err != nil {
			return err
		}
	}
	return nil
}
