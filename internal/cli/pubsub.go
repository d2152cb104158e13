package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/kitenats/kitenats/client"
)

var pubHelp = help{
	usage: "[-s URL] [-group G] [-id ID] [-ttl D] [-limit N] [-H key=value]... TOPIC TYPE BODY",
	about: "Publishes BODY on TOPIC with messageType TYPE (the NATS subject kq.TOPIC.TYPE), waits for\n" +
		"the store ack and prints it: the message id, and how many groups take the message (0: no\n" +
		"group binds it, and nobody gets it: bind first).",
	examples: []string{
		`kitenats pub -group p-shop trade pay.succ '{"order":42}'`,
		"kitenats pub -H order=42 -H region=eu -ttl 1h trade pay-succ hello",
	},
}

// Pub is `kitenats pub`: it publishes one message and prints the broker's
// ack.
func Pub(args []string) error { return pub(args, os.Stdout) }

func pub(args []string, out io.Writer) error {
	fs, f := clientFlags("pub", false)
	s, user, pass := f.server, f.user, f.pass
	group := fs.String("group", "", "publishing group (Kq-Group)")
	id := fs.String("id", "", "message id, 32 hex digits (default: generated)")
	ttl := fs.Duration("ttl", 0, "relative expiry (default 7 days)")
	limit := fs.Int("limit", 0, "deliver limit per group, 1..100 (default 100)")
	var props headerFlags
	fs.Var(&props, "H", "a user property key=value (repeatable)")
	if err := parseFlags(fs, pubHelp, args, out); err != nil {
		return err
	}
	if fs.NArg() != 3 {
		return errors.New("pub: want TOPIC MESSAGETYPE BODY")
	}
	nc, err := connectCLI(*s, *user, *pass, "", f.tlsOptions())
	if err != nil {
		return err
	}
	defer nc.Close()
	opts := []client.PublishOption{client.Properties(props)}
	if *id != "" {
		opts = append(opts, client.MessageID(*id))
	}
	if *ttl > 0 {
		opts = append(opts, client.TTL(*ttl))
	}
	if *limit > 0 {
		opts = append(opts, client.DeliverLimit(*limit))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ack, err := client.NewProducer(nc, *group).Publish(ctx, fs.Arg(0), fs.Arg(1), []byte(fs.Arg(2)), opts...)
	if err != nil {
		return err
	}
	if _, err := fmt.Fprintf(out, "stored: id %s, stream %s, seq %d, duplicate %v, groups %d\n", ack.ID, ack.Stream, ack.Seq, ack.Duplicate, ack.Groups); err != nil {
		return err
	}
	if ack.Groups == 0 && !ack.Duplicate {
		fmt.Fprintf(os.Stderr, "pub: no group binds %s/%s: nobody gets this message (bind first, then publish)\n", fs.Arg(0), fs.Arg(1))
	}
	return nil
}

var subHelp = help{
	usage: "[-s URL] -group G -topic T (-type M | -regx P | -fanout) [-transient] [-nak]",
	about: "Binds a consumer of group G to TOPIC (one messageType, a pattern, or all of them), then\n" +
		"prints every delivery until interrupted: its headers one per line (the broker's Kq-* ones:\n" +
		"id, topic, type, publishing group, attempt, …, then the producer's properties), and its\n" +
		"body. Each delivery is acked (-nak: refused, to watch redelivery).",
	examples: []string{
		"kitenats sub -group s-trade -topic trade -type pay-succ",
		"kitenats sub -group s-audit -topic trade -fanout -transient",
		"kitenats sub -group s-trade -topic trade -regx '^pay-' -nak",
	},
}

// Sub is `kitenats sub`: it consumes as a member of a group and prints
// every delivery until interrupted.
func Sub(args []string) error { return sub(args, os.Stdout) }

func sub(args []string, out io.Writer) error {
	fs, f := clientFlags("sub", false)
	s, user, pass := f.server, f.user, f.pass
	group := fs.String("group", "", "consumer group (required)")
	topic := fs.String("topic", "", "topic (required)")
	mt := fs.String("type", "", "bind this messageType (direct)")
	regx := fs.String("regx", "", "bind messageTypes matching this pattern")
	fanout := fs.Bool("fanout", false, "bind every messageType of the topic")
	transient := fs.Bool("transient", false, "a non-persistent binding: nothing is kept while the group is offline")
	nak := fs.Bool("nak", false, "answer -NAK instead of +ACK (to watch redelivery)")
	if err := parseFlags(fs, subHelp, args, out); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("sub: unexpected arguments %v", fs.Args())
	}
	var b client.Binding
	switch {
	case *group == "" || *topic == "":
		return errors.New("sub: -group and -topic are required")
	case *fanout:
		b = client.Fanout(*topic)
	case *regx != "":
		b = client.Regx(*topic, *regx)
	case *mt != "":
		b = client.Direct(*topic, *mt)
	default:
		return errors.New("sub: one of -type, -regx or -fanout")
	}
	b.Persistent = !*transient
	nc, err := connectCLI(*s, *group, *pass, *user, f.tlsOptions())
	if err != nil {
		return err
	}
	defer nc.Close()
	c, err := client.NewConsumer(nc, *group, []client.Binding{b})
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	var mu sync.Mutex // one delivery's lines together
	err = c.Start(ctx, func(d *client.Delivery) error {
		mu.Lock()
		_, err := fmt.Fprintln(out, formatDelivery(time.Now(), d))
		mu.Unlock()
		if err != nil {
			return err // not printed, not acked: redelivered to whoever can show it
		}
		if *nak {
			return errors.New("nak")
		}
		return nil
	})
	if err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "consuming as %s; Ctrl-C to stop\n", *group)
	<-ctx.Done()
	return c.Close()
}

// connectCLI connects as user (for sub: the group) unless admin is given,
// with tlsOpts for a TLS broker.
func connectCLI(server, user, pass, admin string, tlsOpts []nats.Option) (*nats.Conn, error) {
	if admin != "" {
		user = admin
	}
	opts := append([]nats.Option{nats.Name("kitenats-cli")}, tlsOpts...)
	if user != "" {
		opts = append(opts, nats.UserInfo(user, pass), nats.CustomInboxPrefix(client.InboxPrefix(user)))
	}
	return nats.Connect(server, opts...)
}

// headerFlags collects repeated -H key=value flags.
type headerFlags map[string]string

func (h *headerFlags) String() string { return fmt.Sprint(map[string]string(*h)) }

func (h *headerFlags) Set(v string) error {
	k, val, ok := strings.Cut(v, "=")
	if !ok || k == "" {
		return fmt.Errorf("want key=value, got %q", v)
	}
	if *h == nil {
		*h = make(headerFlags)
	}
	(*h)[k] = val
	return nil
}

var _ flag.Value = (*headerFlags)(nil)
