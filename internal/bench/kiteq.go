package bench

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"net"
	"sync"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/kitenats/kitenats/compat/wire"
	"github.com/kitenats/kitenats/registry"
)

// The workload of kiteq-client-go's own benchmark (client:benchmark,
// kiteq-protocol.md §11.2): 2 KiB random BytesMessages on topic
// user-profile, type profile-update, each publisher waiting for the store
// ack of one message before sending the next, one consumer group
// s-mts-test1 bound directly and answering every delivery with a positive
// DeliverAck.
const (
	kiteqBenchTopic    = "user-profile"
	kiteqBenchType     = "profile-update"
	kiteqBenchPubGroup = "go-kite-test"
	kiteqBenchSize     = 2048
)

// kiteqBenchGroup names consumer group g: s-mts-test1, s-mts-test2, …
func kiteqBenchGroup(g int) string { return fmt.Sprintf("s-mts-test%d", g+1) }

// benchKiteQ is `kitenats bench --protocol kiteq`: the KiteQ benchmark's
// workload through the broker's KiteQ TCP adapter, with our own client
// speaking the KiteQ protocol (compat/wire). -size defaults to 2048 here;
// publishes are synchronous, so -pending must stay 1. With --compare the
// same workload also runs through the NATS face of the broker, JetStream
// and core NATS.
func benchKiteQ(c benchConfig, fs *flag.FlagSet) error {
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if !set["size"] {
		c.Size = kiteqBenchSize
	}
	if set["pending"] && c.Pending != 1 {
		return errors.New("bench --protocol kiteq: publishes are synchronous, as in the KiteQ client: -pending must be 1")
	}
	c.Pending = 1
	fmt.Fprintf(c.Out, "workload: %s, %d B BytesMessage %s/%s, %d synchronous KiteQ publisher(s), %d group(s) x %d KiteQ consumer(s) acking, store %s\n",
		c.amount(), c.Size, kiteqBenchTopic, kiteqBenchType, c.Pubs, c.Groups, c.Consumers, c.Store)
	return runTargets(c, benchKiteQRun, benchBroker)
}

// benchKiteQRun runs the workload against the KiteQ adapter of a fresh
// in-process broker.
func benchKiteQRun(c benchConfig) (benchResult, error) {
	db, err := c.storeURI()
	if err != nil {
		return benchResult{}, err
	}
	d, stop, err := benchDaemon(db, "127.0.0.1:0")
	if err != nil {
		return benchResult{}, err
	}
	defer stop()
	addr := d.KiteQAddr().String()
	name := "kitenats kiteq " + c.storeName()
	if c.Backlog > 0 {
		if err := fillBacklog(c, d.ClientURL()); err != nil {
			return benchResult{}, err
		}
		name += fmt.Sprintf(" +%d backlog", c.Backlog)
	}
	w := &benchWatch{c: c, name: name}
	defer func() { fmt.Fprintf(c.Out, "%s: process RSS after the run %s\n", name, rss()) }()

	// The bindings a KiteQ consumer would write to the registry. Watermark
	// 0 is no per-group rate limit: the benchmark asks for 8000/s, which
	// KiteQ capped at 6000/s per broker, and that cap would be measured
	// instead of the broker.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for g := 0; g < c.Groups; g++ {
		group := kiteqBenchGroup(g)
		if err := d.Bind(ctx, group, []registry.Binding{{GroupID: group, Topic: kiteqBenchTopic,
			MessageType: kiteqBenchType, BindType: registry.Direct, Persistent: true}}); err != nil {
			return benchResult{}, err
		}
	}
	var conns []*kiteqBenchConn
	var readers sync.WaitGroup
	defer func() {
		for _, kc := range conns {
			_ = kc.conn.Close()
		}
		readers.Wait()
	}()
	for g := 0; g < c.Groups; g++ {
		for i := 0; i < c.Consumers; i++ {
			kc, err := dialKiteQBench(addr, kiteqBenchGroup(g), c.Timeout)
			if err != nil {
				return benchResult{}, err
			}
			conns = append(conns, kc)
			readers.Add(1)
			go func() { defer readers.Done(); kc.consume(w) }()
		}
	}
	// A handshaken connection joins its group just after the ConnAuthAck.
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(time.Millisecond) {
		st, err := d.Stat(ctx)
		if err == nil && len(st.Consumers) == c.Groups*c.Consumers {
			break
		}
		if time.Now().After(deadline) {
			return benchResult{}, errors.New("bench: the KiteQ consumers did not join their groups")
		}
	}
	return w.drive(func(n int, stopAt time.Time) error { return w.kiteqPublisher(addr, n, stopAt) }, false)
}

// kiteqBenchConn is one KiteQ connection of the benchmark, after its
// handshake.
type kiteqBenchConn struct {
	conn    net.Conn
	r       *bufio.Reader
	timeout time.Duration
	opaque  uint32 // the last request opaque; like the client's, from 1
	buf     []byte // frame encoding buffer
}

// dialKiteQBench connects and performs the ConnMeta handshake as group.
func dialKiteQBench(addr, group string, timeout time.Duration) (*kiteqBenchConn, error) {
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return nil, err
	}
	kc := &kiteqBenchConn{conn: conn, r: bufio.NewReaderSize(conn, 64<<10), timeout: timeout}
	o, err := kc.send(wire.CmdConnMeta, &wire.ConnMeta{GroupId: proto.String(group), SecretKey: proto.String("123456"), WarmingupSec: proto.Int32(0)})
	if err == nil {
		var m proto.Message
		if m, err = kc.reply(wire.CmdConnAuth, o); err == nil && !m.(*wire.ConnAuthAck).GetStatus() {
			err = fmt.Errorf("refused: %s", m.(*wire.ConnAuthAck).GetFeedback())
		}
	}
	if err != nil {
		_ = conn.Close()
		return nil, fmt.Errorf("bench: KiteQ handshake of %s: %w", group, err)
	}
	return kc, nil
}

