package natsproto

import (
	"context"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/kitenats/kitenats/kqerr"
	"github.com/kitenats/kitenats/semantics"
)

// Config configures the adapter's $KQ.API and $KQ.ADMIN serving. Zero
// fields take the defaults given; for the limits a negative value is no
// bound.
type Config struct {
	// APIWorkers is how many calls are served at once (apiWorkers).
	// Default 4. One group's calls take at most half of them, and half of
	// the CPUs (GOMAXPROCS), at least one: other groups always find a
	// worker free, and a CPU to run it.
	APIWorkers int
	// APIQueue bounds the calls of one group waiting for a worker
	// (apiQueuePerGroup); one more is refused at once with 429. Default 64.
	APIQueue int
	// MaxBindingsPerRequest bounds the bindings of one BIND
	// (maxBindingsPerRequest); more is 413. Default 10,000.
	MaxBindingsPerRequest int
	// MaxRequestBytes bounds the body of one call (maxRequestBytes); more
	// is 413. Default 1 MiB.
	MaxRequestBytes int
}

// The defaults of Config.
const (
	DefaultAPIWorkers            = 4
	DefaultAPIQueue              = 64
	DefaultMaxBindingsPerRequest = 10000
	DefaultMaxRequestBytes       = 1 << 20
)

func (c *Config) setDefaults() {
	if c.APIWorkers <= 0 {
		c.APIWorkers = DefaultAPIWorkers
	}
	if c.APIQueue <= 0 {
		c.APIQueue = DefaultAPIQueue
	}
	if c.MaxBindingsPerRequest == 0 {
		c.MaxBindingsPerRequest = DefaultMaxBindingsPerRequest
	}
	if c.MaxRequestBytes == 0 {
		c.MaxRequestBytes = DefaultMaxRequestBytes
	}
}

// adminLane is the lane of the admin calls ($KQ.ADMIN, and the legacy ones
// under $KQ.API): no group's name, which is never empty, is the empty
// string.
const adminLane = ""

// apiPool serves the API calls off the subscriptions' goroutines, so that
// a slow call (a large BIND, a registry write) holds up neither the
// subscription nor other groups' calls. Calls queue per group (a lane);
// workers take one call of each lane with calls waiting in turn
// (round-robin), and one lane's calls occupy at most maxBusy workers. The
// pool's goroutines are started by newAPIPool and ended by stop.
type apiPool struct {
	s        *Server
	maxQueue int
	maxBusy  int

	mu          sync.Mutex
	cond        *sync.Cond // signalled when ready grows, and at stop
	lanes       map[string]*apiLane
	ready       []*apiLane // lanes with calls waiting and a worker to spare, in turn
	outstanding map[*apiCall]struct{}
	stopped     bool
	wg          sync.WaitGroup
}

// apiLane is one group's calls.
type apiLane struct {
	key     string
	queue   []*apiCall
	busy    int  // calls being served
	inReady bool // in apiPool.ready
}

// apiCall is one call waiting or being served.
type apiCall struct {
	msg    *Msg
	prefix string
	route  func(context.Context, string, []byte) ([]byte, error)
	at     time.Time     // when it was queued: its deadline runs from then
	done   chan struct{} // closed once answered (barrier)
}

func newAPIPool(s *Server, cfg Config) *apiPool {
	p := &apiPool{
		s: s, maxQueue: cfg.APIQueue, maxBusy: laneWorkers(cfg.APIWorkers, runtime.GOMAXPROCS(0)),
		lanes: make(map[string]*apiLane), outstanding: make(map[*apiCall]struct{}),
	}
	p.cond = sync.NewCond(&p.mu)
	p.wg.Add(cfg.APIWorkers)
	for range cfg.APIWorkers {
		go p.work()
	}
	return p
}

// laneWorkers is how many of workers one group's calls may occupy on cpus
// CPUs: half of either, at least one.
func laneWorkers(workers, cpus int) int { return max(1, min(workers/2, cpus/2)) }

