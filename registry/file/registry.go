package file

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/kitenats/kitenats/registry"
)

// DefaultReloadInterval is how often KiteQ re-reads the file.
const DefaultReloadInterval = time.Minute

// WatchBuffer is the capacity of a Watch channel. Every event carries the
// full state of the topic, so a newer event replaces an unread one.
const WatchBuffer = 1

// ErrClosed is returned by the methods of a closed Registry.
var ErrClosed = errors.New("file: registry closed")

// Config configures a Registry.
type Config struct {
	// Path is the YAML file, relative to the working directory or
	// absolute. Required.
	Path string
	// ReloadInterval is how often the file is read again. Default 60 s
	// (KiteQ's); negative disables reloading.
	ReloadInterval time.Duration
	// Logger receives reload failures (Warn) and changes (Info). Default:
	// discard.
	Logger *slog.Logger
}

func (c *Config) setDefaults() {
	if c.ReloadInterval == 0 {
		c.ReloadInterval = DefaultReloadInterval
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
}

// Validate reports a missing Path.
func (c Config) Validate() error {
	if c.Path == "" {
		return errors.New("file: no registry file path")
	}
	return nil
}

// ParseURI returns the path of KiteQ's file://PATH registry URI. The path
// is taken as-is after the scheme, so file://./conf/registry.yaml is
// relative and file:///etc/kiteq/registry.yaml absolute.
func ParseURI(uri string) (string, error) {
	scheme, path, ok := strings.Cut(uri, "://")
	if !ok || !strings.EqualFold(scheme, "file") {
		return "", fmt.Errorf("file: registry URI %q does not start with file://", uri)
	}
	if path == "" {
		return "", fmt.Errorf("file: registry URI %q has no path", uri)
	}
	return path, nil
}

// Registry is a static registry read from KiteQ's YAML file. Create it
// with New; it is safe for concurrent use.
type Registry struct {
	cfg  Config
	log  *slog.Logger
	done chan struct{} // closed by Close
	wg   sync.WaitGroup

	mu      sync.Mutex // guards every field below
	st      *state
	raw     []byte // the file as last parsed, to skip identical reloads
	watches map[*watch]struct{}
	closed  bool
}

type watch struct {
	topic string
	out   chan registry.Event
	last  map[string][]registry.Binding
	stop  func() bool // stops the context.AfterFunc
}

var _ registry.Registry = (*Registry)(nil)

// New reads the file (an unreadable or invalid file is an error here, at
// startup) and starts reloading it every ReloadInterval.
func New(cfg Config) (*Registry, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.setDefaults()
	r := &Registry{
		cfg:     cfg,
		log:     cfg.Logger,
		done:    make(chan struct{}),
		watches: make(map[*watch]struct{}),
	}
	raw, st, err := r.read()
	if err != nil {
		return nil, err
	}
	r.st, r.raw = st, raw
	if cfg.ReloadInterval > 0 {
		r.wg.Add(1)
		go r.reloadLoop()
	}
	return r, nil
}

// read reads and parses the file, logging warnings.
func (r *Registry) read() ([]byte, *state, error) {
	raw, err := os.ReadFile(r.cfg.Path)
	if err != nil {
		return nil, nil, fmt.Errorf("file: read registry: %w", err)
	}
	st, warnings, err := parse(raw)
	if err != nil {
		return nil, nil, fmt.Errorf("%w (in %s)", err, r.cfg.Path)
	}
	for _, w := range warnings {
		r.log.Warn("file: "+w, "path", r.cfg.Path)
	}
	return raw, st, nil
}

func (r *Registry) reloadLoop() {
	defer r.wg.Done()
	tick := time.NewTicker(r.cfg.ReloadInterval)
	defer tick.Stop()
	for {
		select {
		case <-r.done:
			return
		case <-tick.C:
			r.Reload()
		}
	}
}

// Reload reads the file now. A read or parse error is logged and the
// previous state kept; KiteQ panics instead. Watches whose topic changed
// get the new state. The reload loop calls it every ReloadInterval.
func (r *Registry) Reload() {
	raw, err := os.ReadFile(r.cfg.Path)
	if err == nil {
		r.mu.Lock()
		same := slices.Equal(raw, r.raw)
		r.mu.Unlock()
		if same {
			return
		}
	}
	raw, st, err := r.read()
	if err != nil {
		r.log.Warn("file: reload failed; keeping the previous registry", "path", r.cfg.Path, "err", err)
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return
	}
	r.st, r.raw = st, raw
	r.log.Info("file: registry reloaded", "path", r.cfg.Path, "brokers", len(st.brokers))
	for w := range r.watches {
		r.notifyLocked(w)
	}
}

// Brokers returns the addresses of every broker whose topics list topic,
// in file order. Membership is exact, whatever the order of the list.
func (r *Registry) Brokers(topic string) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.st.brokersOf(topic)
}

