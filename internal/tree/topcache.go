package tree

import "sort"

// The best parents of a tree, kept between requests. Candidates ranks
// every member by level, then load, then id; most of a large tree is
// either full (its inner levels) or far down the ranking, and a flash
// crowd asks hundreds of times a second. So each tree keeps its topSize
// best offerable members (the ranking any requester sees, before what is
// particular to it: itself, its exclude list, its descendants, its own
// slots) and Candidates reads them instead of walking every member.
//
// The cache holds the true best len(top) members at all times it is
// valid: a change to one known member (a parent's load after a join or a
// promise, a new leaf, a node's capacity or willingness) re-ranks that
// member alone (refresh); a change that moves many (a subtree detached
// or moved, a quarantine, a handover) invalidates it, and the next
// request rebuilds it in one pass. When what is particular to a requester
// leaves fewer than k of the cached members, or a handover, a gradual
// rebuild or a leaving member is under way, Candidates walks every member
// as before; both give the same answer.

const (
	topSize = 64 // members kept
	topLow  = 16 // fewer than this (and not every one there is): rebuild
)

// rankLess is the candidates' order on members, without what is
// particular to a requester.
func rankLess(a, b *member) bool {
	if a.level != b.level {
		return a.level < b.level
	}
	ac, bc := a.node.children+a.node.promised, b.node.children+b.node.promised
	if l, r := ac*b.node.Capacity, bc*a.node.Capacity; l != r {
		return l < r
	}
	return a.id < b.id
}

// offerable reports whether m may be offered to someone: willing, not
// leaving, a slot free (children and promises), attached, and not below a
// quarantined node.
func (f *Forest) offerable(t *tree, m *member) bool {
	n := m.node
	return n.Willing && !m.leaving && n.children+n.promised < n.Capacity && t.attached(m.id) &&
		f.quarantinedAbove(t, m.id) == ""
}

// invalidate drops t's cache; the next request rebuilds it.
func (t *tree) invalidate() {
	for _, m := range t.top {
		m.inTop = false
	}
	t.top, t.topValid, t.topAll = t.top[:0], false, false
}

// invalidateAll drops every tree's cache.
func (f *Forest) invalidateAll() {
	for _, t := range f.streams {
		t.invalidate()
	}
}

// rebuildTop fills t's cache from every member. The walks up the tree
// (attached, below a quarantined node) are made only for a member that
// would enter the cache: in a tree of thousands most members have a free
// slot (the leaves) and rank below the cache's last, and those walks were
// most of a flash crowd's cost.
func (f *Forest) rebuildTop(t *tree) {
	t.invalidate()
	t.topAll = true // insertTop clears it when it leaves one out
	for _, m := range t.list {
		n := m.node
		if !n.Willing || m.leaving || n.children+n.promised >= n.Capacity {
			continue
		}
		if len(t.top) == topSize && !rankLess(m, t.top[topSize-1]) {
			t.topAll = false // perhaps offerable, and left out either way
			continue
		}
		if !t.attached(m.id) || f.quarantinedAbove(t, m.id) != "" {
			continue
		}
		t.insertTop(m)
	}
	t.topValid = true
}

// insertTop puts m at its rank and keeps at most topSize.
func (t *tree) insertTop(m *member) {
	i := sort.Search(len(t.top), func(i int) bool { return rankLess(m, t.top[i]) })
	if i >= topSize {
		t.topAll = false // m is offerable, and left out
		return
	}
	t.top = append(t.top, nil)
	copy(t.top[i+1:], t.top[i:])
	t.top[i] = m
	m.inTop = true
	if len(t.top) > topSize {
		t.top[topSize].inTop = false
		t.top[topSize] = nil
		t.top = t.top[:topSize]
		t.topAll = false
	}
}

// refresh re-ranks m in t's cache after a change to m alone.
func (f *Forest) refresh(t *tree, m *member) {
	if !t.topValid {
		return
	}
	if m.inTop {
		for i, x := range t.top {
			if x == m {
				t.top = append(t.top[:i], t.top[i+1:]...)
				break
			}
		}
		m.inTop = false
	}
	// Outside the cache m may come in only ahead of its last member,
	// unless the cache holds every offerable member.
	if f.offerable(t, m) && (t.topAll || len(t.top) > 0 && rankLess(m, t.top[len(t.top)-1])) {
		t.insertTop(m)
	}
	if len(t.top) < topLow && !t.topAll {
		t.invalidate()
	}
}

// refreshNode re-ranks node n in every tree it is a member of (its load,
// capacity or willingness changed).
func (f *Forest) refreshNode(n *Node) {
	if n == nil {
		return
	}
	for _, t := range f.streams {
		if m := t.members[n.ID]; m != nil {
			f.refresh(t, m)
		}
	}
}

// fastCandidates returns the best k relays for requester from t's cache,
// the members in skip left out (the caller ranks those itself), and
// whether that is the whole answer; false: walk every member instead.
func (f *Forest) fastCandidates(t *tree, stream, requester string, self *member, exclude []string, k int,
	skip ...string) ([]Candidate, bool) {
	if f.nleaving > 0 || len(f.reserved) > 0 || len(f.expected) > 0 {
		return nil, false // slots counted differently: see occupied
	}
	if !t.topValid {
		f.rebuildTop(t)
	}
	var out []Candidate
	for _, m := range t.top {
		if len(out) == k {
			return out, true
		}
		id := m.id
		if id == requester || contains(skip, id) || contains(exclude, id) || self != nil && t.descends(id, requester) {
			continue
		}
		n := m.node
		out = append(out, Candidate{ID: id, RTSP: n.RTSP, Probe: n.Probe, Level: m.level,
			Clients: n.children + n.promised, Capacity: n.Capacity, Cores: n.Cores, CPU: n.CPU})
	}
	return out, len(out) == k || t.topAll
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s && s != "" {
			return true
		}
	}
	return false
}
