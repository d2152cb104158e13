package registry

import "context"

// Registry is what the broker needs from a registry: advertise itself for
// its topics, publish the bindings of NATS consumer groups, and learn the
// bindings that KiteQ clients write.
//
// Implementations are safe for concurrent use. Close ends every watch (their
// channels are closed) and releases the session; it is idempotent.
type Registry interface {
	// PublishServer advertises addr (a routable host:port) as a broker of
	// each topic. The advertisement lives as long as the registry session
	// and is restored after a session expiry.
	PublishServer(ctx context.Context, addr string, topics []string) error
	// UnpublishServer withdraws PublishServer's advertisement.
	UnpublishServer(ctx context.Context, addr string, topics []string) error
	// PublishBindings replaces the bindings of group with bs, per topic (an
	// empty bs removes them). It returns ErrStatic for a static registry.
	PublishBindings(ctx context.Context, group string, bs []Binding) error
	// Watch sends the complete current bindings of topic, at once and after
	// every change, until ctx ends or the registry closes; then the channel
	// is closed. A missed event can therefore never corrupt state. An event
	// with Err set reports a lost session; a full state follows once it is
	// back.
	Watch(ctx context.Context, topic string) (<-chan Event, error)
	// Close releases the registry.
	Close() error
}

// Event is the full binding state of one topic.
type Event struct {
	Topic string
	// Bindings is every group's bindings on Topic.
	Bindings map[string][]Binding
	Err      error
}

// SendLatest delivers ev on ch without blocking, as a Watch channel wants:
// it takes back what the reader has not read yet, keeps an unread Err when
// ev is a state (so that a lost session is never hidden), and puts that Err
// and ev back. The caller must be ch's only sender and ch must hold at
// least two events, so that once drained it has room for both.
func SendLatest(ch chan Event, ev Event) {
	var keep *Event
	for drained := false; !drained; {
		select {
		case old := <-ch:
			if old.Err != nil && ev.Err == nil {
				keep = &old
			}
		default:
			drained = true
		}
	}
	if keep != nil {
		ch <- *keep
	}
	ch <- ev
}
