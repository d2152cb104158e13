package cli

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kitenats/kitenats/client"
)

// TestWriteBodyTextOrBase64: a body that is printable UTF-8 is printed as
// text under `body:`; anything else (bytes that are not UTF-8, control
// characters) as base64 under `body (base64):`.
func TestWriteBodyTextOrBase64(t *testing.T) {
	for _, tt := range []struct {
		body []byte
		want string
	}{
		{[]byte(`{"order":42,"note":"<héllo> & 日本"}`), "  body: {\"order\":42,\"note\":\"<héllo> & 日本\"}\n"},
		{[]byte("line 1\nline\t2\n"), "  body:\n    line 1\n    line\t2\n"},
		{[]byte{0x00, 0x01, 0x02, 0xff}, "  body (base64): AAEC/w==\n"},
		{[]byte("caf\xe9"), "  body (base64): Y2Fm6Q==\n"}, // Latin-1, not UTF-8
		{[]byte("bell\a"), "  body (base64): YmVsbAc=\n"},  // valid UTF-8, not printable
		{nil, "  body: (empty)\n"},
	} {
		var out bytes.Buffer
		writeBody(&printer{w: &out}, "  ", tt.body)
		require.Equal(t, tt.want, out.String(), "%q", tt.body)
	}
}

// TestPrintDeadLetters decodes a DLQ.LIST reply as the broker encodes it
// (semantics' deadItem: body is []byte, so base64 in the JSON) and prints
// a text body as text, a binary one as labelled base64, fields aligned.
func TestPrintDeadLetters(t *testing.T) {
	type item struct {
		ID          string            `json:"id"`
		Topic       string            `json:"topic"`
		MessageType string            `json:"messageType"`
		Group       string            `json:"groupId"`
		Publisher   string            `json:"publishGroup"`
		Reason      string            `json:"reason"`
		At          int64             `json:"at"`
		Created     int64             `json:"created"`
		Properties  map[string]string `json:"properties,omitempty"`
		Body        []byte            `json:"body"`
	}
	raw, err := json.Marshal(map[string]any{"total": 3, "offset": 0, "limit": 2, "items": []item{
		{ID: "0123456789abcdef0123456789abcdef", Topic: "trade", MessageType: "pay-succ", Group: "s-trade", Publisher: "p-trade",
			Reason: "deliver limit 3 reached", At: 1765050000, Created: 1765049990, Properties: map[string]string{"order": "42", "b": "<x>"},
			Body: []byte(`{"order":42}`)},
		{ID: "fedcba9876543210fedcba9876543210", Topic: "trade", MessageType: "bin", Group: "s-trade",
			Reason: "expired", At: 1765050001, Created: 1765049991, Body: []byte{0xde, 0xad, 0xbe, 0xef, 0x00}},
	}})
	require.NoError(t, err)
	require.Contains(t, string(raw), `"body":"eyJvcmRlciI6NDJ9"`, "the broker's JSON has the body in base64")
	var page dlqPage
	require.NoError(t, json.Unmarshal(raw, &page))
	var out bytes.Buffer
	require.NoError(t, printDeadLetters(&out, page))
	s := out.String()
	require.Contains(t, s, "dead letter 1 of 3\n")
	require.Contains(t, s, "  body: {\"order\":42}\n")
	require.Contains(t, s, "  body (base64): 3q2+7wA=\n")
	require.Contains(t, s, "  property      b=<x>\n  property      order=42\n", "properties sorted, aligned with the other fields")
	require.Contains(t, s, "  id            0123456789abcdef0123456789abcdef\n")
	require.Contains(t, s, "  published by  p-trade\n")
	require.Contains(t, s, "  dead since    2025-12-06 19:40:00 UTC\n")
	require.Contains(t, s, "3 dead letter(s), 2 shown from offset 0")
	require.NotContains(t, s, `"id"`, "not raw JSON")
}

