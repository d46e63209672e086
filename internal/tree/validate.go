package tree

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"sort"
)

// Validate checks every invariant of the forest: members are registered
// nodes; parent and child links agree; no cycles; an attached member's
// level is its parent's plus one (1 under the origin) and a detached
// subtree keeps the same relative levels; a pending parent is not a
// member; children counts match and respect capacities (a leaving child
// not counted, nor one a displacement told to make room); reservations
// name members and a leaving one (or, for a displaced child, the parent
// it leaves). It returns all violations joined, nil if there are none.
// Tests call it after every step.
func (f *Forest) Validate() error {
	var errs []error
	bad := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }
	counts := map[string]int{}
	moving, movingOrigin := f.displacedKids()
	for s, t := range f.streams {
		if len(t.members) == 0 {
			bad("%s: empty tree kept", s)
		}
		if n := len(t.origin) - f.leavingKidsOf(t, Origin) - movingOrigin[s]; n > f.originCap {
			bad("%s: origin has %d children not leaving, capacity %d", s, n, f.originCap)
		}
		for c := range t.origin {
			if m := t.members[c]; m == nil || m.parent != Origin {
				bad("%s: origin lists child %s whose parent is not the origin", s, c)
			}
		}
		for id, m := range t.members {
			if m.id != id {
				bad("%s: member %s stored under %s", s, m.id, id)
			}
			if f.nodes[id] == nil {
				bad("%s: member %s is not a registered node", s, id)
			}
			switch m.parent {
			case "":
				if m.pending != "" && t.members[m.pending] != nil {
					bad("%s: %s still pending on %s, which is a member", s, id, m.pending)
				}
			case Origin:
				if _, ok := t.origin[id]; !ok {
					bad("%s: %s has the origin as parent but the origin does not list it", s, id)
				}
				if m.level != 1 {
					bad("%s: %s under the origin has level %d", s, id, m.level)
				}
			default:
				pm := t.members[m.parent]
				if pm == nil {
					bad("%s: %s has parent %s, which is not a member", s, id, m.parent)
					break
				}
				if _, ok := pm.children[id]; !ok {
					bad("%s: %s has parent %s, which does not list it", s, id, m.parent)
				}
				if m.level != pm.level+1 {
					bad("%s: %s has level %d under %s at level %d", s, id, m.level, m.parent, pm.level)
				}
			}
			if m.parent != "" && m.pending != "" {
				bad("%s: %s has a parent and a pending parent", s, id)
			}
			for c := range m.children {
				if cm := t.members[c]; cm == nil || cm.parent != id {
					bad("%s: %s lists child %s whose parent is not %s", s, id, c, id)
				}
			}
			counts[id] += len(m.children)
			// A cycle never reaches a root: walk at most len(members).
			cur, steps := id, 0
			for ; steps <= len(t.members); steps++ {
				cm := t.members[cur]
				if cm == nil || cm.parent == "" || cm.parent == Origin {
					break
				}
				cur = cm.parent
			}
			if steps > len(t.members) {
				bad("%s: cycle through %s", s, id)
			}
		}
	}
	for id, n := range f.nodes {
		if n.ID != id {
			bad("node %s stored under %s", n.ID, id)
		}
		if n.children != counts[id] {
			bad("node %s counts %d children, trees hold %d", id, n.children, counts[id])
		}
		if c := counts[id] - f.leavingKids(id, "") - moving[id]; c > n.Capacity {
			bad("node %s has %d children not leaving, capacity %d", id, c, n.Capacity)
		}
	}
	for k, r := range f.reserved {
		t := f.streams[k.Stream]
		switch {
		case t == nil || t.members[k.Node] == nil:
			bad("%s: slot reserved for %s, not a member", k.Stream, k.Node)
		case (t.members[r.by] == nil || !t.members[r.by].leaving) && !f.displacedTo(k, r):
			bad("%s: slot reserved for %s by %s, neither a leaving member nor the parent it is displaced from", k.Stream, k.Node, r.by)
		case r.parent != Origin && t.members[r.parent] == nil:
			bad("%s: slot reserved for %s under %s, not a member", k.Stream, k.Node, r.parent)
		case r.parent != Origin && t.descends(r.parent, k.Node):
			bad("%s: slot reserved for %s under its own descendant %s", k.Stream, k.Node, r.parent)
		}
	}
	for id := range counts {
		if f.nodes[id] == nil && counts[id] > 0 {
			bad("unregistered %s has children", id)
		}
	}
	f.validateCounts(bad)
	return errors.Join(errs...)
}