// send writes m as a request with a fresh opaque and returns the opaque.
func (kc *kiteqBenchConn) send(cmd wire.Cmd, m proto.Message) (uint32, error) {
	body, err := wire.Encode(cmd, m)
	if err != nil {
		return 0, err
	}
	kc.opaque++
	kc.buf = wire.AppendFrame(kc.buf[:0], wire.Frame{Opaque: kc.opaque, Cmd: cmd, Body: body})
	_, err = kc.conn.Write(kc.buf)
	return kc.opaque, err
}

// reply reads frames until the reply cmd with opaque o, within timeout.
func (kc *kiteqBenchConn) reply(cmd wire.Cmd, o uint32) (proto.Message, error) {
	if err := kc.conn.SetReadDeadline(time.Now().Add(kc.timeout)); err != nil {
		return nil, err
	}
	for {
		f, err := wire.ReadFrame(kc.r)
		if err != nil {
			return nil, err
		}
		if f.Cmd != cmd || f.Opaque != o {
			continue // nothing else is expected on a publisher's connection
		}
		return wire.Decode(f)
	}
}

// kiteqPublisher sends n messages (or until stopAt) on its own connection,
// each after the store ack of the one before, and records each ack's
// latency.
func (w *benchWatch) kiteqPublisher(addr string, n int, stopAt time.Time) error {
	kc, err := dialKiteQBench(addr, kiteqBenchPubGroup, w.c.Timeout)
	if err != nil {
		return err
	}
	defer func() { _ = kc.conn.Close() }()
	var prefix [8]byte // message ids: a random prefix per publisher and a counter
	if _, err := rand.Read(prefix[:]); err != nil {
		return err
	}
	idBuf := make([]byte, 16)
	copy(idBuf, prefix[:])
	id := make([]byte, 32)
	body := make([]byte, w.c.Size)
	if _, err := rand.Read(body); err != nil {
		return err
	}
	for i := 0; stopAt.IsZero() && i < n || !stopAt.IsZero() && time.Now().Before(stopAt); i++ {
		binary.BigEndian.PutUint64(idBuf[8:], uint64(i))
		hex.Encode(id, idBuf)
		now := time.Now()
		binary.BigEndian.PutUint64(body, uint64(now.UnixNano()))
		msg := &wire.BytesMessage{
			Header: &wire.Header{
				MessageId:    proto.String(string(id)),
				Topic:        proto.String(kiteqBenchTopic),
				MessageType:  proto.String(kiteqBenchType),
				ExpiredTime:  proto.Int64(now.Add(24 * time.Hour).Unix()),
				DeliverLimit: proto.Int32(100),
				GroupId:      proto.String(kiteqBenchPubGroup),
				Commit:       proto.Bool(true),
				Fly:          proto.Bool(false),
				CreateTime:   proto.Int64(now.Unix()),
			},
			Body: body,
		}
		o, err := kc.send(wire.CmdBytesMessage, msg)
		if err != nil {
			return err
		}
		m, err := kc.reply(wire.CmdMessageStoreAck, o)
		if err != nil {
			return fmt.Errorf("bench %s: store ack: %w", w.name, err)
		}
		lat := time.Since(now)
		if m.(*wire.MessageStoreAck).GetStatus() {
			w.acked.Add(1)
			w.sent.Add(1) // counted once acked: a refused message is never delivered
		} else {
			w.failed.Add(1)
		}
		w.mu.Lock()
		w.ackLat = append(w.ackLat, lat)
		w.mu.Unlock()
	}
	return nil
}

// consume answers every delivery with a positive DeliverAck, as the
// benchmark's counting listener does, until the connection is closed.
// Acks are buffered and flushed whenever no more input is waiting.
func (kc *kiteqBenchConn) consume(w *benchWatch) {
	_ = kc.conn.SetReadDeadline(time.Time{})
	bw := bufio.NewWriterSize(kc.conn, 64<<10)
	var buf []byte
	for {
		f, err := wire.ReadFrame(kc.r)
		if err != nil {
			return
		}
		if f.Cmd != wire.CmdBytesMessage && f.Cmd != wire.CmdStringMessage {
			continue
		}
		m, err := wire.Decode(f)
		if err != nil {
			return
		}
		var h *wire.Header
		switch m := m.(type) {
		case *wire.BytesMessage:
			h = m.GetHeader()
			w.delivered(m.GetBody())
		case *wire.StringMessage:
			h = m.GetHeader()
			w.delivered([]byte(m.GetBody()))
		}
		body, err := wire.Encode(wire.CmdDeliverAck, &wire.DeliverAck{
			MessageId:   proto.String(h.GetMessageId()),
			Topic:       proto.String(h.GetTopic()),
			MessageType: proto.String(h.GetMessageType()),
			GroupId:     proto.String(h.GetGroupId()),
			Status:      proto.Bool(true),
			Feedback:    proto.String(""),
		})
		if err != nil {
			return
		}
		buf = wire.AppendFrame(buf[:0], wire.Frame{Opaque: f.Opaque, Cmd: wire.CmdDeliverAck, Body: body})
		if _, err := bw.Write(buf); err != nil {
			return
		}
		if kc.r.Buffered() == 0 {
			if err := bw.Flush(); err != nil {
				return
			}
		}
	}
}
