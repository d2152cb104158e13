package cli

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"time"

	"github.com/nats-io/nats.go"
)

// apiCall sends one $KQ.API or $KQ.ADMIN request to a running broker and returns the
// reply, turning an error member into an error.
func apiCall(server, user, pass, subject string, req any, tlsOpts []nats.Option) (json.RawMessage, error) {
	nc, err := connectCLI(server, user, pass, "", tlsOpts)
	if err != nil {
		return nil, err
	}
	defer nc.Close()
	var body []byte
	if req != nil {
		if body, err = json.Marshal(req); err != nil {
			return nil, err
		}
	}
	msg, err := nc.Request(subject, body, 5*time.Second)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", subject, err)
	}
	return msg.Data, replyError(subject, msg.Data)
}

// replyError is the error member of a $KQ.API reply as an error (nil when
// there is none). Its description is decoded, so that the text reads as
// the broker wrote it: `<topic>`, not the JSON escape `\u003ctopic\u003e`.
func replyError(subject string, data []byte) error {
	var e struct {
		Error *struct {
			Code        int    `json:"code"`
			Description string `json:"description"`
		} `json:"error"`
	}
	if json.Unmarshal(data, &e) == nil && e.Error != nil {
		return fmt.Errorf("%s: %d %s", subject, e.Error.Code, e.Error.Description)
	}
	return nil
}

// apiFlags are the flags of the subcommands that call a running broker.
type apiFlags struct {
	server, user, pass     *string
	tlsCA, tlsCert, tlsKey *string
	json                   *bool
}

func (f apiFlags) call(subject string, req any) (json.RawMessage, error) {
	return apiCall(*f.server, *f.user, *f.pass, subject, req, f.tlsOptions())
}

// tlsOptions are nats.go's options for a broker whose NATS listener is TLS
// only (natsTLS): the CA that signed its certificate, and a client
// certificate, which in secrets mode stands for the secret of the user it
// names (NATS-PROTOCOL.md §7).
func (f apiFlags) tlsOptions() []nats.Option {
	var opts []nats.Option
	if *f.tlsCA != "" {
		opts = append(opts, nats.RootCAs(*f.tlsCA))
	}
	if *f.tlsCert != "" || *f.tlsKey != "" {
		opts = append(opts, nats.ClientCert(*f.tlsCert, *f.tlsKey))
	}
	return opts
}

// clientFlags returns the flag set of `kitenats name` with the connection
// flags (and -json when withJSON) defined.
func clientFlags(name string, withJSON bool) (*flag.FlagSet, apiFlags) {
	fs := newFlagSet(name)
	f := apiFlags{
		server:  fs.String("s", "nats://127.0.0.1:4222", "broker NATS URL"),
		user:    fs.String("user", "", "NATS user (admin in secrets mode)"),
		pass:    fs.String("password", "", "NATS password"),
		tlsCA:   fs.String("tlsca", "", "PEM CA file that signed a TLS broker's certificate (-s tls://…)"),
		tlsCert: fs.String("tlscert", "", "PEM client certificate for a TLS broker (with -tlskey); in secrets mode it stands for the password"),
		tlsKey:  fs.String("tlskey", "", "PEM key of -tlscert"),
	}
	if withJSON {
		f.json = fs.Bool("json", false, "print the broker's JSON reply as it is (indented), for scripts")
	}
	return fs, f
}

// printJSON writes raw indented, for people and scripts alike: without
// the HTML escaping of encoding/json, so `<topic>` stays `<topic>`.
func printJSON(out io.Writer, raw json.RawMessage) error {
	var buf bytes.Buffer
	if err := json.Indent(&buf, raw, "", "  "); err != nil {
		return err
	}
	// json.Indent keeps the escapes the broker's encoder wrote; a decode
	// and an encode without HTML escaping drops them.
	var v any
	dec := json.NewDecoder(&buf)
	dec.UseNumber() // counters and sequence numbers stay exact
	if err := dec.Decode(&v); err != nil {
		return err
	}
	enc := json.NewEncoder(out)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// Stat is `kitenats stat`: it prints $KQ.ADMIN.STAT.
func Stat(args []string) error { return stat(args, os.Stdout) }

var statHelp = help{
	usage: "[-s URL] [-json]",
	about: "Prints the broker's counters ($KQ.ADMIN.STAT): publishes, deliveries, acks, dead letters,\n" +
		"and per topic, per group and per consumer what is pending, in flight and dead, as tables.",
	examples: []string{
		"kitenats stat",
		"kitenats stat -s nats://10.0.0.5:4222 -json | jq .groups",
		"kitenats stat -s tls://10.0.0.5:4222 -tlsca ca.pem -user admin -password change-me   # a broker with natsTLS",
	},
}

func stat(args []string, out io.Writer) error {
	fs, f := clientFlags("stat", true)
	if err := parseFlags(fs, statHelp, args, out); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("stat: unexpected arguments %v", fs.Args())
	}
	raw, err := f.call("$KQ.ADMIN.STAT", nil)
	if err != nil {
		return err
	}
	if *f.json {
		return printJSON(out, raw)
	}
	return printStat(out, raw)
}

