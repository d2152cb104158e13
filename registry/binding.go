package registry

import (
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
)

// BindType is how a binding's MessageType is matched.
type BindType uint8

// The binding kinds, with KiteQ's numbers.
const (
	Direct BindType = 0 // MessageType equals the message's type
	Regx   BindType = 1 // MessageType is an unanchored RE2 pattern
	Fanout BindType = 2 // every messageType of the topic
)

// String returns "direct", "regx" or "fanout".
func (t BindType) String() string {
	switch t {
	case Direct:
		return "direct"
	case Regx:
		return "regx"
	case Fanout:
		return "fanout"
	default:
		return "BindType(" + strconv.Itoa(int(t)) + ")"
	}
}

// ParseBindType accepts "direct", "regx", "fanout" (any case) and KiteQ's
// numbers 0, 1, 2.
func ParseBindType(s string) (BindType, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "direct", "0":
		return Direct, nil
	case "regx", "1":
		return Regx, nil
	case "fanout", "2":
		return Fanout, nil
	}
	return 0, fmt.Errorf("registry: unknown bindType %q (want direct, regx or fanout)", s)
}

// UnmarshalJSON accepts a number (KiteQ's form) or a name.
func (t *BindType) UnmarshalJSON(b []byte) error {
	s := string(b)
	if uq, err := strconv.Unquote(s); err == nil {
		s = uq
	}
	v, err := ParseBindType(s)
	if err != nil {
		return err
	}
	*t = v
	return nil
}

// Version is the binding version KiteQ writes (BIND_VERSION).
const Version = "1.0.0"

// DefaultWatermark is KiteQ's default and maximum per-(topic, group)
// delivery rate for bindings read from a KiteQ registry.
const DefaultWatermark = 6000

// Binding is one subscription of a group. Its JSON form is KiteQ's, so the
// same bytes are read from and written to ZooKeeper.
type Binding struct {
	GroupID     string   `json:"groupId"`
	Topic       string   `json:"topic"`
	MessageType string   `json:"messageType"`
	BindType    BindType `json:"bindType"`
	Version     string   `json:"version"`
	// Watermark caps deliveries per second for (topic, group) on one
	// broker. For NATS bindings 0 means unlimited; KiteQWatermark gives the
	// rule of bindings written by KiteQ clients.
	Watermark  int32 `json:"watermark"`
	Persistent bool  `json:"persistent"`
}

// KiteQWatermark applies KiteQ's rule to a watermark: <= 0 means 6000, and
// at most 6000.
func KiteQWatermark(w int32) int32 {
	if w <= 0 || w > DefaultWatermark {
		return DefaultWatermark
	}
	return w
}

// Validate reports what is wrong with b: empty group or topic, an unknown
// kind, a direct or regx without a messageType, a pattern that does not
// compile, or a negative watermark.
func (b Binding) Validate() error {
	switch {
	case b.GroupID == "":
		return errors.New("registry: binding without groupId")
	case b.Topic == "":
		return errors.New("registry: binding without topic")
	case b.BindType > Fanout:
		return fmt.Errorf("registry: binding %s/%s: unknown bindType %d", b.Topic, b.MessageType, b.BindType)
	case b.BindType != Fanout && b.MessageType == "":
		return fmt.Errorf("registry: %s binding on %s without messageType", b.BindType, b.Topic)
	case b.Watermark < 0:
		return fmt.Errorf("registry: binding %s/%s: negative watermark", b.Topic, b.MessageType)
	}
	if b.BindType == Regx {
		if _, err := regexp.Compile(b.MessageType); err != nil {
			return fmt.Errorf("registry: binding %s: bad regx %q: %w", b.Topic, b.MessageType, err)
		}
	}
	return nil
}

// Normalize returns b with KiteQ's fixed fields set: version "1.0.0" and, for
// fanout, messageType "*".
func (b Binding) Normalize() Binding {
	b.Version = Version
	if b.BindType == Fanout {
		b.MessageType = "*"
	}
	return b
}

