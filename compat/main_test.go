package compat_test

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/kitenats/kitenats/compat"
	"github.com/kitenats/kitenats/compat/compattest"
	"github.com/kitenats/kitenats/store"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// member is one Join the fake broker saw.
type member struct {
	id     string
	group  string
	key    string
	warmup time.Duration
	ep     compat.Endpoint
}

// published is one Publish the fake broker saw.
type published struct {
	m    *store.Message
	mode compat.Mode
}

// fakeBroker is a hand-written compat.Broker: it records every call on
// buffered channels and answers publishes through onPublish (default:
// accepted at once, sequence numbers from 1).
type fakeBroker struct {
	onPublish func(m *store.Message, mode compat.Mode, done func(compat.Result, error))
	// onResolve, when set, answers ResolveTx (default: nil).
	onResolve func(group, topic, id string) error

	joined    chan member
	left      chan string
	acks      chan compat.Ack
	publishes chan published
	resolves  chan resolved

	mu  sync.Mutex
	seq uint64
	ids int
}

func newFakeBroker() *fakeBroker {
	return &fakeBroker{
		joined:    make(chan member, 1000),
		left:      make(chan string, 1000),
		acks:      make(chan compat.Ack, 1000),
		publishes: make(chan published, 100000),
		resolves:  make(chan resolved, 1000),
	}
}

// resolved is one ResolveTx call.
type resolved struct {
	group, topic, id string
	commit           bool
}

func (b *fakeBroker) ResolveTx(_ context.Context, group, topic, id string, commit bool) error {
	b.resolves <- resolved{group, topic, id, commit}
	if b.onResolve != nil {
		return b.onResolve(group, topic, id)
	}
	return nil
}

func (b *fakeBroker) Publish(m *store.Message, mode compat.Mode, done func(compat.Result, error)) {
	b.publishes <- published{m: m, mode: mode}
	if b.onPublish != nil {
		b.onPublish(m, mode, done)
		return
	}
	b.mu.Lock()
	b.seq++
	seq := b.seq
	b.mu.Unlock()
	done(compat.Result{Seq: seq}, nil)
}

func (b *fakeBroker) Join(group, key string, warmup time.Duration, ep compat.Endpoint) string {
	b.mu.Lock()
	b.ids++
	id := "c" + strings.Repeat("x", b.ids)
	b.mu.Unlock()
	b.joined <- member{id: id, group: group, key: key, warmup: warmup, ep: ep}
	return id
}

func (b *fakeBroker) Leave(group, consumerID string) { b.left <- group + "/" + consumerID }

func (b *fakeBroker) Ack(a compat.Ack, done func(error)) {
	b.acks <- a
	done(nil)
}

// next receives from ch within 5 s.
func next[T any](t *testing.T, ch <-chan T) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(5 * time.Second):
		var zero T
		t.Fatalf("nothing on %T within 5s", ch)
		return zero
	}
}

// none requires ch to be empty now (after a round trip that proves the
// server handled what came before).
func none[T any](t *testing.T, ch <-chan T) {
	t.Helper()
	select {
	case v := <-ch:
		t.Fatalf("unexpected %+v", v)
	default:
	}
}

// testLogger sends the server's logs to t.Log.
func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type tWriter struct{ t testing.TB }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// startServer runs a server for b on 127.0.0.1:0 until the test ends and
// returns its address. mod adjusts the config.
func startServer(t testing.TB, b compat.Broker, mod func(*compat.Config)) string {
	t.Helper()
	return startServerWith(t, b, mod).Addr().String()
}

// startServerWith is startServer returning the server.
func startServerWith(t testing.TB, b compat.Broker, mod func(*compat.Config)) *compat.Server {
	t.Helper()
	cfg := compat.Config{Addr: "127.0.0.1:0", Logger: testLogger(t)}
	if mod != nil {
		mod(&cfg)
	}
	srv, err := compat.New(cfg, b)
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		require.NoError(t, <-done)
	})
	return srv
}

// joinedClient dials addr, completes a handshake as group and returns the
// client with the membership the broker saw.
func joinedClient(t *testing.T, b *fakeBroker, addr, group string) (*compattest.Client, member) {
	t.Helper()
	c := compattest.Dial(t, addr)
	c.MustHandshake(group, "secret", 0)
	return c, next(t, b.joined)
}
