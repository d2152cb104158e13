package daemon

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kitenats/kitenats/compat/compattest"
	"github.com/kitenats/kitenats/compat/wire"
)

// rawNATS is a NATS client written against the client protocol itself, so
// that a test sees the bytes the server sends: the header block of an HMSG
// exactly as it came, before any client library parsed it.
type rawNATS struct {
	t      *testing.T
	conn   net.Conn
	wmu    sync.Mutex // serialises writes (the reader answers PINGs)
	frames chan rawFrame
	pongs  chan struct{}
	stop   chan struct{}
	done   chan struct{} // closed when the reader ends
	held   []rawFrame    // read, not yet asked for
	sid    int
}

// rawFrame is one MSG or HMSG, or what stopped the reader.
type rawFrame struct {
	op      string // MSG or HMSG
	subject string
	reply   string
	header  []byte // HMSG: the header block, status line to blank line
	data    []byte
	err     error
}

// dialRaw connects to the NATS server at url (nats://host:port) as user,
// with headers on, and reads until the test ends.
func dialRaw(t *testing.T, url, user string) *rawNATS {
	t.Helper()
	conn, err := net.Dial("tcp", strings.TrimPrefix(url, "nats://"))
	require.NoError(t, err)
	r := &rawNATS{t: t, conn: conn, frames: make(chan rawFrame, 1024), pongs: make(chan struct{}, 16),
		stop: make(chan struct{}), done: make(chan struct{})}
	br := bufio.NewReader(conn)
	info, err := br.ReadString('\n')
	require.NoError(t, err)
	require.True(t, strings.HasPrefix(info, "INFO "), info)
	go r.read(br)
	t.Cleanup(func() {
		close(r.stop)
		_ = conn.Close()
		<-r.done
	})
	r.write(`CONNECT {"verbose":false,"pedantic":true,"headers":true,"protocol":1,"user":"` + user + `","pass":""}` + "\r\n")
	r.flush()
	return r
}

func (r *rawNATS) write(s string) {
	r.t.Helper()
	r.wmu.Lock()
	defer r.wmu.Unlock()
	_, err := io.WriteString(r.conn, s)
	require.NoError(r.t, err)
}

// flush returns once the server has processed everything sent so far.
func (r *rawNATS) flush() {
	r.t.Helper()
	r.write("PING\r\n")
	select {
	case <-r.pongs:
	case <-time.After(5 * time.Second):
		r.t.Fatal("no PONG within 5s")
	}
}

func (r *rawNATS) sub(subject string) {
	r.t.Helper()
	r.sid++
	r.write(fmt.Sprintf("SUB %s %d\r\n", subject, r.sid))
	r.flush()
}

// pub publishes body on subject; with header lines ("Key: Value") it is an
// HPUB whose block holds exactly those lines.
func (r *rawNATS) pub(subject, reply string, lines []string, body string) {
	r.t.Helper()
	sr := subject
	if reply != "" {
		sr += " " + reply
	}
	if lines == nil {
		r.write(fmt.Sprintf("PUB %s %d\r\n%s\r\n", sr, len(body), body))
		return
	}
	hdr := "NATS/1.0\r\n" + strings.Join(lines, "\r\n") + "\r\n\r\n"
	r.write(fmt.Sprintf("HPUB %s %d %d\r\n%s%s\r\n", sr, len(hdr), len(hdr)+len(body), hdr, body))
}

// next returns the first message on a subject starting with prefix, held or
// new. Every message read is checked on arrival: an HMSG's header block must
// parse strictly (requireStrictHeaderBlock).
func (r *rawNATS) next(prefix string) rawFrame {
	r.t.Helper()
	for i, f := range r.held {
		if strings.HasPrefix(f.subject, prefix) {
			r.held = append(r.held[:i:i], r.held[i+1:]...)
			return f
		}
	}
	deadline := time.After(5 * time.Second)
	for {
		select {
		case f := <-r.frames:
			require.NoError(r.t, f.err)
			if f.op == "HMSG" {
				requireStrictHeaderBlock(r.t, f.subject, f.header)
			}
			if strings.HasPrefix(f.subject, prefix) {
				return f
			}
			r.held = append(r.held, f)
		case <-deadline:
			r.t.Fatalf("no message on %s* within 5s", prefix)
		}
	}
}

