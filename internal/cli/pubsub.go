package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/kitenats/kitenats/client"
)

// Pub publishes one message and prints the broker's ack:
//
//	kitenats pub [-s URL] [-group G] [-id ID] [-ttl D] [-H k=v]... TOPIC TYPE BODY
func Pub(args []string) error {
	fs, s, user, pass := clientFlags("pub")
	group := fs.String("group", "", "publishing group (Kq-Group)")
	id := fs.String("id", "", "message id, 32 hex digits (default: generated)")
	ttl := fs.Duration("ttl", 0, "relative expiry (default 7 days)")
	limit := fs.Int("limit", 0, "deliver limit per group, 1..100 (default 100)")
	var props headerFlags
	fs.Var(&props, "H", "a user property key=value (repeatable)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 3 {
		return errors.New("pub: want TOPIC MESSAGETYPE BODY")
	}
	nc, err := connectCLI(*s, *user, *pass)
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
	fmt.Printf("stored: id %s, stream %s, seq %d, duplicate %v, groups %d\n", ack.ID, ack.Stream, ack.Seq, ack.Duplicate, ack.Groups)
	if ack.Groups == 0 && !ack.Duplicate {
		fmt.Fprintf(os.Stderr, "pub: no group binds %s/%s: nobody gets this message (bind first, then publish)\n", fs.Arg(0), fs.Arg(1))
	}
	return nil
}

// Sub consumes as a member of a group and prints every delivery until
// interrupted:
//
//	kitenats sub [-s URL] -group G -topic T [-type M | -regx P | -fanout] [-nak]
func Sub(args []string) error {
	fs, s, user, pass := clientFlags("sub")
	group := fs.String("group", "", "consumer group (required)")
	topic := fs.String("topic", "", "topic (required)")
	mt := fs.String("type", "", "bind this messageType (direct)")
	regx := fs.String("regx", "", "bind messageTypes matching this pattern")
	fanout := fs.Bool("fanout", false, "bind every messageType of the topic")
	transient := fs.Bool("transient", false, "a non-persistent binding: nothing is kept while the group is offline")
	nak := fs.Bool("nak", false, "answer -NAK instead of +ACK (to watch redelivery)")
	if err := fs.Parse(args); err != nil {
		return err
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
	nc, err := connectCLI(*s, *group, *pass, *user)
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
	err = c.Start(ctx, func(d *client.Delivery) error {
		fmt.Printf("[%s] %s/%s id %s attempt %d from %q: %s\n", time.Now().Format(time.TimeOnly),
			d.Topic, d.MessageType, d.ID, d.DeliverCount, d.Group, d.Body)
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

// connectCLI connects as user (for sub: the group) unless admin is given.
func connectCLI(server, user, pass string, admin ...string) (*nats.Conn, error) {
	if len(admin) > 0 && admin[0] != "" {
		user = admin[0]
	}
	opts := []nats.Option{nats.Name("kitenats-cli")}
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
