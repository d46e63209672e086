package tree

import (
	"fmt"
	"sort"
	"time"
)

// reservation is a slot under parent promised to a moving child.
type reservation struct {
	parent string // node id or Origin
	by     string // the leaving member whose handover made it
}

// Move is one child's new parent, as planned by Handover.
type Move struct {
	Stream string
	Node   string // a child of the leaving member
	Target string // its new parent (a node id or Origin); "" when none has room
	RTSP   string // the target's RTSP address; "" for the origin or no target
	Level  int    // the child's level once under Target (0 with no target)
}

// Handover marks node as leaving stream and plans a new parent for each
// of its children, whose subtrees move with them. A target is chosen like
// a candidate (Candidates): the origin while it has a free slot, else the
// willing, non-leaving member with a free slot at the lowest level, then
// the least loaded, then by id. It is never the child or one of its
// descendants, nor the leaving node; a member below a sibling (another
// child of node) is a target only once that sibling has one outside the
// leaving subtree, so the plan has no cycle whatever order the children
// join in (it is ranked by the level it will have then). The leaving node's own
// slot at its parent counts as free, so one child may take its place.
// Children are placed biggest subtree first; each placement reserves the
// slot until the child joins (any parent), leaves, or the handover ends
// (EndHandover, Leave, or the node's removal). A child no target has room
// for gets a Move with an empty Target.
//
// Nothing else changes: the children keep node as their parent until they
// join elsewhere. Calling Handover again replaces the earlier plan.
// The moves are returned by child id.
func (f *Forest) Handover(stream, node string) ([]Move, error) {
	if f.nodes[node] == nil {
		return nil, fmt.Errorf("%w %q", ErrUnknownNode, node)
	}
	t := f.streams[stream]
	if t == nil || t.members[node] == nil {
		return nil, fmt.Errorf("%w: %s is not in %s", ErrNotInStream, node, stream)
	}
	f.EndHandover(stream, node)
	lm := t.members[node]
	if !lm.leaving {
		f.nleaving++
	}
	lm.leaving = true
	t.invalidate()

	kids := sortedKeys(lm.children)
	size := make(map[string]int, len(kids))
	for _, c := range kids {
		size[c] = t.subtreeSize(c)
	}
	order := append([]string(nil), kids...)
	sort.SliceStable(order, func(i, j int) bool { return size[order[i]] > size[order[j]] })

	// One pass is enough: a child that finds no room leaves none for the
	// ones after it, which see the same slots and no more placed groups.
	planned := map[string]int{} // placed child -> its level under its target
	moves := map[string]Move{}
	for _, c := range order {
		id, level, ok := f.bestTarget(t, stream, node, c, planned)
		if !ok {
			continue
		}
		f.setReserved(Member{stream, c}, reservation{parent: id, by: node})
		planned[c] = level + 1
		mv := Move{Stream: stream, Node: c, Target: id, Level: level + 1}
		if id != Origin {
			mv.RTSP = f.nodes[id].RTSP
		}
		moves[c] = mv
	}
	out := make([]Move, 0, len(kids))
	for _, c := range kids {
		mv, ok := moves[c]
		if !ok {
			mv = Move{Stream: stream, Node: c}
		}
		out = append(out, mv)
	}
	return out, nil
}

// bestTarget picks the new parent of child, which leaves leaving, and
// returns it with the level it will have once the plan is carried out.
func (f *Forest) bestTarget(t *tree, stream, leaving, child string, planned map[string]int) (string, int, bool) {
	type option struct {
		id         string
		level      int
		occ, slots int
	}
	var best *option
	better := func(a, b *option) bool {
		if a.level != b.level {
			return a.level < b.level
		}
		if l, r := a.occ*b.slots, b.occ*a.slots; l != r {
			return l < r
		}
		return a.id < b.id
	}
	consider := func(o option) {
		if o.occ >= o.slots {
			return
		}
		if best == nil || better(&o, best) {
			best = &o
		}
	}
	consider(option{Origin, 0, f.occupied(stream, Origin, child), f.originCap})
	for id, m := range t.members {
		n := f.nodes[id]
		if id == leaving || m.leaving || n == nil || !n.Willing || t.descends(id, child) || f.quarantinedAbove(t, id) != "" {
			continue
		}
		level := m.level
		if t.descends(id, leaving) {
			root := t.below(id, leaving)
			pl, ok := planned[root]
			if !ok {
				continue // its own group has no place yet
			}
			level = pl + m.level - t.members[root].level
		} else if !t.attached(id) {
			continue
		}
		consider(option{id, level, f.occupied(stream, id, child), n.Capacity})
	}
	if best == nil {
		return "", 0, false
	}
	return best.id, best.level, true
}