// Same reports whether a and b are the same binding (version aside).
func (b Binding) Same(o Binding) bool {
	b.Version, o.Version = "", ""
	return b == o
}

// Matcher is a compiled binding.
type Matcher struct {
	Binding
	re *regexp.Regexp
}

// Compile returns b's matcher. An invalid pattern compiles to a matcher that
// never matches, as in KiteQ.
func Compile(b Binding) Matcher {
	m := Matcher{Binding: b}
	if b.BindType == Regx {
		m.re, _ = regexp.Compile(b.MessageType)
	}
	return m
}

// Matches reports whether a message of (topic, messageType) is for this
// binding. Unlike KiteQ's client-side Matches, the topic is always compared:
// the broker applies bindings within their topic, as KiteQ's broker does by
// keeping them per topic.
func (m Matcher) Matches(topic, messageType string) bool {
	if topic != m.Topic {
		return false
	}
	switch m.BindType {
	case Direct:
		return messageType == m.MessageType
	case Regx:
		return m.re != nil && m.re.MatchString(messageType)
	case Fanout:
		return true
	default:
		return false
	}
}

// ErrConflict is wrapped by Conflict's errors.
var ErrConflict = errors.New("registry: conflicting binding")

// Conflict reports whether adding b to a group that already has existing is
// a conflict (NATS-PROTOCOL.md §3), and whether b is already there. On one
// topic a group may have one fanout alone, or at most one regx plus directs
// that the regx does not match; a direct repeated with other persistent or
// watermark values conflicts.
func Conflict(existing []Binding, b Binding) (dup bool, err error) {
	for _, e := range existing {
		if e.Topic != b.Topic {
			continue
		}
		if e.Same(b) {
			return true, nil
		}
	}
	nb := Compile(b)
	for _, e := range existing {
		if e.Topic != b.Topic || e.GroupID != b.GroupID {
			continue
		}
		if err := conflictWith(Compile(e), nb); err != nil {
			return false, err
		}
	}
	return false, nil
}

// conflictWith is the conflict, if any, between an existing binding em of
// a group and a new one nb of the same group on the same topic (neither
// the same as the other).
func conflictWith(em, nb Matcher) error {
	e, b := em.Binding, nb.Binding
	switch {
	case e.BindType == Fanout || b.BindType == Fanout:
		return fmt.Errorf("%w: %s already has a %s binding on %s; a fanout stands alone", ErrConflict, b.GroupID, e.BindType, b.Topic)
	case e.BindType == Regx && b.BindType == Regx:
		return fmt.Errorf("%w: %s already has a regx binding on %s", ErrConflict, b.GroupID, b.Topic)
	case e.BindType == Direct && b.BindType == Direct && e.MessageType == b.MessageType:
		return fmt.Errorf("%w: %s already binds %s/%s with other persistent/watermark", ErrConflict, b.GroupID, b.Topic, b.MessageType)
	case e.BindType == Regx && em.Matches(b.Topic, b.MessageType):
		return fmt.Errorf("%w: %s's regx %q on %s already matches %q", ErrConflict, b.GroupID, e.MessageType, b.Topic, b.MessageType)
	case b.BindType == Regx && nb.Matches(e.Topic, e.MessageType):
		return fmt.Errorf("%w: new regx %q on %s matches %s's direct %q", ErrConflict, b.MessageType, b.Topic, b.GroupID, e.MessageType)
	}
	return nil
}

// MarshalBindings returns KiteQ's JSON array form of bs.
func MarshalBindings(bs []Binding) ([]byte, error) {
	if bs == nil {
		bs = []Binding{}
	}
	return json.Marshal(bs)
}

// UnmarshalBindings parses KiteQ's JSON array form.
func UnmarshalBindings(data []byte) ([]Binding, error) {
	var bs []Binding
	if err := json.Unmarshal(data, &bs); err != nil {
		return nil, fmt.Errorf("registry: bad bindings JSON: %w", err)
	}
	return bs, nil
}
