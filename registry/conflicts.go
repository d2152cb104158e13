package registry

// ConflictIndex answers Conflict for a set of bindings that grows, in time
// near-linear in what is added: Conflict looks at the whole set for every
// new binding, which made one BIND of 20,000 bindings take seconds (issue
// #16). Its answers are Conflict's exactly, error text included: it finds
// the same first conflicting binding, by position in the set.
//
// It keeps the bindings it is given (their strings included): it is meant
// to live as long as one check of a set. It is not safe for concurrent use.
type ConflictIndex struct {
	all   []Binding
	same  map[Binding]struct{}      // every binding, version cleared (Same)
	lanes map[laneKey]*conflictLane // per (topic, group)
}

// laneKey is one group's bindings on one topic: the only ones that can
// conflict with each other.
type laneKey struct{ topic, group string }

// conflictLane indexes one (topic, group)'s bindings by kind. Positions are
// indexes in ConflictIndex.all; -1 is none.
type conflictLane struct {
	first   int            // the first binding at all
	fanout  int            // the first fanout
	regx    []int          // every regx, in order
	regxMs  []Matcher      // their compiled forms
	directs map[string]int // messageType → the first direct of it
	others  []int          // every binding neither regx nor fanout, in order (a new regx is matched against them)
}

// NewConflictIndex indexes existing (which may hold other groups' bindings:
// they count for Same only, as in Conflict).
func NewConflictIndex(existing []Binding) *ConflictIndex {
	x := &ConflictIndex{all: make([]Binding, 0, len(existing)), same: make(map[Binding]struct{}, len(existing)),
		lanes: make(map[laneKey]*conflictLane)}
	for _, e := range existing {
		x.Add(e)
	}
	return x
}

// Len is the number of bindings indexed.
func (x *ConflictIndex) Len() int { return len(x.all) }

// Bindings returns the set: the existing bindings, then those added, in
// order. The caller must not modify it.
func (x *ConflictIndex) Bindings() []Binding { return x.all }

// Add adds b to the set (whether or not Conflict would accept it).
func (x *ConflictIndex) Add(b Binding) {
	pos := len(x.all)
	x.all = append(x.all, b)
	sk := b
	sk.Version = ""
	x.same[sk] = struct{}{}
	k := laneKey{b.Topic, b.GroupID}
	l := x.lanes[k]
	if l == nil {
		l = &conflictLane{first: pos, fanout: -1, directs: make(map[string]int)}
		x.lanes[k] = l
	}
	switch b.BindType {
	case Fanout:
		if l.fanout < 0 {
			l.fanout = pos
		}
	case Regx:
		l.regx = append(l.regx, pos)
		l.regxMs = append(l.regxMs, Compile(b))
	default:
		if b.BindType == Direct {
			if _, ok := l.directs[b.MessageType]; !ok {
				l.directs[b.MessageType] = pos
			}
		}
		l.others = append(l.others, pos)
	}
}

// Conflict is Conflict(set, b) for the set indexed so far.
func (x *ConflictIndex) Conflict(b Binding) (dup bool, err error) {
	k := b
	k.Version = ""
	if _, ok := x.same[k]; ok {
		return true, nil
	}
	l := x.lanes[laneKey{b.Topic, b.GroupID}]
	if l == nil {
		return false, nil
	}
	// The first binding of the lane that conflicts with b, as Conflict's
	// scan in order finds it.
	at := -1
	earlier := func(pos int) {
		if pos >= 0 && (at < 0 || pos < at) {
			at = pos
		}
	}
	earlier(l.fanout)
	nb := Compile(b)
	switch b.BindType {
	case Fanout:
		earlier(l.first) // every binding conflicts with a fanout
	case Regx:
		if len(l.regx) > 0 {
			earlier(l.regx[0])
		}
		for _, pos := range l.others {
			if at >= 0 && pos > at {
				break
			}
			if e := x.all[pos]; nb.Matches(e.Topic, e.MessageType) {
				earlier(pos)
				break
			}
		}
	default:
		if b.BindType == Direct {
			if pos, ok := l.directs[b.MessageType]; ok {
				earlier(pos)
			}
		}
		for i, pos := range l.regx {
			if at >= 0 && pos > at {
				break
			}
			if l.regxMs[i].Matches(b.Topic, b.MessageType) {
				earlier(pos)
				break
			}
		}
	}
	if at < 0 {
		return false, nil
	}
	return false, conflictWith(Compile(x.all[at]), nb)
}
