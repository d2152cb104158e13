package cli

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/kitenats/kitenats/client"
)

// printableText reports whether body reads as text: valid UTF-8 whose
// runes are all printable, or line breaks and tabs.
func printableText(body []byte) bool {
	if !utf8.Valid(body) {
		return false
	}
	for _, r := range string(body) {
		if !unicode.IsPrint(r) && r != '\n' && r != '\t' && r != '\r' {
			return false
		}
	}
	return true
}

// writeBody writes a message body after indent: as text under a `body:`
// label when it is printable UTF-8 (each line indented), else as base64
// (standard encoding) under `body (base64):`.
func writeBody(p *printer, indent string, body []byte) {
	switch {
	case len(body) == 0:
		p.printf("%sbody: (empty)\n", indent)
	case printableText(body):
		text := strings.TrimSuffix(strings.ReplaceAll(string(body), "\r\n", "\n"), "\n")
		if !strings.Contains(text, "\n") {
			p.printf("%sbody: %s\n", indent, text)
			return
		}
		p.printf("%sbody:\n", indent)
		for _, line := range strings.Split(text, "\n") {
			p.printf("%s  %s\n", indent, line)
		}
	default:
		p.printf("%sbody (base64): %s\n", indent, base64.StdEncoding.EncodeToString(body))
	}
}

// deliveryHeaders are the headers a delivery of m carries, as NATS
// headers by name: the Kq-* ones the broker sets (NATS-PROTOCOL.md §5)
// and the producer's own properties. Absent values are left out, as the
// broker leaves them out.
func deliveryHeaders(d *client.Delivery) map[string]string {
	h := map[string]string{}
	set := func(k, v string) {
		if v != "" {
			h[k] = v
		}
	}
	unix := func(t time.Time) string {
		if t.IsZero() {
			return ""
		}
		return fmt.Sprintf("%d (%s)", t.Unix(), t.UTC().Format("2006-01-02 15:04:05 MST"))
	}
	set("Kq-Msg-Id", d.ID)
	set("Kq-Topic", d.Topic)
	set("Kq-Message-Type", d.MessageType)
	set("Kq-Group", d.Group)
	set("Kq-Body-Type", d.BodyType)
	if d.DeliverCount > 0 {
		set("Kq-Deliver-Count", strconv.Itoa(d.DeliverCount))
	}
	if d.DeliverLimit > 0 {
		set("Kq-Deliver-Limit", strconv.Itoa(d.DeliverLimit))
	}
	set("Kq-Created", unix(d.Created))
	set("Kq-Expires", unix(d.Expires))
	for k, v := range d.Properties {
		set(k, v)
	}
	return h
}

// formatDelivery is what `kitenats sub` prints for one delivery: a title
// line, the headers one per line (the broker's Kq-* first, then the
// producer's properties, each sorted by name), then the body.
func formatDelivery(now time.Time, d *client.Delivery) string {
	var b bytes.Buffer // a bytes.Buffer does not fail: no error to keep
	p := &printer{w: &b}
	p.printf("[%s] %s/%s attempt %d\n", now.Format(time.TimeOnly), d.Topic, d.MessageType, d.DeliverCount)
	h := deliveryHeaders(d)
	keys := make([]string, 0, len(h))
	for k := range h {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		ki, kj := strings.HasPrefix(keys[i], "Kq-"), strings.HasPrefix(keys[j], "Kq-")
		if ki != kj {
			return ki
		}
		return keys[i] < keys[j]
	})
	tw := newTable(&b)
	t := &printer{w: tw}
	for _, k := range keys {
		t.printf("  %s:\t%s\n", k, h[k])
	}
	_ = tw.Flush()
	writeBody(p, "  ", d.Body)
	return b.String()
}

// printStat writes a $KQ.ADMIN.STAT reply for people: its counters as a
// two-column table, then each list (topics, groups, consumers) as a
// table with a column per member.
func printStat(out io.Writer, raw json.RawMessage) error {
	var doc map[string]any
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	if err := dec.Decode(&doc); err != nil {
		return fmt.Errorf("stat: bad reply: %w", err)
	}
	// The cluster section (a broker with routes): its members as
	// "cluster.name" … rows, its peers as a list of their own.
	if cl, ok := doc["cluster"].(map[string]any); ok {
		delete(doc, "cluster")
		for k, v := range cl {
			if k == "peers" {
				doc["peers"] = v
			} else {
				doc["cluster."+k] = v
			}
		}
	}
	var scalars, lists []string
	for k, v := range doc {
		if l, ok := v.([]any); ok && isObjectList(l) {
			lists = append(lists, k)
		} else {
			scalars = append(scalars, k)
		}
	}
	sort.Strings(scalars)
	sort.Strings(lists)
	tw := newTable(out)
	t := &printer{w: tw}
	for _, k := range scalars {
		t.printf("%s\t%s\n", k, cell(doc[k]))
	}
	if err := errors.Join(t.err, tw.Flush()); err != nil {
		return err
	}
	p := &printer{w: out}
	for _, k := range lists {
		p.printf("\n%s:\n", k)
		if p.err == nil {
			p.err = printObjects(out, doc[k].([]any))
		}
	}
	return p.err
}

func isObjectList(l []any) bool {
	for _, v := range l {
		if _, ok := v.(map[string]any); !ok {
			return false
		}
	}
	return true
}

// printObjects writes a list of JSON objects as an aligned table: one
// column per member (what names a row first: topic, group, id), one row
// per object.
func printObjects(out io.Writer, items []any) error {
	if len(items) == 0 {
		_, err := fmt.Fprintln(out, "  (none)")
		return err
	}
	seen := map[string]bool{}
	var cols []string
	for _, it := range items {
		for k := range it.(map[string]any) {
			if !seen[k] {
				seen[k] = true
				cols = append(cols, k)
			}
		}
	}
	first := map[string]int{"topic": 1, "groupId": 2, "id": 3}
	sort.Slice(cols, func(i, j int) bool {
		fi, fj := first[cols[i]], first[cols[j]]
		switch {
		case fi != 0 && fj != 0:
			return fi < fj
		case fi != 0 || fj != 0:
			return fi != 0
		}
		return cols[i] < cols[j]
	})
	tw := newTable(out)
	t := &printer{w: tw}
	t.printf("  %s\n", strings.Join(cols, "\t"))
	for _, it := range items {
		m := it.(map[string]any)
		row := make([]string, len(cols))
		for i, c := range cols {
			row[i] = cell(m[c])
		}
		t.printf("  %s\n", strings.Join(row, "\t"))
	}
	return errors.Join(t.err, tw.Flush())
}

// cell is one JSON value as a table cell: strings and numbers as they
// are, anything else as compact JSON (without HTML escaping).
func cell(v any) string {
	switch v := v.(type) {
	case nil:
		return "-"
	case string:
		return v
	case json.Number:
		return v.String()
	case bool:
		return strconv.FormatBool(v)
	}
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return fmt.Sprint(v)
	}
	return strings.TrimSuffix(b.String(), "\n")
}