// laneOf is the lane of a call on subject: the group token of
// $KQ.API.<verb>.<G>, or the admin lane.
func laneOf(subject, prefix string) string {
	if prefix != APIPrefix {
		return adminLane
	}
	call := strings.TrimPrefix(subject, prefix)
	if legacyAdmin[call] {
		return adminLane
	}
	return call[strings.LastIndexByte(call, '.')+1:]
}

// enqueue queues a call, or refuses it at once: 429 when its group's lane
// is full, 503 once the pool stopped.
func (p *apiPool) enqueue(msg *Msg, prefix string, route func(context.Context, string, []byte) ([]byte, error)) {
	key := laneOf(msg.Subject, prefix)
	p.mu.Lock()
	if p.stopped {
		p.mu.Unlock()
		p.s.refuseCall(msg, kqerr.New(kqerr.Unavailable, nil, "broker shutting down"))
		return
	}
	l := p.lanes[key]
	if l == nil {
		l = &apiLane{key: key}
		p.lanes[key] = l
	}
	if len(l.queue) >= p.maxQueue {
		p.mu.Unlock()
		p.s.b.CountLimit(semantics.LimitAPIQueue)
		p.s.refuseCall(msg, kqerr.New(kqerr.TooMany, nil,
			"%d calls of this group wait already, the limit (apiQueuePerGroup); try again later", p.maxQueue))
		return
	}
	c := &apiCall{msg: msg, prefix: prefix, route: route, at: time.Now(), done: make(chan struct{})}
	l.queue = append(l.queue, c)
	p.outstanding[c] = struct{}{}
	if !l.inReady && l.busy < p.maxBusy {
		l.inReady = true
		p.ready = append(p.ready, l)
		p.cond.Signal()
	}
	p.mu.Unlock()
}

// work serves calls until stop.
func (p *apiPool) work() {
	defer p.wg.Done()
	p.mu.Lock()
	defer p.mu.Unlock()
	for {
		for !p.stopped && len(p.ready) == 0 {
			p.cond.Wait()
		}
		if p.stopped {
			return
		}
		l := p.ready[0]
		p.ready[0] = nil
		p.ready = p.ready[1:]
		c := l.queue[0]
		l.queue[0] = nil
		l.queue = l.queue[1:]
		l.busy++
		l.inReady = false
		if len(l.queue) > 0 && l.busy < p.maxBusy {
			l.inReady = true
			p.ready = append(p.ready, l) // its next call, after the other lanes'
		}
		p.mu.Unlock()

		p.s.serveCall(c.msg, c.prefix, c.route, c.at)

		p.mu.Lock()
		l.busy--
		if len(l.queue) > 0 && !l.inReady {
			l.inReady = true
			p.ready = append(p.ready, l)
			p.cond.Signal()
		}
		if len(l.queue) == 0 && l.busy == 0 && p.lanes[l.key] == l {
			delete(p.lanes, l.key)
		}
		delete(p.outstanding, c)
		close(c.done)
	}
}

// barrier returns once every call queued before it was called has been
// answered, or when ctx ends.
func (p *apiPool) barrier(ctx context.Context) error {
	p.mu.Lock()
	wait := make([]chan struct{}, 0, len(p.outstanding))
	for c := range p.outstanding {
		wait = append(wait, c.done)
	}
	p.mu.Unlock()
	for _, done := range wait {
		select {
		case <-done:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

// stop ends the workers once the calls being served are answered; the
// calls still waiting get 503.
func (p *apiPool) stop() {
	p.mu.Lock()
	if p.stopped {
		p.mu.Unlock()
		return
	}
	p.stopped = true
	var left []*apiCall
	for _, l := range p.lanes {
		left = append(left, l.queue...)
		l.queue = nil
	}
	p.ready = nil
	p.cond.Broadcast()
	p.mu.Unlock()
	p.wg.Wait()
	p.mu.Lock()
	for _, c := range left {
		delete(p.outstanding, c)
	}
	p.mu.Unlock()
	for _, c := range left {
		p.s.refuseCall(c.msg, kqerr.New(kqerr.Unavailable, nil, "broker shutting down"))
		close(c.done)
	}
}