// Watch sends the file's bindings of topic at once and again after a
// reload that changes them, until ctx ends or Close; then the channel is
// closed.
func (r *Registry) Watch(ctx context.Context, topic string) (<-chan registry.Event, error) {
	if topic == "" {
		return nil, errors.New("file: empty topic")
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return nil, ErrClosed
	}
	w := &watch{topic: topic, out: make(chan registry.Event, WatchBuffer)}
	r.notifyLocked(w)
	r.watches[w] = struct{}{}
	w.stop = context.AfterFunc(ctx, func() {
		r.mu.Lock()
		defer r.mu.Unlock()
		r.endLocked(w)
	})
	return w.out, nil
}

// notifyLocked sends w its topic's state if it changed since the last
// send. Caller must hold r.mu.
func (r *Registry) notifyLocked(w *watch) {
	cur := r.st.topicState(w.topic)
	if w.last != nil && maps.EqualFunc(cur, w.last, slices.Equal) {
		return
	}
	w.last = cur
	ev := registry.Event{Topic: w.topic, Bindings: r.st.topicState(w.topic)}
	select {
	case w.out <- ev:
		return
	default:
	}
	select { // replace the unread event; we hold r.mu, so we are the only sender
	case <-w.out:
	default:
	}
	w.out <- ev
}

// endLocked closes w's channel once. Caller must hold r.mu.
func (r *Registry) endLocked(w *watch) {
	if _, ok := r.watches[w]; !ok {
		return
	}
	delete(r.watches, w)
	close(w.out)
}

// PublishServer checks that addr is a broker of the file; there is
// nothing to publish.
func (r *Registry) PublishServer(_ context.Context, addr string, _ []string) error {
	return r.checkListed(addr)
}

// UnpublishServer checks that addr is a broker of the file; there is
// nothing to withdraw.
func (r *Registry) UnpublishServer(_ context.Context, addr string, _ []string) error {
	return r.checkListed(addr)
}

func (r *Registry) checkListed(addr string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return ErrClosed
	}
	if !r.st.has(addr) {
		return fmt.Errorf("file: %q is not a broker address in %s", addr, r.cfg.Path)
	}
	return nil
}

// PublishBindings returns registry.ErrStatic: the bindings come only from
// the file.
func (r *Registry) PublishBindings(_ context.Context, group string, _ []registry.Binding) error {
	r.mu.Lock()
	closed := r.closed
	r.mu.Unlock()
	if closed {
		return ErrClosed
	}
	return fmt.Errorf("file: publish bindings of %q: %w", group, registry.ErrStatic)
}

// Close stops reloading and closes every Watch channel. It is idempotent.
func (r *Registry) Close() error {
	r.mu.Lock()
	if !r.closed {
		r.closed = true
		close(r.done)
		for w := range r.watches {
			w.stop()
			r.endLocked(w)
		}
	}
	r.mu.Unlock()
	r.wg.Wait()
	return nil
}
