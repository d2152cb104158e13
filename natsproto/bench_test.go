package natsproto

import (
	"context"
	"testing"
	"time"

	"github.com/kitenats/kitenats/semantics"
	"github.com/kitenats/kitenats/store"
	"github.com/kitenats/kitenats/store/memory"
)

func BenchmarkSubjectParse(b *testing.B) {
	s := Subject("trade", "pay.succ 200")
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := ParseSubject(s); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkParsePublish(b *testing.B) {
	hdr := map[string][]string{HdrMsgID: {"0123456789abcdef0123456789abcdef"}, "Order": {"42"}, HdrDeliverLimit: {"10"}}
	body := make([]byte, 512)
	now := time.Now()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParsePublish("trade", "pay", hdr, body, now, semantics.NewMessageID); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkPublishPath measures one message through the adapter and the
// broker, serially: intake, plan, group-committed save (memory store), publish
// reply, delivery and ack; the transport is a no-op. It is a latency
// figure (each message waits for the writer), not a throughput one.
func BenchmarkPublishPath(b *testing.B) {
	tr := &nopTransport{}
	st := memory.New(memory.Config{})
	w := store.NewBatcher(st, store.BatcherConfig{})
	s := New(tr, fakeLocator{dlv: {1}}, Config{})
	br, err := semantics.New(semantics.Config{BrokerID: "b1", Seed: 1, MaxInflight: 1 << 20, Intake: s, Tap: s}, st, w, &fakeKeeper{}, nil)
	if err != nil {
		b.Fatal(err)
	}
	s.attach(br)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = w.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()
	if _, err := s.api(ctx, "BIND.s-trade", []byte(`{"deliver":"`+dlv+`","bindings":[{"topic":"trade","messageType":"pay","persistent":true}]}`)); err != nil {
		b.Fatal(err)
	}
	body := make([]byte, 512)
	b.ReportAllocs()
	for b.Loop() {
		acked := make(chan struct{})
		tr.onDeliver = func(m *Msg) {
			s.handleAck(&Msg{Subject: m.Reply, Data: []byte("+ACK")})
		}
		tr.onReply = func() { close(acked) }
		s.handlePublish(&Msg{Subject: "kq.trade.pay", Reply: "_INBOX.x", Data: body})
		<-acked
	}
}

// nopTransport calls back on deliveries and publish replies.
type nopTransport struct {
	onDeliver func(*Msg)
	onReply   func()
}

func (t *nopTransport) Publish(m *Msg) error {
	switch m.Subject {
	case dlv:
		t.onDeliver(m)
	case "_INBOX.x":
		t.onReply()
	}
	return nil
}
func (t *nopTransport) Subscribe(string, string, func(*Msg)) (func() error, error) {
	return func() error { return nil }, nil
}
func (t *nopTransport) Flush() error               { return nil }
func (t *nopTransport) Sync(context.Context) error { return nil }
func (t *nopTransport) Dropped() int64             { return 0 }
