package tree

import (
	"slices"
	"sort"
)

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
	Path     float64 // RTT along the tree from the origin, ms (displace.go)
	// Worst is set on a full parent offered for displacement: the RTT of
	// its farthest child to it, ms (displace.go).
	Worst float64
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
// child's slot as free (Clients is that count). With SetNearby(n), up to
// n members near the requester by address are added after the k best
// (nearby.go).
func (f *Forest) Candidates(stream, requester string, exclude []string, k int) []Candidate {
	t := f.streams[stream]
	var self *member
	if t != nil {
		self = t.members[requester]
	}

	var out []Candidate
	if requester != Origin && !slices.Contains(exclude, Origin) {
		n := f.occupied(stream, Origin, requester)
		if self != nil && self.parent == Origin {
			n--
		}
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
	home := f.home(stream, requester, self)
	// One pass over the members keeps the best k so far (all if k <= 0):
	// a member that cannot beat the k-th is dropped after the O(1) tests,
	// so the walks up the tree (attached, below the requester, below a
	// quarantined node) are made for a handful of members, not for all.
	var relays []Candidate
	var homeCand *Candidate
	own, _ := f.promised[Member{stream, requester}]
	selfParent := ""
	if self != nil {
		selfParent = self.parent
	}
	// One member's slots look different to the requester than to others:
	// its home, the parent it holds a promise under, its current parent.
	// They are ranked here, the rest come from the cache (topcache.go).
	specials := []string{home, own.parent, selfParent}
	fast := false
	if k > 0 {
		relays, fast = f.fastCandidates(t, stream, requester, self, exclude, k, specials...)
	}
	if fast {
		for i, id := range specials {
			m := t.members[id]
			if m == nil || slices.Contains(specials[:i], id) {
				continue
			}
			cand, ok := f.candidateOf(t, stream, m, requester, self, own.parent, exclude, nil)
			switch {
			case !ok:
			case id == home:
				homeCand = &cand
			default:
				relays = insertRanked(relays, cand, k)
			}
		}
	} else {
		// One pass over the members keeps the best k so far (all if
		// k <= 0): a member that cannot beat the k-th is dropped after the
		// O(1) tests, so the walks up the tree (attached, below the
		// requester, below a quarantined node) are made for a handful of
		// members, not for all.
		relays = nil
		prune := func(c *Candidate) bool {
			return k > 0 && len(relays) >= k && c.ID != home && !better(c, &relays[k-1])
		}
		for _, m := range t.list {
			if k > 0 && len(relays) >= k && m.level > relays[k-1].Level && m.id != home {
				continue // deeper than the k best so far
			}
			cand, ok := f.candidateOf(t, stream, m, requester, self, own.parent, exclude, prune)
			switch {
			case !ok:
			case m.id == home && k > 0:
				homeCand = &cand
			default:
				relays = insertRanked(relays, cand, k)
			}
		}
	}
	if homeCand != nil {
		// The requester's home (its current parent, or the one a handover
		// or a gradual rebuild keeps a slot under for it) is always
		// offered: going back there keeps the tree's shape. It takes its
		// rank among the best k, or comes after them.
		if len(relays) < k || better(homeCand, &relays[len(relays)-1]) {
			relays = insertRanked(relays, *homeCand, k)
		} else {
			relays = append(relays, *homeCand)
		}
	}
	if f.nearby > 0 {
		// Far parents ranked first are of little use to a relay that
		// measures RTT: add some near it (nearby.go).
		relays = append(relays, f.nearCandidates(t, stream, requester, self, own.parent, exclude, relays, home)...)
	}
	relays = append(relays, f.displaceCandidates(t, stream, requester, self, exclude, out, relays)...)
	for i := range relays {
		relays[i].Path = t.path(relays[i].ID)
	}
	if passive && len(relays) > 0 {
		return relays
	}
	return append(out, relays...)
}

// candidateOf returns m as a candidate for requester, false if it is not
// one (itself, unwilling, leaving, full as the requester counts, excluded,
// detached, below the requester or below a quarantined node). prune, if
// set, may drop it once its rank is known, before the walks up the tree.
func (f *Forest) candidateOf(t *tree, stream string, m *member, requester string, self *member, ownPromise string,
	exclude []string, prune func(*Candidate) bool) (Candidate, bool) {
	id, n := m.id, m.node
	if id == requester || !n.Willing || m.leaving {
		return Candidate{}, false
	}
	c := f.taken(stream, m, requester, ownPromise)
	if self != nil && self.parent == id {
		c--
	}
	if c >= n.Capacity {
		return Candidate{}, false
	}
	cand := Candidate{ID: id, Level: m.level, Clients: c, Capacity: n.Capacity}
	if prune != nil && prune(&cand) {
		return Candidate{}, false
	}
	if slices.Contains(exclude, id) || !t.attached(id) || self != nil && t.descends(id, requester) ||
		f.quarantinedAbove(t, id) != "" {
		return Candidate{}, false
	}
	cand.RTSP, cand.Probe, cand.Cores, cand.CPU = n.RTSP, n.Probe, n.Cores, n.CPU
	return cand, true
}

// better is the candidates' order: lower level first, then least loaded
// (clients/capacity), then by id.
func better(a, b *Candidate) bool {
	if a.Level != b.Level {
		return a.Level < b.Level
	}
	// a.Clients/a.Capacity < b.Clients/b.Capacity, capacities > 0.
	if l, r := a.Clients*b.Capacity, b.Clients*a.Capacity; l != r {
		return l < r
	}
	return a.ID < b.ID
}

// insertRanked inserts c into rs (ranked by better) and keeps at most k
// (k <= 0: all).
func insertRanked(rs []Candidate, c Candidate, k int) []Candidate {
	i := sort.Search(len(rs), func(i int) bool { return better(&c, &rs[i]) })
	if k > 0 && i >= k {
		return rs
	}
	rs = append(rs, Candidate{})
	copy(rs[i+1:], rs[i:])
	rs[i] = c
	if k > 0 && len(rs) > k {
		rs = rs[:k]
	}
	return rs
}

// taken is occupied for a member's node, without a map lookup on the
// common path (nothing leaving, reserved, kept or promised): ownPromise is
// the parent joiner's promise is under ("" if none).
func (f *Forest) taken(stream string, m *member, joiner, ownPromise string) int {
	n := m.node.children + m.node.promised
	if ownPromise == m.id {
		n--
	}
	if f.nleaving > 0 {
		n -= f.leavingKids(m.id, joiner)
	}
	if len(f.reserved) > 0 || len(f.expected) > 0 {
		n += f.held(stream, m.id, joiner)
	}
	return n
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
