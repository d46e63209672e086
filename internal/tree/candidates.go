package tree

import "sort"

// Candidate is a possible parent offered to a requester.
type Candidate struct {
	ID       string // node id, or Origin
	RTSP     string // empty for the origin: the caller knows its address
	Probe    string
	Level    int
	Clients  int // slots taken: children and reservations, not the requester's own nor a leaving child's
	Capacity int
	Cores    int
	CPU      float64
}

// Candidates returns the possible parents for requester on stream: the
// origin first while it has a free slot, then at most k (k <= 0: no
// limit) willing attached members with free capacity, lowest level first,
// then least loaded (clients/capacity), then by id. Never the requester,
// its descendants, a leaving member, a quarantined one or one below it
// (its stream comes through it), or anything in exclude. A slot the
// requester itself occupies or has reserved counts as free, so a relay
// re-resolving may be offered its current parent (or the one a handover
// promised it); slots reserved for others count as taken, a leaving
// child's slot as free (Clients is that count).
func (f *Forest) Candidates(stream, requester string, exclude []string, k int) []Candidate {
	skip := make(map[string]bool, len(exclude)+1)
	for _, id := range exclude {
		skip[id] = true
	}
	skip[requester] = true
	t := f.streams[stream]
	var self *member
	if t != nil {
		self = t.members[requester]
	}
	// clients counts node's taken slots without the requester's own.
	clients := func(id string) int {
		n := f.occupied(stream, id, requester)
		if self != nil && self.parent == id {
			return n - 1
		}
		return n
	}

	var out []Candidate
	if !skip[Origin] {
		n := clients(Origin)
		if n < f.originCap {
			out = append(out, Candidate{ID: Origin, Level: 0, Clients: n, Capacity: f.originCap})
		}
	}
	if t == nil {
		return out
	}
	// A passive requester (it relays to no one) is offered the origin
	// only when no relay has room: the origin's few slots are worth most
	// to relays, which pass them on. Passive hosts holding them would
	// leave a relay whose parent died nowhere to go.
	passive := f.nodes[requester] != nil && !f.nodes[requester].Willing
	var relays []Candidate
	for id, m := range t.members {
		n := f.nodes[id]
		if skip[id] || n == nil || !n.Willing || m.leaving || f.quarantinedAbove(t, id) != "" {
			continue
		}
		c := clients(id)
		if c >= n.Capacity || !t.attached(id) {
			continue
		}
		if self != nil && t.descends(id, requester) {
			continue
		}
		relays = append(relays, Candidate{
			ID: id, RTSP: n.RTSP, Probe: n.Probe, Level: m.level,
			Clients: c, Capacity: n.Capacity, Cores: n.Cores, CPU: n.CPU,
		})
	}
	sort.Slice(relays, func(i, j int) bool {
		a, b := relays[i], relays[j]
		if a.Level != b.Level {
			return a.Level < b.Level
		}
		// a.Clients/a.Capacity < b.Clients/b.Capacity, capacities > 0.
		if l, r := a.Clients*b.Capacity, b.Clients*a.Capacity; l != r {
			return l < r
		}
		return a.ID < b.ID
	})
	if k > 0 && len(relays) > k {
		// The requester's home (its current parent, or the one a handover
		// or a gradual rebuild keeps a slot under for it) is always
		// offered: going back there keeps the tree's shape.
		home := f.home(stream, requester, self)
		kept := relays[:k]
		for _, c := range relays[k:] {
			if c.ID == home {
				kept = append(kept, c)
			}
		}
		relays = kept
	}
	if passive && len(relays) > 0 {
		return relays
	}
	return append(out, relays...)
}

// home is the parent requester belongs under: the slot kept for it by a
// handover or a gradual rebuild, else its current parent ("" if none).
func (f *Forest) home(stream, requester string, self *member) string {
	if r, ok := f.reserved[Member{stream, requester}]; ok {
		return r.parent
	}
	if e, ok := f.expected[Member{stream, requester}]; ok {
		return e.parent
	}
	if self != nil {
		return self.parent
	}
	return ""
}