var dlqHelp = help{
	usage: "[-s URL] -topic TOPIC -group GROUP [-offset N] [-limit N] [-json] | -replay ID",
	about: "Lists the dead letters of a consumer group on a topic ($KQ.ADMIN.DLQ.LIST), one block each:\n" +
		"id, type, reason, properties and body (as text when it is printable UTF-8, else base64,\n" +
		"labelled `body (base64):`). With -replay ID, re-queues that dead letter for the group.",
	examples: []string{
		"kitenats dlq -topic trade -group s-trade",
		"kitenats dlq -topic trade -group s-trade -replay 0123456789abcdef0123456789abcdef",
		"kitenats dlq -topic trade -group s-trade -json | jq -r '.items[].id'",
	},
}

// DLQ is `kitenats dlq`: it lists a group's dead letters of a topic, or
// replays one.
func DLQ(args []string) error { return dlq(args, os.Stdout) }

func dlq(args []string, out io.Writer) error {
	fs, f := clientFlags("dlq", true)
	topic := fs.String("topic", "", "topic (required)")
	group := fs.String("group", "", "consumer group (required)")
	replay := fs.String("replay", "", "message id to re-queue for the group")
	offset := fs.Int("offset", 0, "list offset")
	limit := fs.Int("limit", 100, "list page size (at most 1000)")
	if err := parseFlags(fs, dlqHelp, args, out); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("dlq: unexpected arguments %v", fs.Args())
	}
	if *topic == "" || *group == "" {
		return errors.New("dlq: -topic and -group are required")
	}
	if *replay != "" {
		raw, err := f.call("$KQ.ADMIN.DLQ.REPLAY", map[string]string{"topic": *topic, "groupId": *group, "id": *replay})
		if err != nil {
			return err
		}
		if *f.json {
			return printJSON(out, raw)
		}
		_, err = fmt.Fprintf(out, "re-queued %s for group %s\n", *replay, *group)
		return err
	}
	raw, err := f.call("$KQ.ADMIN.DLQ.LIST", map[string]any{"topic": *topic, "groupId": *group, "offset": *offset, "limit": *limit})
	if err != nil {
		return err
	}
	if *f.json {
		return printJSON(out, raw)
	}
	var page dlqPage
	if err := json.Unmarshal(raw, &page); err != nil {
		return fmt.Errorf("dlq: bad reply: %w", err)
	}
	return printDeadLetters(out, page)
}

// dlqPage is the reply of $KQ.ADMIN.DLQ.LIST (NATS-PROTOCOL.md §8).
type dlqPage struct {
	Total  int          `json:"total"`
	Offset int          `json:"offset"`
	Items  []deadLetter `json:"items"`
}

// deadLetter is one item of a DLQ.LIST page. body is a JSON string in
// base64 (standard encoding, encoding/json's form of bytes): decoding it
// into a []byte gives the message body back as published.
type deadLetter struct {
	ID          string            `json:"id"`
	Topic       string            `json:"topic"`
	MessageType string            `json:"messageType"`
	Group       string            `json:"groupId"`
	Publisher   string            `json:"publishGroup"`
	Reason      string            `json:"reason"`
	At          int64             `json:"at"`
	Created     int64             `json:"created"`
	Properties  map[string]string `json:"properties"`
	Body        []byte            `json:"body"`
}

// printDeadLetters writes a DLQ page as blocks of aligned fields.
func printDeadLetters(out io.Writer, page dlqPage) error {
	p := &printer{w: out}
	for i, d := range page.Items {
		p.printf("dead letter %d of %d\n", page.Offset+i+1, page.Total)
		tw := newTable(p)
		t := &printer{w: tw}
		row := func(k, v string) { t.printf("  %s\t%s\n", k, v) }
		row("id", d.ID)
		row("topic", d.Topic)
		row("messageType", d.MessageType)
		row("group", d.Group)
		if d.Publisher != "" {
			row("published by", d.Publisher)
		}
		row("reason", d.Reason)
		row("dead since", unixTime(d.At))
		row("created", unixTime(d.Created))
		keys := make([]string, 0, len(d.Properties))
		for k := range d.Properties {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			row("property", k+"="+d.Properties[k])
		}
		if err := errors.Join(t.err, tw.Flush()); err != nil {
			return err
		}
		writeBody(p, "  ", d.Body)
		p.printf("\n")
	}
	shown := ""
	if len(page.Items) < page.Total {
		shown = fmt.Sprintf(", %d shown from offset %d (-offset, -limit for more)", len(page.Items), page.Offset)
	}
	p.printf("%d dead letter(s)%s\n", page.Total, shown)
	return p.err
}

