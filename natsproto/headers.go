package natsproto

import (
	"crypto/sha256"
	"encoding/hex"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/kitenats/kitenats/kqerr"
	"github.com/kitenats/kitenats/semantics"
	"github.com/kitenats/kitenats/store"
)

// Publish and delivery header names (NATS-PROTOCOL.md §2, §4). Case-sensitive.
const (
	HdrMsgID        = "Kq-Msg-Id"
	HdrGroup        = "Kq-Group"
	HdrExpires      = "Kq-Expires"
	HdrDeliverLimit = "Kq-Deliver-Limit"
	HdrTx           = "Kq-Tx"
	HdrFly          = "Kq-Fly"
	HdrBodyType     = "Kq-Body-Type"
	HdrTopic        = "Kq-Topic"
	HdrMessageType  = "Kq-Message-Type"
	HdrDeliverCount = "Kq-Deliver-Count"
	HdrCreated      = "Kq-Created"
	HdrNatsMsgID    = "Nats-Msg-Id"
	HdrNatsTTL      = "Nats-TTL"
)

// publishHeaders lists the Kq-* headers a publisher may send.
var publishHeaders = map[string]bool{
	HdrMsgID: true, HdrGroup: true, HdrExpires: true, HdrDeliverLimit: true,
	HdrTx: true, HdrFly: true, HdrBodyType: true,
}