// take returns and forgets the held messages on subjects starting with
// prefix.
func (r *rawNATS) take(prefix string) []rawFrame {
	var got, rest []rawFrame
	for _, f := range r.held {
		if strings.HasPrefix(f.subject, prefix) {
			got = append(got, f)
		} else {
			rest = append(rest, f)
		}
	}
	r.held = rest
	return got
}

// read parses what the server sends until the connection closes.
func (r *rawNATS) read(br *bufio.Reader) {
	defer close(r.done)
	emit := func(f rawFrame) bool {
		select {
		case r.frames <- f:
			return true
		case <-r.stop:
			return false
		}
	}
	for {
		f, err := r.readOne(br)
		if err != nil {
			emit(rawFrame{err: err})
			return
		}
		if f != nil && !emit(*f) {
			return
		}
	}
}

// readOne reads one protocol line and, for MSG and HMSG, its payload.
func (r *rawNATS) readOne(br *bufio.Reader) (*rawFrame, error) {
	line, err := br.ReadString('\n')
	if err != nil {
		return nil, err
	}
	if !strings.HasSuffix(line, "\r\n") {
		return nil, fmt.Errorf("protocol line %q not ended by CRLF", line)
	}
	op, rest, _ := strings.Cut(strings.TrimSuffix(line, "\r\n"), " ")
	switch op {
	case "PING":
		r.wmu.Lock()
		_, err := io.WriteString(r.conn, "PONG\r\n")
		r.wmu.Unlock()
		return nil, err
	case "PONG":
		select {
		case r.pongs <- struct{}{}:
		case <-r.stop:
		}
		return nil, nil
	case "+OK", "INFO":
		return nil, nil
	case "-ERR":
		return nil, errors.New("server: " + rest)
	case "MSG", "HMSG":
	default:
		return nil, fmt.Errorf("unexpected protocol line %q", line)
	}
	// MSG <subject> <sid> [reply] <#bytes>
	// HMSG <subject> <sid> [reply] <#header bytes> <#total bytes>
	fs := strings.Fields(rest)
	sizes := 1
	if op == "HMSG" {
		sizes = 2
	}
	if len(fs) != 2+sizes && len(fs) != 3+sizes {
		return nil, fmt.Errorf("bad %s line %q", op, line)
	}
	f := &rawFrame{op: op, subject: fs[0]}
	if len(fs) == 3+sizes {
		f.reply = fs[2]
	}
	total, err := strconv.Atoi(fs[len(fs)-1])
	if err != nil {
		return nil, fmt.Errorf("bad %s line %q: %w", op, line, err)
	}
	hsize := 0
	if op == "HMSG" {
		if hsize, err = strconv.Atoi(fs[len(fs)-2]); err != nil || hsize > total {
			return nil, fmt.Errorf("bad HMSG line %q", line)
		}
	}
	payload := make([]byte, total+2)
	if _, err := io.ReadFull(br, payload); err != nil {
		return nil, err
	}
	if string(payload[total:]) != "\r\n" {
		return nil, fmt.Errorf("%s payload of %s not ended by CRLF", op, f.subject)
	}
	f.header, f.data = payload[:hsize], payload[hsize:total]
	return f, nil
}