// TestFormatDelivery: sub prints the Kq-* headers a delivery carries and
// the producer's properties, one per line, sorted, aligned, then the body.
func TestFormatDelivery(t *testing.T) {
	d := &client.Delivery{Message: client.Message{
		ID: "0123456789abcdef0123456789abcdef", Topic: "trade", MessageType: "pay-succ", Group: "p-trade",
		Properties: map[string]string{"order": "42", "Region": "eu"}, Body: []byte("hello"), BodyType: "string",
		DeliverLimit: 3, Created: time.Unix(1765050000, 0), Expires: time.Unix(1765654800, 0),
	}, DeliverCount: 2}
	got := formatDelivery(time.Date(2026, 1, 2, 15, 4, 5, 0, time.UTC), d)
	require.Equal(t, `[15:04:05] trade/pay-succ attempt 2
  Kq-Body-Type:      string
  Kq-Created:        1765050000 (2025-12-06 19:40:00 UTC)
  Kq-Deliver-Count:  2
  Kq-Deliver-Limit:  3
  Kq-Expires:        1765654800 (2025-12-13 19:40:00 UTC)
  Kq-Group:          p-trade
  Kq-Message-Type:   pay-succ
  Kq-Msg-Id:         0123456789abcdef0123456789abcdef
  Kq-Topic:          trade
  Region:            eu
  order:             42
  body: hello
`, got)

	// No publishing group, no properties, a binary body: nothing empty printed.
	d = &client.Delivery{Message: client.Message{ID: "ab", Topic: "t", MessageType: "m", Body: []byte{0xff}}, DeliverCount: 1}
	got = formatDelivery(time.Now(), d)
	require.NotContains(t, got, "Kq-Group")
	require.NotContains(t, got, "Kq-Created")
	require.Contains(t, got, "  Kq-Deliver-Count:  1\n")
	require.Contains(t, got, "  body (base64): /w==\n")
}

// columnStarts returns, for each line of s, where each column after the
// first starts (a column starts after a run of two spaces or more).
func columnStarts(s string) [][]int {
	var all [][]int
	for _, line := range strings.Split(strings.TrimRight(s, "\n"), "\n") {
		var starts []int
		for i := 2; i < len(line); i++ {
			if line[i] != ' ' && line[i-1] == ' ' && line[i-2] == ' ' {
				starts = append(starts, len([]rune(line[:i])))
			}
		}
		all = append(all, starts)
	}
	return all
}

// TestTablesAlign: the tx and stat tables align their columns whatever the
// length of the names in them (tx used fixed printf widths).
func TestTablesAlign(t *testing.T) {
	long := strings.Repeat("very-long-topic-name-", 3)
	var page txPage
	require.NoError(t, json.Unmarshal([]byte(`{"total":2,"items":[
		{"topic":"`+long+`","id":"0123456789abcdef0123456789abcdef","groupId":"p","ageSeconds":65,"checks":1},
		{"topic":"t","id":"fedcba9876543210fedcba9876543210","groupId":"`+long+`-group","ageSeconds":5,"checks":12}]}`), &page))
	var out bytes.Buffer
	require.NoError(t, printPrepared(&out, page))
	lines := strings.Split(out.String(), "\n")
	require.Equal(t, "2 prepared message(s)", lines[3])
	starts := columnStarts(strings.Join(lines[:3], "\n"))
	require.Len(t, starts[0], 4, out.String())
	require.Equal(t, starts[0], starts[1], out.String())
	require.Equal(t, starts[0], starts[2], out.String())
	require.Contains(t, lines[1], long+"  0123456789abcdef0123456789abcdef")

	out.Reset()
	require.NoError(t, printStat(&out, []byte(`{"published":3,"broker":"b","topics":[
		{"topic":"`+long+`","messages":1,"prepared":0},{"topic":"x<y>","messages":12345678,"prepared":2}],"groups":[]}`)))
	s := out.String()
	require.Contains(t, s, "broker     b\npublished  3\n")
	require.Contains(t, s, "groups:\n  (none)\n")
	i := strings.Index(s, "topics:\n")
	require.Positive(t, i)
	starts = columnStarts(s[i+len("topics:\n"):])
	require.Len(t, starts, 3)
	require.Equal(t, starts[0], starts[1], s)
	require.Equal(t, starts[0], starts[2], s)
	require.Contains(t, s, "  x<y>  ")

	// A broker with routes: the cluster's members as rows, its peers as a list.
	out.Reset()
	require.NoError(t, printStat(&out, []byte(`{"broker":"b","cluster":{"name":"b1","clusterName":"kitenats",
		"route":"nats-route://127.0.0.1:6222","peers":[{"name":"b2","id":"N2","addr":"127.0.0.1:6223","since":"2026-01-01T00:00:00Z"}]}}`)))
	s = out.String()
	require.Contains(t, s, "cluster.name         b1\n")
	require.Contains(t, s, "cluster.route        nats-route://127.0.0.1:6222\n")
	require.Contains(t, s, "peers:\n")
	require.Contains(t, s, "b2")
}