// displacedKids counts the children still under the parent a
// displacement told them to leave (the parent may be one over its
// capacity while they move): by node id, and under the origin by stream.
func (f *Forest) displacedKids() (byNode, byOrigin map[string]int) {
	byNode, byOrigin = map[string]int{}, map[string]int{}
	for k, d := range f.displaced {
		t := f.streams[k.Stream]
		if t == nil || t.parent(k.Node) != d.from || t.members[k.Node].leaving {
			continue // gone, moved, or counted as leaving already
		}
		if d.from == Origin {
			byOrigin[k.Stream]++
		} else {
			byNode[d.from]++
		}
	}
	return byNode, byOrigin
}

// displacedTo reports whether r is the slot kept for the displaced child
// k under the relay that took its own (JoinVia).
func (f *Forest) displacedTo(k Member, r reservation) bool {
	d, ok := f.displaced[k]
	t := f.streams[k.Stream]
	return ok && t != nil && d.by == r.parent && d.from == r.by && t.parent(k.Node) == r.by
}

// parent returns id's parent in t, "" if it is not a member or detached.
func (t *tree) parent(id string) string {
	if m := t.members[id]; m != nil {
		return m.parent
	}
	return ""
}

// leavingKidsOf counts the leaving members whose parent is parent in t.
func (f *Forest) leavingKidsOf(t *tree, parent string) int {
	n := 0
	for _, m := range t.members {
		if m.parent == parent && m.leaving {
			n++
		}
	}
	return n
}

// validateCounts checks the counts the hot paths trust: pending and
// leaving members, quarantined nodes, promises per parent.
func (f *Forest) validateCounts(bad func(format string, a ...any)) {
	leaving, quarantined := 0, 0
	for s, t := range f.streams {
		pending := 0
		for _, m := range t.members {
			if m.pending != "" {
				pending++
			}
			if m.leaving {
				leaving++
			}
		}
		if pending != t.npending {
			bad("%s: %d members pending, counted %d", s, pending, t.npending)
		}
	}
	for _, n := range f.nodes {
		if n.Quarantine != "" {
			quarantined++
		}
	}
	if leaving != f.nleaving || quarantined != f.nquarantined {
		bad("%d leaving members and %d quarantined nodes, counted %d and %d", leaving, quarantined, f.nleaving, f.nquarantined)
	}
	under, byNode := map[string]int{}, map[string]int{}
	for m, p := range f.promised {
		if p.parent == Origin {
			under[m.Stream]++
		} else {
			byNode[p.parent]++
		}
	}
	if !maps.Equal(under, f.under) {
		bad("promises under the origin %v, counted %v", under, f.under)
	}
	for id, n := range f.nodes {
		if n.promised != byNode[id] {
			bad("node %s has %d slots promised, counted %d", id, byNode[id], n.promised)
		}
	}
	held := map[heldKey]int{}
	for m, r := range f.reserved {
		held[holdKey(m.Stream, r.parent)]++
	}
	for m, e := range f.expected {
		held[holdKey(m.Stream, e.parent)]++
	}
	if !maps.Equal(held, f.heldUnder) {
		bad("slots reserved and kept %v, counted %v", held, f.heldUnder)
	}
	for s, t := range f.streams {
		f.validateTop(s, t, bad)
		if len(t.list) != len(t.members) {
			bad("%s: %d members listed, %d held", s, len(t.list), len(t.members))
		}
		for i, m := range t.list {
			if m.idx != i || t.members[m.id] != m || m.node != f.nodes[m.id] {
				bad("%s: member %s misplaced in the list", s, m.id)
			}
		}
	}
}

// validateTop checks a valid cache of best members against a rebuild.
func (f *Forest) validateTop(s string, t *tree, bad func(format string, a ...any)) {
	in := 0
	for _, m := range t.list {
		if m.inTop {
			in++
		}
	}
	if !t.topValid {
		if in > 0 || len(t.top) > 0 {
			bad("%s: invalid cache holds %d members (%d marked)", s, len(t.top), in)
		}
		return
	}
	var want []*member
	n := 0
	for _, m := range t.list {
		if f.offerable(t, m) {
			n++
			want = append(want, m)
		}
	}
	sort.Slice(want, func(i, j int) bool { return rankLess(want[i], want[j]) })
	if len(want) > len(t.top) {
		want = want[:len(t.top)]
	}
	if in != len(t.top) || t.topAll && n != len(t.top) || !slices.Equal(want, t.top) {
		var got, exp []string
		for _, m := range t.top {
			got = append(got, m.id)
		}
		for _, m := range want {
			exp = append(exp, m.id)
		}
		bad("%s: cache of best members %v (all %v, %d marked), want %v of %d offerable", s, got, t.topAll, in, exp, n)
	}
}