// requireStrictHeaderBlock parses a header block as the strictest NATS
// client would: the status line "NATS/1.0" (no status code), then lines
// "Key: Value" with a token key and a non-empty value without blanks at its
// ends, each ended by CRLF, then the blank line, and nothing else.
func requireStrictHeaderBlock(t *testing.T, subject string, b []byte) map[string][]string {
	t.Helper()
	s := string(b)
	require.True(t, strings.HasPrefix(s, "NATS/1.0\r\n"), "%s: status line of %q", subject, s)
	require.True(t, strings.HasSuffix(s, "\r\n\r\n"), "%s: no blank line ending %q", subject, s)
	h := map[string][]string{}
	body := strings.TrimSuffix(strings.TrimPrefix(s, "NATS/1.0\r\n"), "\r\n")
	for l := range strings.SplitAfterSeq(body, "\r\n") {
		if l == "" {
			continue
		}
		require.True(t, strings.HasSuffix(l, "\r\n"), "%s: line %q not ended by CRLF in %q", subject, l, s)
		l = strings.TrimSuffix(l, "\r\n")
		require.NotContains(t, l, "\r", "%s: bare CR in %q", subject, s)
		require.NotContains(t, l, "\n", "%s: bare LF in %q", subject, s)
		k, v, ok := strings.Cut(l, ": ")
		require.True(t, ok, "%s: line %q is not Key: Value in %q", subject, l, s)
		require.Regexp(t, "^[!#$%&'*+.^_`|~0-9A-Za-z-]+$", k, "%s: key of line %q in %q", subject, l, s)
		require.NotEmpty(t, v, "%s: empty value of %s in %q", subject, k, s)
		require.Equal(t, strings.Trim(v, " \t"), v, "%s: blanks around the value of %s in %q", subject, k, s)
		h[k] = append(h[k], v)
	}
	return h
}