func unixTime(sec int64) string {
	if sec == 0 {
		return "-"
	}
	return time.Unix(sec, 0).UTC().Format("2006-01-02 15:04:05 MST")
}

var txHelp = help{
	usage: "[-s URL] [list] [-offset N] [-limit N] [-json] | -commit|-rollback ID -topic TOPIC -group GROUP",
	about: "Lists the prepared (two-phase) messages awaiting their producer's decision ($KQ.ADMIN.TX.LIST)\n" +
		"with their age and check-back count, or commits or rolls one back for its publishing group.",
	examples: []string{
		"kitenats tx",
		"kitenats tx -commit 0123456789abcdef0123456789abcdef -topic trade -group p-trade",
	},
}

// Tx is `kitenats tx`: it lists prepared messages, or resolves one.
func Tx(args []string) error { return tx(args, os.Stdout) }

func tx(args []string, out io.Writer) error {
	fs, f := clientFlags("tx", true)
	offset := fs.Int("offset", 0, "list offset")
	limit := fs.Int("limit", 100, "list page size (at most 1000)")
	commit := fs.String("commit", "", "commit the prepared message with this id (needs -topic and -group)")
	rollback := fs.String("rollback", "", "roll back the prepared message with this id (needs -topic and -group)")
	topic := fs.String("topic", "", "topic of the message to resolve")
	group := fs.String("group", "", "publishing group of the message to resolve")
	if err := parseFlags(fs, txHelp, args, out); err != nil {
		return err
	}
	if fs.NArg() > 1 || fs.NArg() == 1 && fs.Arg(0) != "list" {
		return fmt.Errorf("tx: unknown argument %q (want list, or -commit/-rollback ID)", fs.Arg(0))
	}
	if *commit != "" || *rollback != "" {
		if *topic == "" || *group == "" || *commit != "" && *rollback != "" {
			return errors.New("tx: one of -commit or -rollback, with -topic and -group")
		}
		id, action := *commit, "commit"
		if *rollback != "" {
			id, action = *rollback, "rollback"
		}
		raw, err := f.call("$KQ.API.TX."+*group, map[string]string{"topic": *topic, "id": id, "action": action})
		if err != nil {
			return err
		}
		if *f.json {
			return printJSON(out, raw)
		}
		_, err = fmt.Fprintf(out, "%s: %s/%s of group %s\n", action, *topic, id, *group)
		return err
	}
	raw, err := f.call("$KQ.ADMIN.TX.LIST", map[string]int{"offset": *offset, "limit": *limit})
	if err != nil {
		return err
	}
	if *f.json {
		return printJSON(out, raw)
	}
	var page txPage
	if err := json.Unmarshal(raw, &page); err != nil {
		return fmt.Errorf("tx: bad reply: %w", err)
	}
	return printPrepared(out, page)
}

// txPage is the reply of $KQ.ADMIN.TX.LIST.
type txPage struct {
	Total int `json:"total"`
	Items []struct {
		Topic      string `json:"topic"`
		ID         string `json:"id"`
		Group      string `json:"groupId"`
		AgeSeconds int64  `json:"ageSeconds"`
		Checks     int    `json:"checks"`
	} `json:"items"`
}

// printPrepared writes the prepared messages as a table whose columns
// fit the longest topic and group.
func printPrepared(out io.Writer, page txPage) error {
	tw := newTable(out)
	t := &printer{w: tw}
	if len(page.Items) > 0 {
		t.printf("topic\tid\tgroup\tage\tchecks\n")
	}
	for _, it := range page.Items {
		t.printf("%s\t%s\t%s\t%s\t%d\n", it.Topic, it.ID, it.Group, time.Duration(it.AgeSeconds)*time.Second, it.Checks)
	}
	if err := errors.Join(t.err, tw.Flush()); err != nil {
		return err
	}
	_, err := fmt.Fprintf(out, "%d prepared message(s)\n", page.Total)
	return err
}
