package fanout

import "sync"

// queue is one destination's bounded packet queue. When it is full the
// oldest packet is dropped: a destination that falls behind gets the
// freshest video rather than stalling the input or pinning old buffers.
// Producers (input readers) and the one consumer (the destination's sender)
// take the lock once per batch, not per packet.
type queue struct {
	mu     sync.Mutex
	ring   []*packet
	head   int // index of the oldest packet
	n      int
	closed bool
	drops  uint64
}

func newQueue(size int) *queue { return &queue{ring: make([]*packet, size)} }

// push queues pkts, taking a reference on each. It reports whether the
// queue was empty before, i.e. whether the consumer may be asleep.
func (q *queue) push(pkts []*packet) (wasEmpty bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed {
		return false
	}
	wasEmpty = q.n == 0
	size := len(q.ring)
	for _, p := range pkts {
		p.refs.Add(1)
		if q.n == size {
			old := q.ring[q.head]
			q.ring[q.head] = nil
			q.head = (q.head + 1) % size
			q.n--
			q.drops++
			old.release()
		}
		q.ring[(q.head+q.n)%size] = p
		q.n++
	}
	return wasEmpty
}

// pop moves up to len(out) packets into out, oldest first; the caller owns
// their references.
func (q *queue) pop(out []*packet) int {
	q.mu.Lock()
	defer q.mu.Unlock()
	k := min(len(out), q.n)
	size := len(q.ring)
	for i := range k {
		out[i] = q.ring[q.head]
		q.ring[q.head] = nil
		q.head = (q.head + 1) % size
	}
	q.n -= k
	return k
}

// unpop puts back, at the head, packets popped but not sent; they are
// older than anything queued, so when there is no room they are the ones
// dropped.
func (q *queue) unpop(pkts []*packet) {
	q.mu.Lock()
	defer q.mu.Unlock()
	size := len(q.ring)
	keep := len(pkts)
	if !q.closed {
		keep = min(keep, size-q.n)
	} else {
		keep = 0
	}
	drop := len(pkts) - keep
	for _, p := range pkts[:drop] {
		p.release()
	}
	if !q.closed {
		q.drops += uint64(drop)
	}
	for i := len(pkts) - 1; i >= drop; i-- {
		q.head = (q.head - 1 + size) % size
		q.ring[q.head] = pkts[i]
		q.n++
	}
}

// close releases everything queued and makes later pushes no-ops.
func (q *queue) close() {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.closed = true
	for q.n > 0 {
		q.ring[q.head].release()
		q.ring[q.head] = nil
		q.head = (q.head + 1) % len(q.ring)
		q.n--
	}
}

// state returns the queue length and the drops so far.
func (q *queue) state() (queued int, drops uint64) {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.n, q.drops
}
