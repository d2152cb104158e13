package mysql

import (
	"context"
	"database/sql"
	"fmt"
	"sort"
	"strings"
)

// flushRows are the bulk changes of one flush, by partition (or database).
type flushRows struct {
	fields   [shardSeed][][]any // message commit/checks/next check
	newDead  [shardSeed][][]any // dead letters copied from the message row
	fromDead []*image           // message rows (re)written from a dead letter
	grpDel   [shardSeed][][]any
	grpUp    [shardSeed][][]any
	checkDel [shardSeed][][]any
	checkUp  [shardSeed][][]any
	msgDel   [shardSeed][][]any
	deadDel  [][][]any // by database: letter ids
	dedup    [][][]any // by database: entries of deleted messages
}

// flush writes the difference between the initial and final images. Rows
// are copied (message ↔ dead letter) before their source changes:
//
//  1. new dead letters whose message came from a dead letter (one
//     statement each: rare), then, in bulk, those copied from the message
//     row, and the commit/checks/next-check changes of kept messages;
//  2. message rows recreated, or replaced, from a dead letter by a replay
//     (one statement each: rare);
//  3. replayed dead letters, deleted;
//  4. group states and check rows: deleted, then upserted;
//  5. deleted messages, and the dedup rows that outlive them.
func (s *Store) flush(ctx context.Context, tx *sql.Tx, imgs map[key]*image, now int64) error {
	w := flushRows{deadDel: make([][][]any, s.cfg.ShardNum), dedup: make([][][]any, s.cfg.ShardNum)}
	for _, k := range sortedKeys(imgs) {
		if err := s.diff(ctx, tx, imgs[k], now, &w); err != nil {
			return err
		}
	}
	for h := range shardSeed {
		if err := s.flushPartition(ctx, tx, h, &w); err != nil {
			return err
		}
	}
	for _, im := range w.fromDead {
		if err := s.rowFromDead(ctx, tx, im); err != nil {
			return err
		}
	}
	for d := range s.cfg.ShardNum {
		head := "DELETE FROM " + s.n.dlq[d] + " WHERE `id` IN ("
		if _, err := execChunks(ctx, tx, s.stmts, w.deadDel[d], s.cfg.BatchDelSize, valuesRows(head, 1, ")")); err != nil {
			return fmt.Errorf("delete dead letters: %w", err)
		}
	}
	for h := range shardSeed {
		if err := s.flushRows(ctx, tx, h, &w); err != nil {
			return err
		}
	}
	for d := range s.cfg.ShardNum {
		head := "INSERT INTO " + s.n.dedup[d] + dedupInsert
		if _, err := execChunks(ctx, tx, s.stmts, w.dedup[d], s.cfg.BatchUpdateSize, valuesRows(head, 4, dedupKeepLatest)); err != nil {
			return fmt.Errorf("insert dedup: %w", err)
		}
	}
	return nil
}

// dedupKeepLatest keeps the entry that lasts longer, which is the later
// publish's: a message that a replay recreated from an old dead letter
// must not shorten the window of a newer publish of its id.
const dedupKeepLatest = " ON DUPLICATE KEY UPDATE `seq`=IF(VALUES(`until_ns`)>`until_ns`,VALUES(`seq`),`seq`)," +
	"`until_ns`=GREATEST(`until_ns`,VALUES(`until_ns`))"

