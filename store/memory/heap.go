package memory

import (
	"container/heap"
	"time"
)

// heapItem is one (time, message) entry of a due or check heap. Entries are
// never removed in place: an entry whose time no longer matches the
// message's state is stale and is dropped when it reaches the top.
type heapItem struct {
	at    time.Time
	topic string
	id    string
}

// timeHeap is a min-heap of heapItems by time, then topic and id.
type timeHeap []heapItem

func (h timeHeap) Len() int { return len(h) }

func (h timeHeap) Less(i, j int) bool {
	a, b := h[i], h[j]
	if !a.at.Equal(b.at) {
		return a.at.Before(b.at)
	}
	if a.topic != b.topic {
		return a.topic < b.topic
	}
	return a.id < b.id
}

func (h timeHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }

func (h *timeHeap) Push(x any) { *h = append(*h, x.(heapItem)) }

func (h *timeHeap) Pop() any {
	old := *h
	it := old[len(old)-1]
	*h = old[:len(old)-1]
	return it
}

func (h *timeHeap) push(it heapItem) { heap.Push(h, it) }
