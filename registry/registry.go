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
