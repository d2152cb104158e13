package mysql

import (
	"context"
	"database/sql"
	"fmt"
	"sort"
	"time"

	"github.com/kitenats/kitenats/store"
)

// Updates are applied in three steps inside the Write transaction:
//
//  1. load: lock and read the message rows the updates name with their
//     group states (one SELECT … FOR UPDATE) and, for Dead and Replay,
//     their dead letters;
//  2. simulate: apply the updates in order to that in-memory image, with
//     exactly the semantics of store.Op;
//  3. flush: write the difference between the final and the initial image
//     with a few bulk statements per table (flush.go).
//
// Locking the message row first serialises every Write that touches the
// same message, so the image cannot go stale before the flush.

type groupVal struct {
	attempts int
	next     int64
}

// letter is one dead letter of a (message, group).
type letter struct {
	id     int64 // its kite_msg_dlq row; 0 for one made in this batch
	src    int64 // where its message is: 0 the initial message row, else a dlq row
	reason string
	at     int64
	// The message's state when it died (src 0 only): the row may change
	// later in the batch.
	prep   bool
	checks int
	nextCk int64
}

// image is the state of one message before (…0) and after the updates.
// Its content (body, header, seq…) is that of the initial message row
// while content is 0; a replay that recreates the message sets content to
// the dead letter row it came from.
type image struct {
	k               key
	h               int
	exists0, exists bool
	prep0, prep     bool
	checks0, checks int
	nextCk0, nextCk int64
	content         int64
	server          string // kite_server of the row, or ours if recreated
	seq             uint64 // for the dedup row written when it is deleted
	dedupUntil      int64
	groups0, groups map[string]groupVal
	dead0, dead     map[string][]letter // oldest first
}

func (s *Store) applyUpdates(ctx context.Context, tx *sql.Tx, now time.Time, ups []store.Update) error {
	if len(ups) == 0 {
		return nil
	}
	imgs, err := s.loadImages(ctx, tx, ups)
	if err != nil {
		return err
	}
	nowNS := toNS(now)
	for _, u := range ups {
		if err := s.simulate(imgs[key{u.Topic, u.ID}], u, nowNS); err != nil {
			return err
		}
	}
	return s.flush(ctx, tx, imgs, nowNS)
}

// simulate applies u to im; see store.Op for what each operation does.
func (s *Store) simulate(im *image, u store.Update, now int64) error {
	switch u.Op {
	case store.OpRetry:
		if g, ok := im.groups[u.Group]; ok && im.exists && !im.prep {
			g.attempts, g.next = u.Attempts, toNS(u.Next)
			im.groups[u.Group] = g
		}
	case store.OpAck, store.OpDead:
		if _, ok := im.groups[u.Group]; !ok || !im.exists {
			return nil
		}
		if u.Op == store.OpDead {
			reason := u.Reason
			if len(reason) > maxReasonLen {
				reason = reason[:maxReasonLen] // the column's width; it is only informative
			}
			im.dead[u.Group] = append(im.dead[u.Group], letter{src: im.content, reason: reason, at: now,
				prep: im.prep, checks: im.checks, nextCk: im.nextCk})
		}
		delete(im.groups, u.Group)
		im.exists = len(im.groups) > 0
	case store.OpCommit:
		if !im.exists || !im.prep {
			return nil
		}
		im.prep = false
		clear(im.groups)
		for _, g := range u.Groups {
			if len(g.Group) > maxNameLen {
				return fmt.Errorf("%w: commit %s/%s: group name is %d bytes", ErrTooLarge, u.Topic, u.ID, len(g.Group))
			}
			if _, dup := im.groups[g.Group]; !dup {
				im.groups[g.Group] = groupVal{g.Attempts, toNS(g.NextAttempt)}
			}
		}
		im.exists = len(im.groups) > 0
	case store.OpRollback:
		if im.exists && im.prep {
			im.exists = false
			clear(im.groups)
		}
	case store.OpCheck:
		if im.exists && im.prep {
			im.checks, im.nextCk = u.Attempts, toNS(u.Next)
		}
	case store.OpReplay:
		s.replay(im, u)
	case store.OpDiscard:
		if ls := im.dead[u.Group]; len(ls) > 0 {
			im.dead[u.Group] = ls[1:] // flush deletes the row it no longer keeps
		}
	default:
		return fmt.Errorf("mysql: update %s/%s: unknown op %v", u.Topic, u.ID, u.Op)
	}
	return nil
}

// replay moves the oldest dead letter of u.Group back to pending,
// recreating the message from that letter when it is gone.
func (s *Store) replay(im *image, u store.Update) {
	letters := im.dead[u.Group]
	if len(letters) == 0 {
		return
	}
	l := letters[0]
	im.dead[u.Group] = letters[1:]
	g := groupVal{0, toNS(u.Next)}
	if im.exists {
		if _, ok := im.groups[u.Group]; !ok {
			im.groups[u.Group] = g
		}
		return
	}
	im.exists, im.prep, im.content = true, false, l.src
	im.groups[u.Group] = g
	if !im.exists0 {
		im.server = s.cfg.Broker
	}
}

