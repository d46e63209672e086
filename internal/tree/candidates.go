package tree

import "sort"

// Candidate is a possible parent offered to a requester.
type Candidate struct {
	ID       string // node id, or Origin
	RTSP     string // empty for the origin: the caller knows its address
	Probe    string
	Level    int
	Clients  int // children now (the requester's own edge not counted)
	Capacity int
	Cores    int
	CPU      float64
}

// Candidates returns the possible parents for requester on stream: the
// origin first while it has a free slot, then at most k (k <= 0: no
// limit) willing attached members with free capacity, lowest level first,
// then least loaded (clients/capacity), then by id. Never the requester,
// its descendants, or anything in exclude. A slot the requester itself
// occupies counts as free, so a relay re-resolving may be offered its
// current parent.
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
	// clients counts node's children without the requester's own edge.
	clients := func(id string, n int) int {
		if self != nil && self.parent == id {
			return n - 1
		}
		return n
	}

	var out []Candidate
	if !skip[Origin] {
		n := 0
		if t != nil {
			n = clients(Origin, len(t.origin))
		}
		if n < f.originCap {
			out = append(out, Candidate{ID: Origin, Level: 0, Clients: n, Capacity: f.originCap})
		}
	}
	if t == nil {
		return out
	}
	var relays []Candidate
	for id, m := range t.members {
		n := f.nodes[id]
		if skip[id] || n == nil || !n.Willing {
			continue
		}
		c := clients(id, n.children)
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
		relays = relays[:k]
	}
	return append(out, relays...)
}
