package client_test

import (
	"context"
	"errors"
	"log"
	"os"
	"os/signal"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/kitenats/kitenats/client"
)

// A producer of group p-trade publishes with a store ack; a consumer of
// group s-trade, on its own connection, handles pay-succ messages. (Not run
// by go test: it needs a broker on nats.DefaultURL.)
func Example() {
	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt)
	defer cancel()

	// One connection per group: the NATS user is the group, with the
	// group's secret (none in open mode) and its inbox prefix.
	pc, err := client.Connect(nats.DefaultURL, "p-trade", "")
	if err != nil {
		log.Fatal(err)
	}
	defer pc.Close()
	producer := client.NewProducer(pc, "p-trade")
	ack, err := producer.Publish(ctx, "trade", "pay-succ", []byte(`{"order":42}`),
		client.MessageID(client.NewMessageID()), // publish again with it: Duplicate, stored once
		client.Properties(map[string]string{"order": "42"}),
		client.TTL(30*time.Minute))
	var refused *client.Error
	switch {
	case errors.As(err, &refused) && refused.Retriable():
		log.Printf("broker busy, try later: %v", refused) // 429 or 503
	case err != nil:
		log.Fatal(err)
	default:
		log.Printf("stored as %s seq %d", ack.ID, ack.Seq)
	}

	cc, err := client.Connect(nats.DefaultURL, "s-trade", "", nats.MaxReconnects(-1))
	if err != nil {
		log.Fatal(err)
	}
	defer cc.Close()
	consumer, err := client.NewConsumer(cc, "s-trade",
		[]client.Binding{client.Direct("trade", "pay-succ")},
		client.WarmingUp(30*time.Second), client.MaxInflight(1000), client.Concurrency(8))
	if err != nil {
		log.Fatal(err)
	}
	err = consumer.Start(ctx, func(d *client.Delivery) error {
		switch {
		case d.Properties["order"] == "":
			return client.Terminate("no order") // a dead letter for s-trade
		case d.DeliverCount > 3:
			return client.Retry(time.Minute) // again, not before a minute
		}
		log.Printf("order %s paid: %s", d.Properties["order"], d.Body)
		return nil // acknowledged
	})
	if err != nil {
		log.Fatal(err)
	}
	<-ctx.Done() // until Ctrl-C
	// Before cc.Close: stop taking deliveries, wait for running handlers.
	if err := consumer.Close(); err != nil {
		log.Print(err)
	}
}

// A transactional publish: the message is delivered only if the local
// transaction commits; if the process dies in between, the broker asks the
// group's producers through HandleChecks.
func ExampleTxProducer_PublishTx() {
	nc, err := client.Connect(nats.DefaultURL, "p-trade", "")
	if err != nil {
		log.Fatal(err)
	}
	defer nc.Close()
	tp := client.NewTxProducer(nc, "p-trade")
	stop, err := tp.HandleChecks(func(r client.CheckRequest) client.Decision {
		switch orderState(r.Properties["order"]) {
		case "paid":
			return client.Commit
		case "cancelled":
			return client.Rollback
		default:
			return client.Unknown // ask again later
		}
	})
	if err != nil {
		log.Fatal(err)
	}
	defer func() { _ = stop() }()

	err = tp.PublishTx(context.Background(), "trade", "pay-succ", []byte(`{"order":42}`),
		func(ctx context.Context) (bool, error) {
			return true, markPaid(ctx, "42") // an error rolls the message back
		},
		client.Properties(map[string]string{"order": "42"}))
	if err != nil {
		log.Print(err)
	}
}

func orderState(string) string               { return "paid" }
func markPaid(context.Context, string) error { return nil }