// ParsePublish validates a NATS publish of (topic, messageType) and builds
// its message. now is the broker's clock; newID makes an id when the
// publisher gave none (semantics.NewMessageID). Any refusal is a 400 *kqerr.Error.
func ParsePublish(topic, messageType string, hdr map[string][]string, body []byte, now time.Time, newID func() string) (*semantics.Publication, error) {
	m := &store.Message{
		Topic:        topic,
		MessageType:  messageType,
		BodyType:     store.BodyBytes,
		Body:         body,
		Created:      now.Truncate(time.Second),
		Expires:      now.Add(semantics.MaxExpiry),
		DeliverLimit: semantics.MaxDeliverLimit,
	}
	p := &semantics.Publication{Message: m}
	first := func(k string) string { return hdr[k][0] }
	var keys []string
	for k, v := range hdr {
		if len(v) > 0 {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	var err error
	for _, k := range keys {
		switch {
		case strings.HasPrefix(k, "Kq-"):
			if !publishHeaders[k] {
				return nil, kqerr.New(kqerr.BadRequest, nil, "unknown header %s", k)
			}
		case strings.HasPrefix(k, "Nats-"):
			if k != HdrNatsMsgID && k != HdrNatsTTL {
				return nil, kqerr.New(kqerr.BadRequest, nil, "header %s is not supported", k)
			}
		default:
			m.Properties = append(m.Properties, store.Property{Key: k, Value: first(k)})
		}
	}
	if v, ok := hdr[HdrMsgID]; ok && len(v) > 0 {
		if !semantics.ValidMessageID(v[0]) {
			return nil, kqerr.New(kqerr.BadRequest, nil, "%s %q is not 32 hex digits", HdrMsgID, v[0])
		}
		m.ID = v[0]
	} else if v, ok := hdr[HdrNatsMsgID]; ok && len(v) > 0 {
		m.ID = DedupID(topic, v[0])
	} else {
		m.ID = newID()
		p.NewID = true
	}
	if v, ok := hdr[HdrGroup]; ok && len(v) > 0 {
		m.Group = v[0]
	}
	if m.Expires, err = parseExpiry(hdr, now); err != nil {
		return nil, err
	}
	if v, ok := hdr[HdrDeliverLimit]; ok && len(v) > 0 {
		n, err := strconv.Atoi(v[0])
		if err != nil || n < 1 || n > semantics.MaxDeliverLimit {
			return nil, kqerr.New(kqerr.BadRequest, err, "%s %q is not in 1..%d", HdrDeliverLimit, v[0], semantics.MaxDeliverLimit)
		}
		m.DeliverLimit = n
	}
	if v, ok := hdr[HdrBodyType]; ok && len(v) > 0 {
		switch v[0] {
		case "bytes":
		case "string":
			m.BodyType = store.BodyString
		default:
			return nil, kqerr.New(kqerr.BadRequest, nil, "%s %q is not bytes or string", HdrBodyType, v[0])
		}
	}
	if err := parseFlags(p, hdr); err != nil {
		return nil, err
	}
	return p, nil
}

func parseFlags(p *semantics.Publication, hdr map[string][]string) error {
	if v, ok := hdr[HdrFly]; ok && len(v) > 0 {
		switch v[0] {
		case "true":
			p.Fly = true
		case "false":
		default:
			return kqerr.New(kqerr.BadRequest, nil, "%s %q is not true or false", HdrFly, v[0])
		}
	}
	if v, ok := hdr[HdrTx]; ok && len(v) > 0 {
		if v[0] != "prepare" {
			return kqerr.New(kqerr.BadRequest, nil, "%s %q: only prepare is allowed", HdrTx, v[0])
		}
		if p.Fly {
			return kqerr.New(kqerr.BadRequest, nil, "%s and %s together: a fly message must be committed", HdrFly, HdrTx)
		}
		if len(hdr[HdrMsgID]) == 0 || p.Message.Group == "" {
			return kqerr.New(kqerr.BadRequest, nil, "%s needs %s and %s", HdrTx, HdrMsgID, HdrGroup)
		}
		p.Prepare = true
		p.Message.Prepared = true
	}
	return nil
}

// parseExpiry applies Kq-Expires and Nats-TTL (the earlier wins): past is
// refused, beyond 7 days is clamped.
func parseExpiry(hdr map[string][]string, now time.Time) (time.Time, error) {
	limit := now.Add(semantics.MaxExpiry)
	exp := limit
	if v, ok := hdr[HdrExpires]; ok && len(v) > 0 {
		sec, err := strconv.ParseInt(v[0], 10, 64)
		if err != nil {
			return exp, kqerr.New(kqerr.BadRequest, err, "%s %q is not Unix seconds", HdrExpires, v[0])
		}
		if sec > limit.Unix() {
			sec = limit.Unix() // clamped before time.Unix, which wraps far values into the past
		}
		t := time.Unix(sec, 0)
		if !t.After(now) {
			return exp, kqerr.New(kqerr.BadRequest, nil, "%s %q is already past", HdrExpires, v[0])
		}
		if t.Before(exp) {
			exp = t
		}
	}
	if v, ok := hdr[HdrNatsTTL]; ok && len(v) > 0 {
		d, err := parseTTL(v[0])
		if err != nil || d < time.Second {
			return exp, kqerr.New(kqerr.BadRequest, err, "%s %q is not a duration of at least 1s", HdrNatsTTL, v[0])
		}
		if t := now.Add(d); t.Before(exp) {
			exp = t
		}
	}
	return exp, nil
}

// parseTTL reads a Go duration ("30m") or whole seconds ("90").
func parseTTL(s string) (time.Duration, error) {
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		if n > int64(semantics.MaxExpiry/time.Second) {
			n = int64(semantics.MaxExpiry / time.Second)
		}
		return time.Duration(n) * time.Second, nil
	}
	return time.ParseDuration(s)
}

// DedupID is the message id derived from a JetStream Nats-Msg-Id: the first
// 32 hex digits of SHA-256(topic ‖ 0x00 ‖ natsMsgID).
func DedupID(topic, natsMsgID string) string {
	h := sha256.New()
	h.Write([]byte(topic))
	h.Write([]byte{0})
	h.Write([]byte(natsMsgID))
	return hex.EncodeToString(h.Sum(nil))[:32]
}

// DeliveryHeaders builds the headers of a delivery of m as attempt number
// attempt (NATS-PROTOCOL.md §4); a transaction check carries them too. A
// header whose value is blank (no publishing group, a property with an
// empty value) is left out: some NATS clients mis-parse an empty header
// value and lose every header after it.
func DeliveryHeaders(m *store.Message, attempt int) map[string][]string {
	n := 9 + len(m.Properties)
	h := make(map[string][]string, n)
	// One backing array for every value: a delivery is on the hot path, and
	// nine one-element slices were nine allocations.
	vals := make([]string, 0, n)
	set := func(k, v string) {
		if blank(v) {
			delete(h, k) // as in the block: a later blank value hides an earlier one
			return
		}
		vals = append(vals, v)
		h[k] = vals[len(vals)-1 : len(vals) : len(vals)]
	}
	for _, p := range m.Properties {
		set(p.Key, p.Value)
	}
	set(HdrMsgID, m.ID)
	set(HdrTopic, m.Topic)
	set(HdrMessageType, m.MessageType)
	set(HdrGroup, m.Group)
	set(HdrDeliverCount, strconv.Itoa(attempt))
	set(HdrCreated, strconv.FormatInt(m.Created.Unix(), 10))
	set(HdrExpires, strconv.FormatInt(m.Expires.Unix(), 10))
	set(HdrDeliverLimit, strconv.Itoa(m.DeliverLimit))
	set(HdrBodyType, m.BodyType.String())
	return h
}

// appendDeliveryHeader appends the NATS header block of a delivery of m as
// attempt number attempt: the headers of DeliveryHeaders, encoded straight
// into b (the hot path builds no map). Where two properties share a key the
// later one is kept, a property never shadows a Kq- header, and a blank
// value makes no line, as in the map.
func appendDeliveryHeader(b []byte, m *store.Message, attempt int) []byte {
	b = append(b, "NATS/1.0\r\n"...)
	b = appendHeaderLine(b, HdrMsgID, m.ID)
	b = appendHeaderLine(b, HdrTopic, m.Topic)
	b = appendHeaderLine(b, HdrMessageType, m.MessageType)
	b = appendHeaderLine(b, HdrGroup, m.Group)
	b = strconv.AppendInt(append(b, HdrDeliverCount+": "...), int64(attempt), 10)
	b = strconv.AppendInt(append(b, "\r\n"+HdrCreated+": "...), m.Created.Unix(), 10)
	b = strconv.AppendInt(append(b, "\r\n"+HdrExpires+": "...), m.Expires.Unix(), 10)
	b = strconv.AppendInt(append(b, "\r\n"+HdrDeliverLimit+": "...), int64(m.DeliverLimit), 10)
	b = append(append(b, "\r\n"+HdrBodyType+": "...), m.BodyType.String()...)
	b = append(b, "\r\n"...)
	for i, p := range m.Properties {
		if deliveryHeader[p.Key] || shadowed(m.Properties[i+1:], p.Key) {
			continue
		}
		b = appendHeaderLine(b, p.Key, p.Value)
	}
	return append(b, "\r\n"...)
}

// deliveryHeader names the headers the broker sets on every delivery.
var deliveryHeader = map[string]bool{
	HdrMsgID: true, HdrTopic: true, HdrMessageType: true, HdrGroup: true, HdrDeliverCount: true,
	HdrCreated: true, HdrExpires: true, HdrDeliverLimit: true, HdrBodyType: true,
}

func shadowed(later []store.Property, k string) bool {
	for _, p := range later {
		if p.Key == k {
			return true
		}
	}
	return false
}

// EncodeHeader returns the NATS header block of h ("NATS/1.0\r\n", one
// "Key: Value\r\n" line per value, "\r\n"), keys sorted, or nil when h is
// empty. It encodes as nats.go does (through net/http): a key that is not
// a valid header field name is dropped, CR and LF in a value become
// spaces, and leading and trailing blanks are trimmed. Unlike nats.go, it
// never writes an empty value: a value that is blank makes no line
// (NATS-PROTOCOL.md §4).
func EncodeHeader(h map[string][]string) []byte {
	if len(h) == 0 {
		return nil
	}
	keys := make([]string, 0, len(h))
	for k := range h {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	b := []byte("NATS/1.0\r\n")
	for _, k := range keys {
		for _, v := range h[k] {
			b = appendHeaderLine(b, k, v)
		}
	}
	return append(b, "\r\n"...)
}

// appendHeaderLine appends "k: v\r\n" under EncodeHeader's rules: nothing
// when k is not a field name or v is blank.
func appendHeaderLine(b []byte, k, v string) []byte {
	// CR and LF become spaces, so at either end they are trimmed as
	// net/http trims them.
	v = trimBlanks(v)
	if v == "" || !fieldName(k) {
		return b
	}
	b = append(append(b, k...), ": "...)
	for i := 0; i < len(v); i++ {
		c := v[i]
		if c == '\r' || c == '\n' {
			c = ' '
		}
		b = append(b, c)
	}
	return append(b, "\r\n"...)
}

// blanks are what a header value is trimmed of.
const blanks = " \t\r\n"

// trimBlanks trims blanks off both ends of v.
func trimBlanks(v string) string {
	if v != "" && v[0] > ' ' && v[len(v)-1] > ' ' {
		return v // the usual value: nothing to trim
	}
	return strings.Trim(v, blanks)
}

// blank reports whether v is empty once trimmed: it makes no header line.
func blank(v string) bool { return trimBlanks(v) == "" }

// fieldName reports whether k is a valid header field name (an RFC 7230
// token).
func fieldName(k string) bool {
	if k == "" {
		return false
	}
	for i := 0; i < len(k); i++ {
		c := k[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
			strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0) {
			return false
		}
	}
	return true
}