// TestNoEscapedHTMLInOutput: what the CLI prints for people, errors of
// the broker and JSON alike, reads `<topic>`, never `\u003ctopic\u003e`
// (the form encoding/json gives < and > by default).
func TestNoEscapedHTMLInOutput(t *testing.T) {
	// The broker's reply, as json.Marshal wrote it.
	reply := []byte(`{"error":{"code":400,"err_code":14400,"description":"kq: subject \"kq.x\" is not kq.\u003ctopic\u003e.\u003cmessageType\u003e \u0026 more"}}`)
	err := replyError("$KQ.API.X", reply)
	require.Error(t, err)
	require.Contains(t, err.Error(), "kq.<topic>.<messageType> & more")
	require.NotContains(t, err.Error(), `\u003c`)
	require.NoError(t, replyError("$KQ.API.X", []byte(`{"replayed":true}`)))

	var out bytes.Buffer
	require.NoError(t, printJSON(&out, reply))
	require.Contains(t, out.String(), `is not kq.<topic>.<messageType> & more`)
	require.NotContains(t, out.String(), `\u00`)

	// And through a broker: stat, as JSON and as tables.
	url := startBroker(t)
	require.NoError(t, pub([]string{"-s", url, "x<y>&z", "m", "b"}, &bytes.Buffer{}))
	for _, args := range [][]string{{"-s", url, "-json"}, {"-s", url}} {
		out.Reset()
		require.NoError(t, stat(args, &out))
		require.Contains(t, out.String(), "x<y>&z", args)
		require.NotContains(t, out.String(), `\u00`, args)
	}
	err = dlq([]string{"-s", url, "-topic", "t", "-group", "g", "-limit", "5000"}, &out)
	if err != nil { // a refusal's description, decoded
		require.NotContains(t, err.Error(), `\u00`)
	}
}

// TestSubcommandHelp: each subcommand's -h prints its usage line, flags
// and an example on the given writer and returns flag.ErrHelp; a bad flag
// is an error that points at -h.
func TestSubcommandHelp(t *testing.T) {
	for name, run := range map[string]func([]string, *bytes.Buffer) error{
		"pub":   func(a []string, w *bytes.Buffer) error { return pub(a, w) },
		"sub":   func(a []string, w *bytes.Buffer) error { return sub(a, w) },
		"stat":  func(a []string, w *bytes.Buffer) error { return stat(a, w) },
		"dlq":   func(a []string, w *bytes.Buffer) error { return dlq(a, w) },
		"tx":    func(a []string, w *bytes.Buffer) error { return tx(a, w) },
		"adopt": func(a []string, w *bytes.Buffer) error { return adopt(a, w) },
		"serve": func(a []string, w *bytes.Buffer) error { return serve(a, w) },
	} {
		var out bytes.Buffer
		require.ErrorIs(t, run([]string{"-h"}, &out), flag.ErrHelp, name)
		s := out.String()
		require.True(t, strings.HasPrefix(s, "usage: kitenats "+name+" "), "%s: %s", name, s)
		require.Contains(t, s, "\nflags:\n  -", name)
		require.Regexp(t, `\nexamples:\n  kitenats `, s, name)
		out.Reset()
		err := run([]string{"-no-such-flag"}, &out)
		require.ErrorContains(t, err, "-no-such-flag", name)
		require.ErrorContains(t, err, "-h for help", name)
		require.False(t, errors.Is(err, flag.ErrHelp), name)
		require.Empty(t, out.String(), "%s: a bad flag prints no help", name)
	}
	var out bytes.Buffer
	require.ErrorIs(t, pub([]string{"-h"}, &out), flag.ErrHelp)
	require.Contains(t, out.String(), "usage: kitenats pub [-s URL] [-group G] [-id ID] [-ttl D] [-limit N] [-H key=value]... TOPIC TYPE BODY\n")
	require.Contains(t, out.String(), `  kitenats pub -group p-shop trade pay.succ '{"order":42}'`)
}