// diff adds the changes of one message to w; the rare ones that copy from
// a dead letter it writes at once.
func (s *Store) diff(ctx context.Context, tx *sql.Tx, im *image, now int64, w *flushRows) error {
	h, d := im.h, s.n.dbOf(im.h)
	id, tp := bin(im.k.id), bin(im.k.topic)
	kept := make(map[int64]bool)
	for _, g := range sortedNames(im.dead) {
		for _, l := range im.dead[g] {
			switch {
			case l.id != 0:
				kept[l.id] = true
			case l.src == 0:
				w.newDead[h] = append(w.newDead[h], []any{id, tp, bin(g), bin(l.reason), l.at, !l.prep, l.checks, l.nextCk})
			default:
				if err := s.deadFromDead(ctx, tx, im, g, l); err != nil {
					return err
				}
			}
		}
	}
	for _, g := range sortedNames(im.dead0) {
		for _, l := range im.dead0[g] {
			if !kept[l.id] {
				w.deadDel[d] = append(w.deadDel[d], []any{l.id})
			}
		}
	}
	switch {
	case im.exists && im.content != 0:
		w.fromDead = append(w.fromDead, im)
	case im.exists && im.exists0 && (im.prep != im.prep0 || im.checks != im.checks0 || im.nextCk != im.nextCk0):
		w.fields[h] = append(w.fields[h], []any{id, tp, !im.prep, im.checks, im.nextCk})
	case im.exists0 && !im.exists:
		w.msgDel[h] = append(w.msgDel[h], []any{id, tp})
		if im.dedupUntil > now {
			w.dedup[d] = append(w.dedup[d], []any{id, tp, im.seq, im.dedupUntil})
		}
	}
	for _, g := range sortedNames(im.groups0) {
		if _, ok := im.groups[g]; !ok || !im.exists {
			w.grpDel[h] = append(w.grpDel[h], []any{id, tp, bin(g)})
		}
	}
	if im.exists {
		for _, g := range sortedNames(im.groups) {
			if v0, ok := im.groups0[g]; !ok || v0 != im.groups[g] {
				w.grpUp[h] = append(w.grpUp[h], []any{id, tp, bin(g), bin(im.server), im.groups[g].attempts, im.groups[g].next})
			}
		}
	}
	check0, check := im.exists0 && im.prep0, im.exists && im.prep
	switch {
	case check0 && !check:
		w.checkDel[h] = append(w.checkDel[h], []any{id, tp})
	case check && (!check0 || im.nextCk != im.nextCk0):
		w.checkUp[h] = append(w.checkUp[h], []any{id, tp, bin(im.server), im.nextCk})
	}
	return nil
}

// flushPartition copies new dead letters from the message rows of
// partition h and updates message fields.
func (s *Store) flushPartition(ctx context.Context, tx *sql.Tx, h int, w *flushRows) error {
	// The message as it was when it died: its row, with the state it had
	// then. Not prepared: a repeated row would copy a letter twice. Rare.
	sel := make([]string, len(copyCols))
	for i, c := range copyCols {
		sel[i] = map[string]string{"commit": "v.c", "checks": "v.ck", "next_check_ns": "v.nc"}[c]
		if sel[i] == "" {
			sel[i] = "m.`" + c + "`"
		}
	}
	n, err := execChunks(ctx, tx, nil, w.newDead[h], s.cfg.BatchUpdateSize, func(n int) string {
		return "INSERT INTO " + s.n.dlq[s.n.dbOf(h)] + " (" + colList("", copyCols) + ",`kite_server`,`group_id`,`reason`,`dead_at_ns`)" +
			" SELECT " + strings.Join(sel, ",") + ",m.`kite_server`,v.g,v.r,v.at FROM " + s.n.msg[h] + " m JOIN " +
			derived([]string{"mid", "tp", "g", "r", "at", "c", "ck", "nc"}, n) + " v ON m.`message_id`=v.mid AND m.`topic`=v.tp"
	})
	if err != nil {
		return fmt.Errorf("insert dead letters: %w", err)
	}
	if int(n) != len(w.newDead[h]) {
		return fmt.Errorf("insert dead letters: %d of %d copied: %w", n, len(w.newDead[h]), errConflict)
	}
	_, err = execChunks(ctx, tx, s.stmts, w.fields[h], s.cfg.BatchUpdateSize, func(n int) string {
		return "UPDATE " + s.n.msg[h] + " m JOIN " + derived([]string{"mid", "tp", "c", "ck", "nc"}, n) +
			" v ON m.`message_id`=v.mid AND m.`topic`=v.tp SET m.`commit`=v.c, m.`checks`=v.ck, m.`next_check_ns`=v.nc"
	})
	if err != nil {
		return fmt.Errorf("update messages: %w", err)
	}
	return nil
}