// TestE2EHeadersStrictOnTheWire: every header block the broker sends to a
// NATS client (deliveries, first and redelivered, of messages published
// with and without the optional headers over NATS and KiteQ; taps;
// transaction check-backs) parses strictly, with no empty value, and a
// header is present only when it has a value (NATS-PROTOCOL.md §4).
func TestE2EHeadersStrictOnTheWire(t *testing.T) {
	k := startKiteQ(t, fastTx)
	r := dialRaw(t, k.url, "s-raw")
	const deliver = "$KQ.DLV.s-raw.w1"
	r.sub(deliver)
	r.sub("_INBOX.raw.>")
	r.sub("$KQ.TAP.>")
	r.sub("$KQ.TXCHECK.p-raw")
	r.pub("$KQ.API.BIND.s-raw", "_INBOX.raw.bind", nil,
		`{"deliver":"`+deliver+`","bindings":[{"topic":"trade","bindType":"fanout","persistent":true}]}`)
	require.Contains(t, string(r.next("_INBOX.raw.bind").data), `"consumer"`)

	// consume takes the first delivery of a message, naks it, takes the
	// redelivery, acks it, and returns both header sets.
	consume := func(what string) [2]map[string][]string {
		t.Helper()
		var hs [2]map[string][]string
		for i, ack := range []string{"-NAK", "+ACK"} {
			f := r.next(deliver)
			require.Equal(t, "HMSG", f.op, "%s: a delivery has headers", what)
			hs[i] = requireStrictHeaderBlock(t, f.subject, f.header)
			require.Equal(t, []string{strconv.Itoa(i + 1)}, hs[i]["Kq-Deliver-Count"], "%s: %q", what, f.header)
			for _, name := range []string{"Kq-Msg-Id", "Kq-Topic", "Kq-Message-Type", "Kq-Created", "Kq-Expires", "Kq-Deliver-Limit", "Kq-Body-Type"} {
				require.Len(t, hs[i][name], 1, "%s: %s in %q", what, name, f.header)
			}
			require.Equal(t, []string{"trade"}, hs[i]["Kq-Topic"])
			require.NotEmpty(t, f.reply)
			r.pub(f.reply, "", nil, ack)
		}
		require.Equal(t, hs[0]["Kq-Msg-Id"], hs[1]["Kq-Msg-Id"], "%s: the redelivery is of the same message", what)
		return hs
	}
	pubAck := func(reply string) string {
		t.Helper()
		a := r.next(reply)
		require.NotContains(t, string(a.data), `"error"`)
		return string(a.data)
	}

	// Without any optional header: no Kq-Group line at all.
	r.pub("kq.trade.pay", "_INBOX.raw.p1", nil, "plain")
	pubAck("_INBOX.raw.p1")
	for _, h := range consume("plain") {
		require.NotContains(t, h, "Kq-Group")
	}

	// Every optional header, properties with an empty and a blank value
	// among them: those two have no line, everything after them does.
	id := strings.Repeat("a", 32)
	r.pub("kq.trade.pay", "_INBOX.raw.p2", []string{"Kq-Group: p-raw", "Kq-Msg-Id: " + id, "Empty: ", "Blank: \t",
		"Order: 42", "Kq-Body-Type: string", "Kq-Deliver-Limit: 7"}, "full")
	pubAck("_INBOX.raw.p2")
	for _, h := range consume("full") {
		require.Equal(t, []string{"p-raw"}, h["Kq-Group"])
		require.Equal(t, []string{id}, h["Kq-Msg-Id"])
		require.Equal(t, []string{"42"}, h["Order"])
		require.Equal(t, []string{"string"}, h["Kq-Body-Type"])
		require.Equal(t, []string{"7"}, h["Kq-Deliver-Limit"])
		require.NotContains(t, h, "Empty")
		require.NotContains(t, h, "Blank")
	}

	// A JetStream dedup id and a Kq-Group the publisher sent empty; the
	// same again is a duplicate, delivered no more.
	r.pub("kq.trade.pay", "_INBOX.raw.p3", []string{"Nats-Msg-Id: order-1", "Kq-Group: "}, "dedup")
	pubAck("_INBOX.raw.p3")
	r.pub("kq.trade.pay", "_INBOX.raw.p4", []string{"Nats-Msg-Id: order-1"}, "dedup")
	require.Contains(t, pubAck("_INBOX.raw.p4"), `"duplicate":true`)
	for _, h := range consume("dedup") {
		require.NotContains(t, h, "Kq-Group")
	}

	// A transaction: the check-back carries the message's headers too;
	// answered commit, the message is delivered.
	txID := strings.Repeat("b", 32)
	r.pub("kq.trade.pay", "_INBOX.raw.p5", []string{"Kq-Tx: prepare", "Kq-Msg-Id: " + txID, "Kq-Group: p-raw", "Empty: "}, "tx")
	pubAck("_INBOX.raw.p5")
	check := r.next("$KQ.TXCHECK.p-raw")
	require.Equal(t, "HMSG", check.op)
	ch := requireStrictHeaderBlock(t, check.subject, check.header)
	require.Equal(t, []string{txID}, ch["Kq-Msg-Id"])
	require.NotContains(t, ch, "Empty")
	r.pub(check.reply, "", nil, "commit")
	for _, h := range consume("tx") {
		require.Equal(t, []string{txID}, h["Kq-Msg-Id"])
		require.Equal(t, []string{"p-raw"}, h["Kq-Group"])
	}

	// From a KiteQ producer: no group in its header, a property with an
	// empty value.
	p := kiteqClient(t, k.kiteq, "p-kq", 0)
	kid := compattest.NewID()
	kh := compattest.Header(kid, "trade", "pay", "")
	kh.Properties = compattest.Props("empty", "", "orderNo", "42")
	require.True(t, p.ExpectStoreAck(p.Publish(wire.CmdBytesMessage, kh, []byte("kiteq"))).GetStatus())
	for _, h := range consume("kiteq") {
		require.Equal(t, []string{kid}, h["Kq-Msg-Id"])
		require.Equal(t, []string{"42"}, h["orderNo"])
		require.NotContains(t, h, "Kq-Group")
		require.NotContains(t, h, "empty")
	}

	// Taps: one per accepted message (the duplicate is not one), each
	// checked strictly on arrival.
	taps := r.take("$KQ.TAP.")
	for len(taps) < 5 {
		taps = append(taps, r.next("$KQ.TAP."))
	}
	for _, f := range taps {
		require.Equal(t, "HMSG", f.op)
		h := requireStrictHeaderBlock(t, f.subject, f.header)
		if string(f.data) == "plain" {
			require.NotContains(t, h, "Kq-Group")
		}
	}
}