// loadImages locks and reads the state of every message the updates name.
func (s *Store) loadImages(ctx context.Context, tx *sql.Tx, ups []store.Update) (map[key]*image, error) {
	imgs := make(map[key]*image)
	wantDead := make(map[key]bool)
	var keys, deadKeys []key
	for _, u := range ups {
		k := key{u.Topic, u.ID}
		if imgs[k] == nil {
			imgs[k] = &image{
				k: k, h: partitionOf(u.ID),
				groups0: map[string]groupVal{}, groups: map[string]groupVal{},
				dead0: map[string][]letter{}, dead: map[string][]letter{},
			}
			keys = append(keys, k)
		}
		if (u.Op == store.OpDead || u.Op == store.OpReplay || u.Op == store.OpDiscard) && !wantDead[k] {
			wantDead[k] = true
			deadKeys = append(deadKeys, k)
		}
	}
	if err := s.loadMsgRows(ctx, tx, keys, imgs); err != nil {
		return nil, fmt.Errorf("load messages: %w", err)
	}
	if err := s.loadDeadRows(ctx, tx, deadKeys, imgs); err != nil {
		return nil, fmt.Errorf("load dead letters: %w", err)
	}
	for _, im := range imgs {
		im.exists, im.prep, im.checks, im.nextCk = im.exists0, im.prep0, im.checks0, im.nextCk0
		for g, v := range im.groups0 {
			im.groups[g] = v
		}
		for g, ls := range im.dead0 {
			sort.Slice(ls, func(i, j int) bool { return ls[i].id < ls[j].id })
			im.dead[g] = append([]letter(nil), ls...)
		}
	}
	return imgs, nil
}

// sortedKeys returns the keys of imgs in a stable order (partition, id,
// topic), the order in which rows are locked and written.
func sortedKeys(imgs map[key]*image) []key {
	keys := make([]key, 0, len(imgs))
	for k := range imgs {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		a, b := imgs[keys[i]], imgs[keys[j]]
		if a.h != b.h {
			return a.h < b.h
		}
		return a.k.id < b.k.id || a.k.id == b.k.id && a.k.topic < b.k.topic
	})
	return keys
}

// loadMsgRows locks and reads the message rows of keys and their group
// states, with one query: a row per (message, group), or one with NULL
// group columns for a message with no group.
func (s *Store) loadMsgRows(ctx context.Context, tx *sql.Tx, keys []key, imgs map[key]*image) error {
	q, args := s.unionByPartition(keys, "m.", func(h int, f string) string {
		return "(SELECT m.`message_id`,m.`topic`,m.`commit`,m.`checks`,m.`next_check_ns`,m.`kite_server`,m.`seq`," +
			"m.`dedup_until_ns`,g.`group_id`,g.`attempts`,g.`next_attempt_ns` FROM " + s.n.msg[h] + " m LEFT JOIN " +
			s.n.group[h] + " g ON g.`message_id`=m.`message_id` AND g.`topic`=m.`topic` WHERE " + f + " FOR UPDATE)"
	})
	return scanRows(ctx, tx, q, args, func(sc scanner) error {
		var id, topic, server, group []byte
		var commit bool
		var checks int
		var nextCk, until int64
		var seq uint64
		var attempts, next sql.NullInt64
		if err := sc.Scan(&id, &topic, &commit, &checks, &nextCk, &server, &seq, &until, &group, &attempts, &next); err != nil {
			return err
		}
		im := imgs[key{string(topic), string(id)}]
		if im == nil {
			return nil
		}
		im.exists0, im.prep0, im.checks0, im.nextCk0 = true, !commit, checks, nextCk
		im.server, im.seq, im.dedupUntil = string(server), seq, until
		if group != nil {
			im.groups0[string(group)] = groupVal{int(attempts.Int64), next.Int64}
		}
		return nil
	})
}

func (s *Store) loadDeadRows(ctx context.Context, tx *sql.Tx, keys []key, imgs map[key]*image) error {
	byDB := make(map[int][]key)
	for _, k := range keys {
		d := s.n.dbOf(partitionOf(k.id))
		byDB[d] = append(byDB[d], k)
	}
	var q string
	var args []any
	for d := range s.cfg.ShardNum {
		if len(byDB[d]) == 0 {
			continue
		}
		if q != "" {
			q += " UNION ALL "
		}
		f, a := keyFilter("", byDB[d])
		q += "(SELECT `id`,`message_id`,`topic`,`group_id`,`reason`,`dead_at_ns` FROM " + s.n.dlq[d] + " WHERE " + f + " FOR UPDATE)"
		args = append(args, a...)
	}
	return scanRows(ctx, tx, q, args, func(sc scanner) error {
		var id, topic, group, reason []byte
		var l letter
		if err := sc.Scan(&l.id, &id, &topic, &group, &reason, &l.at); err != nil {
			return err
		}
		if im := imgs[key{string(topic), string(id)}]; im != nil {
			l.src, l.reason = l.id, string(reason)
			im.dead0[string(group)] = append(im.dead0[string(group)], l)
		}
		return nil
	})
}

// unionByPartition returns the UNION ALL of part(h, filter) over the
// partitions of keys, in partition order, and its arguments.
func (s *Store) unionByPartition(keys []key, alias string, part func(h int, filter string) string) (string, []any) {
	parts := byPartition(keys)
	var q string
	var args []any
	for h := range shardSeed {
		if len(parts[h]) == 0 {
			continue
		}
		if q != "" {
			q += " UNION ALL "
		}
		f, a := keyFilter(alias, parts[h])
		q += part(h, f)
		args = append(args, a...)
	}
	return q, args
}

// scanRows runs q and calls each for every row. An empty q does nothing.
func scanRows(ctx context.Context, qr queryer, q string, args []any, each func(scanner) error) error {
	if q == "" {
		return nil
	}
	rows, err := qr.QueryContext(ctx, q, args...)
	if err != nil {
		return err
	}
	defer func() { _ = rows.Close() }()
	for rows.Next() {
		if err := each(rows); err != nil {
			return err
		}
	}
	return rows.Err()
}
