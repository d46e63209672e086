package tree

import "time"

// Promises keep relays that ask for candidates at the same moment from
// being sent to the same slot. Between a requester's candidates and its
// join (a probe round, well under a second), the slot it will most likely
// take is counted as taken for everyone else, like a handover's
// reservation: the next requester is offered the parent with one slot
// less, so equally good parents are handed out in turn and a parent with
// one free slot is offered to one requester at a time. A promise ends
// when its requester joins (anywhere), asks again, leaves the tree, or at
// its deadline (ExpirePromises).

// promise is one slot offered to a requester.
type promise struct {
	parent string
	until  time.Time
}

// promises is the Forest's book of promises. The count under a relay
// parent is kept on its Node (promised), the origin's here, per stream.
type promises struct {
	promised map[Member]promise // by requester
	under    map[string]int     // promises under the origin, by stream
	queue    []queued           // in order of deadline, for ExpirePromises
}

type queued struct {
	m     Member
	until time.Time
}

func newPromises() promises {
	return promises{promised: map[Member]promise{}, under: map[string]int{}}
}

// Promise counts a slot under parent (a node id or Origin) as taken, for
// everyone but node, on stream until the deadline (see promises). It
// replaces node's earlier promise on stream.
func (f *Forest) Promise(stream, node, parent string, until time.Time) {
	f.unpromise(Member{stream, node})
	f.promised[Member{stream, node}] = promise{parent: parent, until: until}
	if parent == Origin {
		f.under[stream]++
	} else if n := f.nodes[parent]; n != nil {
		n.promised++
		f.refreshNode(n)
	}
	// Deadlines are now plus a constant, so appending keeps the order.
	f.queue = append(f.queue, queued{Member{stream, node}, until})
}

// Promised returns the parent a promise holds a slot under for node on
// stream.
func (f *Forest) Promised(stream, node string) (string, bool) {
	p, ok := f.promised[Member{stream, node}]
	return p.parent, ok
}

// ExpirePromises ends the promises whose deadline is not after now.
func (f *Forest) ExpirePromises(now time.Time) {
	i := 0
	for ; i < len(f.queue) && !f.queue[i].until.After(now); i++ {
		q := f.queue[i]
		if p, ok := f.promised[q.m]; ok && p.until.Equal(q.until) {
			f.unpromise(q.m)
		}
	}
	f.queue = f.queue[i:]
	if len(f.queue) == 0 {
		f.queue = nil // let the array go
	}
}

// unpromise ends m's promise, if any.
func (f *Forest) unpromise(m Member) {
	p, ok := f.promised[m]
	if !ok {
		return
	}
	delete(f.promised, m)
	if p.parent != Origin {
		if n := f.nodes[p.parent]; n != nil {
			n.promised--
			f.refreshNode(n)
		}
	} else if f.under[m.Stream]--; f.under[m.Stream] <= 0 {
		delete(f.under, m.Stream)
	}
}

// promisedUnder returns the slots promised under parent on stream to
// nodes other than joiner.
func (f *Forest) promisedUnder(stream, parent, joiner string) int {
	if len(f.promised) == 0 {
		return 0
	}
	n := 0
	if parent == Origin {
		n = f.under[stream]
	} else if pn := f.nodes[parent]; pn != nil {
		n = pn.promised
	}
	if p, ok := f.promised[Member{stream, joiner}]; ok && p.parent == parent {
		n--
	}
	return n
}

// dropPromises ends the promises of id and those under id on stream, or
// on every stream if stream is "" (id is leaving the tree, or failed).
func (f *Forest) dropPromises(stream, id string) {
	if len(f.promised) == 0 {
		return
	}
	for m, p := range f.promised {
		if (stream == "" || m.Stream == stream) && (m.Node == id || p.parent == id) {
			f.unpromise(m)
		}
	}
}
