package store

import (
	"fmt"
	"time"
)

// BodyType is the KiteQ kind of a message body. Its values are the KiteQ
// command codes, so a KiteQ consumer gets the kind the producer sent.
type BodyType uint8

const (
	// BodyBytes is an opaque byte string (KiteQ BytesMessage, command 0x11).
	BodyBytes BodyType = 0x11
	// BodyString is UTF-8 text (KiteQ StringMessage, command 0x12).
	BodyString BodyType = 0x12
)

// String returns "bytes" or "string", the spelling of the Kq-Body-Type header.
func (t BodyType) String() string {
	switch t {
	case BodyBytes:
		return "bytes"
	case BodyString:
		return "string"
	default:
		return fmt.Sprintf("BodyType(%d)", uint8(t))
	}
}

// Property is one user key/value pair of a message. Order is kept, as the
// KiteQ Header's repeated Entry field keeps it.
type Property struct {
	Key   string
	Value string
}

// Message is a stored message: its KiteQ header fields, its body and the
// delivery state of every group that has still to receive it.
type Message struct {
	Topic       string // first level of the address
	ID          string // 32 hex digits, kept as given
	MessageType string // second level of the address
	Group       string // publishing group: target of transaction check-back
	BodyType    BodyType
	Body        []byte
	Properties  []Property
	Created     time.Time // when the producer made it (second precision on the KiteQ wire)
	Expires     time.Time // after this it is a dead letter for every pending group
	// DeliverLimit is the maximum number of delivery attempts per group (1..100).
	DeliverLimit int
	// Seq is the broker's publish sequence, reported in the publish ack. A
	// duplicate publish is answered with the original's Seq.
	Seq uint64

	// NewID marks an id the broker made for this publish: no stored
	// message or dedup entry can hold it, so a store may skip its duplicate
	// check. It is not stored.
	NewID bool

	// Prepared marks a two-phase message that is stored but not yet committed:
	// it has no Groups and is never delivered until an OpCommit.
	Prepared bool
	// Checks is how many transaction check-backs were sent (prepared only).
	Checks int
	// NextCheck is when the next check-back is due (prepared only).
	NextCheck time.Time

	// Groups holds one state per group that has not yet acknowledged or
	// dead-lettered the message.
	Groups []GroupState
}

// GroupState is the delivery state of one message for one group.
type GroupState struct {
	Group string
	// Attempts is the number of deliveries made to this group so far.
	Attempts int
	// NextAttempt is the earliest time of the next delivery. While a delivery
	// is in flight it is the end of its lease (ack deadline plus a margin),
	// so a crashed broker redelivers after restart.
	NextAttempt time.Time
}

// Clone returns a deep copy of m.
func (m *Message) Clone() *Message {
	c := *m
	c.Body = append([]byte(nil), m.Body...)
	c.Properties = append([]Property(nil), m.Properties...)
	c.Groups = append([]GroupState(nil), m.Groups...)
	return &c
}

// State returns the pending state of group, if the group is pending.
func (m *Message) State(group string) (GroupState, bool) {
	for _, g := range m.Groups {
		if g.Group == group {
			return g, true
		}
	}
	return GroupState{}, false
}

// Size is the approximate number of bytes the message occupies, used by
// bounded backends and limits.
func (m *Message) Size() int {
	n := len(m.Topic) + len(m.ID) + len(m.MessageType) + len(m.Group) + len(m.Body) + 64
	for _, p := range m.Properties {
		n += len(p.Key) + len(p.Value)
	}
	for _, g := range m.Groups {
		n += len(g.Group) + 24
	}
	return n
}

// DeadLetter is a message that one group will never receive again: its
// deliver limit or expiry was reached, or a consumer answered +TERM.
type DeadLetter struct {
	Message *Message // Groups is empty
	Group   string
	Reason  string
	At      time.Time
}

// GroupStat counts the messages of one (topic, group).
type GroupStat struct {
	Topic   string `json:"topic"`
	Group   string `json:"groupId"`
	Pending int64  `json:"pending"` // stored, not yet acknowledged or dead
	Dead    int64  `json:"dead"`    // dead letters
}

// TopicStat counts the messages of one topic.
type TopicStat struct {
	Topic    string `json:"topic"`
	Messages int64  `json:"messages"` // stored messages, prepared ones included
	Prepared int64  `json:"prepared"` // prepared, not yet committed or rolled back
}

// Stats is a snapshot of a store's counters, sorted by topic then group.
type Stats struct {
	Groups []GroupStat
	Topics []TopicStat
}