// below returns the child of anc on the path from id up to anc (id
// descends from anc, id != anc).
func (t *tree) below(id, anc string) string {
	for steps := 0; steps <= len(t.members); steps++ {
		m := t.members[id]
		if m == nil || m.parent == anc {
			return id
		}
		id = m.parent
	}
	return id
}

// EndHandover releases the slots node's handover on stream still
// reserves. Node stays leaving: Leave removes it.
func (f *Forest) EndHandover(stream, node string) {
	for k, r := range f.reserved {
		if k.Stream == stream && r.by == node {
			f.delReserved(k)
		}
	}
}

// Leaving reports whether node is a leaving member of stream.
func (f *Forest) Leaving(stream, node string) bool {
	if t := f.streams[stream]; t != nil {
		if m := t.members[node]; m != nil {
			return m.leaving
		}
	}
	return false
}

// Reserved returns the parent a handover reserved a slot under for node
// on stream.
func (f *Forest) Reserved(stream, node string) (string, bool) {
	r, ok := f.reserved[Member{stream, node}]
	return r.parent, ok
}

// Children returns node's children in stream, by id (nil if none).
func (f *Forest) Children(stream, node string) []string {
	if t := f.streams[stream]; t != nil {
		if m := t.members[node]; m != nil && len(m.children) > 0 {
			return sortedKeys(m.children)
		}
	}
	return nil
}

// occupied returns how many of parent's slots are taken as far as joiner
// is concerned: its children (over all streams; the origin: this
// stream's), less the leaving members among them other than joiner, plus
// the slots reserved, kept or promised for nodes other than joiner (the
// origin: on this stream).
func (f *Forest) occupied(stream, parent, joiner string) int {
	n := 0
	if parent == Origin {
		if t := f.streams[stream]; t != nil {
			n = len(t.origin)
			for id := range t.origin {
				if m := t.members[id]; id != joiner && m != nil && m.leaving {
					n--
				}
			}
		}
	} else if pn := f.nodes[parent]; pn != nil {
		n = pn.children - f.leavingKids(parent, joiner)
	}
	return n + f.held(stream, parent, joiner) + f.promisedUnder(stream, parent, joiner)
}

// leavingKids counts parent's leaving children over all streams, except
// joiner.
func (f *Forest) leavingKids(parent, except string) int {
	if f.nleaving == 0 {
		return 0
	}
	n := 0
	for _, t := range f.streams {
		if pm := t.members[parent]; pm != nil {
			for c := range pm.children {
				if cm := t.members[c]; c != except && cm != nil && cm.leaving {
					n++
				}
			}
		}
	}
	return n
}

// dropReservations forgets the reservations for, by or under id on stream
// (id is leaving the tree).
func (f *Forest) dropReservations(stream, id string) {
	for k, r := range f.reserved {
		if k.Stream == stream && (k.Node == id || r.by == id || r.parent == id) {
			f.delReserved(k)
		}
	}
}

// expect keeps a slot under parent for node while a gradual rebuild
// reaches it.
func (f *Forest) expect(stream, node, parent string, until time.Time) {
	f.setExpected(Member{stream, node}, expectation{parent: parent, until: until})
}

// dropExpectations forgets the slots kept for and under node (it failed
// or left for good).
func (f *Forest) dropExpectations(node string) {
	for k, e := range f.expected {
		if k.Node == node || e.parent == node {
			f.delExpected(k)
		}
	}
}

// ExpireExpectations gives up the slots a gradual rebuild kept for relays
// that have not come back by now.
func (f *Forest) ExpireExpectations(now time.Time) {
	for k, e := range f.expected {
		if !now.Before(e.until) {
			f.delExpected(k)
		}
	}
}
