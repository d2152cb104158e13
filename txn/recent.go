package txn

// key names one message.
type key struct{ topic, id string }

// outcome is a remembered decision: the action and the message's
// publishing group (whom ResolveAs lets see it).
type outcome struct {
	action Action
	group  string
}

// recent remembers the outcomes of the last max decisions, oldest evicted
// first. It is not safe for concurrent use: the Coordinator guards it with
// its mu.
type recent struct {
	max  int
	out  map[key]outcome
	ring []key // insertion order; once full, ring[next] is the oldest
	next int
}

func newRecent(max int) *recent {
	return &recent{max: max, out: make(map[key]outcome)}
}

func (r *recent) get(k key) (outcome, bool) {
	a, ok := r.out[k]
	return a, ok
}

// add records the outcome of k, evicting the oldest outcome when full.
func (r *recent) add(k key, a outcome) {
	if _, ok := r.out[k]; ok {
		r.out[k] = a
		return
	}
	if len(r.ring) < r.max {
		r.ring = append(r.ring, k)
	} else {
		delete(r.out, r.ring[r.next])
		r.ring[r.next] = k
		r.next = (r.next + 1) % r.max
	}
	r.out[k] = a
}