// flushRows deletes and upserts the group and check rows of partition h,
// then deletes its messages.
func (s *Store) flushRows(ctx context.Context, tx *sql.Tx, h int, w *flushRows) error {
	steps := []struct {
		what  string
		rows  [][]any
		size  int
		build func(int) string
	}{
		{"delete groups", w.grpDel[h], s.cfg.BatchDelSize, valuesRows("DELETE FROM "+s.n.group[h]+" WHERE (`message_id`,`topic`,`group_id`) IN (", 3, ")")},
		{"upsert groups", w.grpUp[h], s.cfg.BatchUpdateSize, valuesRows("INSERT INTO "+s.n.group[h]+groupInsert, 6, groupUpsert)},
		{"delete checks", w.checkDel[h], s.cfg.BatchDelSize, valuesRows("DELETE FROM "+s.n.check[h]+" WHERE (`message_id`,`topic`) IN (", 2, ")")},
		{"upsert checks", w.checkUp[h], s.cfg.BatchUpdateSize, valuesRows("INSERT INTO "+s.n.check[h]+checkInsert, 4, checkUpsert)},
		{"delete messages", w.msgDel[h], s.cfg.BatchDelSize, valuesRows("DELETE FROM "+s.n.msg[h]+" WHERE (`message_id`,`topic`) IN (", 2, ")")},
	}
	for _, st := range steps {
		if _, err := execChunks(ctx, tx, s.stmts, st.rows, st.size, st.build); err != nil {
			return fmt.Errorf("%s: %w", st.what, err)
		}
	}
	return nil
}

// rowFromDead writes the message row of im from dead letter im.content: a
// replay recreated the message from it, or (when a row exists) the message
// was deleted and recreated within the batch from an older publish's
// letter, whose content replaces the row's.
func (s *Store) rowFromDead(ctx context.Context, tx *sql.Tx, im *image) error {
	if im.exists0 {
		q := "DELETE FROM " + s.n.msg[im.h] + " WHERE `message_id`=? AND `topic`=?"
		if _, err := tx.ExecContext(ctx, q, bin(im.k.id), bin(im.k.topic)); err != nil {
			return fmt.Errorf("replace message: %w", err)
		}
	}
	sel := make([]string, len(copyCols))
	for i, c := range copyCols {
		sel[i] = "`" + c + "`"
		if c == "commit" {
			sel[i] = "1"
		}
	}
	q := "INSERT INTO " + s.n.msg[im.h] + " (" + colList("", copyCols) + ",`kite_server`) SELECT " +
		strings.Join(sel, ",") + ",? FROM " + s.n.dlq[s.n.dbOf(im.h)] + " WHERE `id`=?"
	return execOne(ctx, tx, "recreate message", q, bin(im.server), im.content)
}

// deadFromDead inserts a dead letter of group g whose message had been
// recreated from dead letter l.src, copying that letter.
func (s *Store) deadFromDead(ctx context.Context, tx *sql.Tx, im *image, g string, l letter) error {
	t := s.n.dlq[s.n.dbOf(im.h)]
	q := "INSERT INTO " + t + " (" + colList("", copyCols) + ",`kite_server`,`group_id`,`reason`,`dead_at_ns`) SELECT " +
		colList("", copyCols) + ",?,?,?,? FROM " + t + " WHERE `id`=?"
	return execOne(ctx, tx, "copy dead letter", q, bin(im.server), bin(g), bin(l.reason), l.at, l.src)
}

// execOne runs a statement that must affect exactly one row. None means
// its source row went away since it was read and locked, which cannot
// happen; the Write is retried from a fresh read all the same.
func execOne(ctx context.Context, tx *sql.Tx, what, q string, args ...any) error {
	res, err := tx.ExecContext(ctx, q, args...)
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	if n, err := res.RowsAffected(); err != nil || n != 1 {
		return fmt.Errorf("%s: %d rows: %w", what, n, errConflict)
	}
	return nil
}

func sortedNames[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
