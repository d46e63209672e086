package tree

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/ocm-overlay/ocm/internal/wire"
)

// Latency and displacement. Each member keeps the RTT to its parent that
// its relay measured (JoinVia, then every report), so the server knows
// the RTT along the tree from the origin to any member (its path, the
// sum up its chain) and offers it with each candidate: a relay scores a
// candidate by where the stream would come from, not by its RTT to the
// candidate alone.
//
// A parent's slots go to the first relays that ask. In a crowd arriving
// from everywhere, the origin's few slots (and those of the relays below
// it) go to relays on other continents, and the relays next to the
// origin reach it through them. Displacement (wire.Displaces) lets a
// relay that is much closer to a full parent than the parent's farthest
// child take that child's slot: the child is told to move
// (ReasonDisplaced) under the newcomer when it has a free slot (the
// notice's target, the slot reserved for it), else wherever it finds one
// (it resolves, leaving out the parent it leaves), and does so
// make-before-break. Only a relay (willing, capacity above 0) may
// displace: a passive host near the top would take a slot from the
// relays below it for its own sake. Until the child has moved,
// the parent serves one copy more than its capacity, for at most
// DisplaceHold, after which a child that has not moved is detached and
// told to rejoin. A parent takes one displacement at a time.

// DisplaceHold is how long a displaced child has to move.
const DisplaceHold = 10 * time.Second

// Via is what a joining relay knows of the edge it asks for.
type Via struct {
	RTT      float64 // ms to the parent, measured by the relay (0: unknown)
	Displace bool    // may take the slot of the parent's farthest child when the parent is full
}

// Displacement is one slot taken by displacement.
type Displacement struct {
	Stream string
	Node   string  // the child told to move
	From   string  // the parent it leaves
	By     string  // the relay that took its slot: its new parent
	RTT    float64 // By's RTT to From
	Worst  float64 // Node's RTT to From
}

// displacement is a displaced child on its way.
type displacement struct {
	from, by string
	until    time.Time
}

// SetDisplace sets how many full members Candidates offers for
// displacement besides the origin (displaceCandidates; 0: the origin
// only; negative: no displacement offered at all).
func (f *Forest) SetDisplace(n int) { f.displace = n }

// JoinVia is Join with the relay's measure of the edge: its RTT is kept
// (the path of the members below counts it), and a join refused because
// the parent is full takes the slot of the parent's farthest child when
// via.Displace asks for it and the rule allows it (wire.Displaces, the
// node relays, the parent has no other displacement under way). The
// displaced child is in Result.Displaced and told to move (a Notice with
// the node as Target if it has a free slot, reserved for the child).
func (f *Forest) JoinVia(stream, node, parent string, via Via, now time.Time) (Result, error) {
	res, err := f.Join(stream, node, parent)
	if err == nil {
		f.setRTT(stream, node, parent, via.RTT)
		return res, nil
	}
	if !errors.Is(err, ErrFull) || !via.Displace {
		return res, err
	}
	t := f.streams[stream]
	w, worst := f.farthestChild(t, stream, parent, node)
	switch {
	case w == "":
		return res, err
	case !wire.Displaces(via.RTT, worst):
		return res, fmt.Errorf("%w (its farthest child is %.1f ms from it, %.1f ms is not close enough to displace it)",
			err, worst, via.RTT)
	case !f.relays(node):
		return res, fmt.Errorf("%w (%s does not relay: only a relay may displace a child)", err, node)
	}
	room := f.hasRoom(stream, node)
	f.expireDisplaced(t, stream, now, &res)
	if f.displacing(t, stream, parent) {
		return res, fmt.Errorf("%w (another child is already moving away to make room)", err)
	}
	if err := f.attach(t, stream, node, parent, true, 1, &res); err != nil {
		return res, err
	}
	f.setRTT(stream, node, parent, via.RTT)
	wm := Member{stream, w}
	f.displaced[wm] = displacement{from: parent, by: node, until: now.Add(DisplaceHold)}
	target := ""
	if room {
		target = node
		f.setReserved(wm, reservation{parent: node, by: parent})
	}
	res.Displaced = append(res.Displaced, Displacement{Stream: stream, Node: w, From: parent, By: node,
		RTT: via.RTT, Worst: worst})
	res.notify(0, Notice{Stream: stream, Node: w, Reason: ReasonDisplaced, Parent: parent, Target: target})
	return res, nil
}

// relays reports whether node relays to others (willing, capacity above
// 0): whether it may displace.
func (f *Forest) relays(node string) bool {
	n := f.nodes[node]
	return n != nil && n.Willing && n.Capacity > 0
}

// setRTT records node's measured RTT to parent, if that is its parent.
func (f *Forest) setRTT(stream, node, parent string, rtt float64) {
	if t := f.streams[stream]; t != nil {
		if m := t.members[node]; m != nil && m.parent == parent && rtt > 0 {
			t.setRTT(m, rtt)
		}
	}
}

// setRTT sets m's RTT to its parent, keeping the parent's count of far
// children.
func (t *tree) setRTT(m *member, rtt float64) {
	old := m.rtt
	m.rtt = rtt
	if far(old) == far(rtt) {
		return
	}
	pm := t.members[m.parent]
	if pm == nil {
		return // the origin's child, or an orphan
	}
	if far(rtt) {
		pm.farKids++
	} else {
		pm.farKids--
	}
}

// hasRoom reports whether node relays and has a free slot.
func (f *Forest) hasRoom(stream, node string) bool {
	n := f.nodes[node]
	return n != nil && n.Willing && f.occupied(stream, node, "") < n.Capacity
}

// kidsOf returns parent's children in t (the origin's direct ones for
// Origin).
func (t *tree) kidsOf(parent string) map[string]struct{} {
	if parent == Origin {
		return t.origin
	}
	if pm := t.members[parent]; pm != nil {
		return pm.children
	}
	return nil
}

// farthestChild returns parent's child in t with the largest measured
// RTT to it, not except nor leaving nor already displaced; "" if none
// has a measure.
func (f *Forest) farthestChild(t *tree, stream, parent, except string) (string, float64) {
	if t == nil {
		return "", 0
	}
	best, worst := "", 0.0
	for c := range t.kidsOf(parent) {
		m := t.members[c]
		if c == except || m == nil || m.leaving || m.rtt <= worst {
			continue
		}
		if _, moving := f.displaced[Member{stream, c}]; moving {
			continue
		}
		best, worst = c, m.rtt
	}
	return best, worst
}

// displacing reports whether a child of parent is still on its way out
// after a displacement.
func (f *Forest) displacing(t *tree, stream, parent string) bool {
	for c := range t.kidsOf(parent) {
		if d, ok := f.displaced[Member{stream, c}]; ok && d.from == parent {
			return true
		}
	}
	return false
}

// ExpireDisplaced detaches the displaced children that have not moved by
// now and tells them to rejoin (ReasonCapacity), so no parent serves over
// its capacity for long.
func (f *Forest) ExpireDisplaced(now time.Time) Result {
	var res Result
	for s, t := range f.streams {
		f.expireDisplaced(t, s, now, &res)
	}
	return res
}

func (f *Forest) expireDisplaced(t *tree, stream string, now time.Time, res *Result) {
	if len(f.displaced) == 0 {
		return
	}
	var due []Member
	for k, d := range f.displaced {
		if k.Stream != stream {
			continue
		}
		if m := t.members[k.Node]; m == nil || m.parent != d.from {
			delete(f.displaced, k) // gone, or moved some other way
		} else if !now.Before(d.until) {
			due = append(due, k)
		}
	}
	slices.SortFunc(due, func(a, b Member) int { return strings.Compare(a.Node, b.Node) })
	for _, k := range due {
		d, m := f.displaced[k], t.members[k.Node]
		delete(f.displaced, k)
		f.delReserved(k)
		f.unlink(t, m)
		m.orphanSince = now
		res.Orphaned = append(res.Orphaned, k)
		res.notify(0, Notice{Stream: stream, Node: k.Node, Reason: ReasonCapacity, Parent: d.from})
	}
}

// path is the RTT along t from the origin to id: the sum of the measured
// RTTs up its chain (unknown ones count 0).
func (t *tree) path(id string) float64 {
	sum := 0.0
	for steps := 0; steps <= len(t.members) && id != Origin && id != ""; steps++ {
		m := t.members[id]
		if m == nil {
			break
		}
		sum += m.rtt
		id = m.parent
	}
	return sum
}

// Path returns the RTT along stream's tree from the origin to node.
func (f *Forest) Path(stream, node string) float64 {
	if t := f.streams[stream]; t != nil {
		return t.path(node)
	}
	return 0
}

// displaceScan is about how many members from the top of the tree
// displaceCandidates looks at per request (whole levels).
const displaceScan = 64

// far reports whether a child at rtt ms from its parent is far enough for
// some relay to displace it (wire.Displaces needs a gain of
// wire.DisplaceMinGainMs): a relay of the parent's own area, a few ms
// from it, can displace such a child.
func far(rtt float64) bool { return rtt > wire.DisplaceMinGainMs }

// displaceCandidates returns the full parents requester may displace a
// child of: the shallowest full members (the origin first) whose
// farthest child is far enough for some requester to displace it, found
// level by level from the origin, at most f.displace of them besides the
// origin and displaceScan members looked at, none already in have or
// haveToo (the candidates offered before them). Each carries Worst, its
// farthest child's RTT. Requester must relay (relays). The
// top of the tree is where a far child costs most: every relay below it
// pays for its RTT.
func (f *Forest) displaceCandidates(t *tree, stream, requester string, self *member, exclude []string,
	have, haveToo []Candidate) []Candidate {
	if f.displace < 0 || t == nil || !f.relays(requester) {
		return nil
	}
	var out []Candidate
	// left out: the requester's own parent, one already offered or
	// excluded, one whose displaced child is still on its way.
	leftOut := func(parent string) bool {
		return self != nil && self.parent == parent || haveID(have, parent) || haveID(haveToo, parent) ||
			slices.Contains(exclude, parent) || f.displacing(t, stream, parent)
	}
	if !leftOut(Origin) {
		if _, worst := f.farthestChild(t, stream, Origin, requester); far(worst) {
			out = append(out, Candidate{ID: Origin, Clients: f.occupied(stream, Origin, requester),
				Capacity: f.originCap, Worst: worst})
		}
	}
	// The members near the top of the tree (whole levels from the
	// origin's children, until displaceScan have been looked at): of the
	// full ones with a far child, those with the farthest child are
	// offered (any relay of the parent's own area may displace it), the
	// shallower first among equals. The walks up the tree are made only
	// for those that would be offered. The order is total, so which are
	// offered does not depend on the maps' order.
	var full []Candidate
	rank := func(a, b *Candidate) int {
		return cmp.Or(cmp.Compare(b.Worst, a.Worst), cmp.Compare(a.Level, b.Level), cmp.Compare(a.ID, b.ID))
	}
	level, next := make([]*member, 0, 16), make([]*member, 0, 64)
	for id := range t.origin {
		level = append(level, t.members[id])
	}
	// (SetDisplace(0): the origin only; nothing to compare with below.)
	for seen := 0; f.displace > 0 && len(level) > 0 && seen < displaceScan; level, next = next, level[:0] {
		for _, m := range level {
			seen++
			for c := range m.children {
				next = append(next, t.members[c])
			}
			n := m.node
			if m.farKids == 0 || m.id == requester || !n.Willing || m.leaving {
				continue
			}
			c := f.taken(stream, m, requester, "")
			if c < n.Capacity {
				continue // not full: an ordinary candidate
			}
			_, worst := f.farthestChild(t, stream, m.id, requester)
			cand := Candidate{ID: m.id, Level: m.level, Clients: c, Capacity: n.Capacity, Worst: worst}
			if !far(worst) || len(full) >= f.displace && rank(&cand, &full[len(full)-1]) >= 0 {
				continue
			}
			if leftOut(m.id) || self != nil && t.descends(m.id, requester) || f.quarantinedAbove(t, m.id) != "" {
				continue
			}
			cand.RTSP, cand.Probe, cand.Cores, cand.CPU = n.RTSP, n.Probe, n.Cores, n.CPU
			i, _ := slices.BinarySearchFunc(full, &cand, func(a Candidate, b *Candidate) int { return rank(&a, b) })
			full = slices.Insert(full, i, cand)
			full = full[:min(len(full), f.displace)]
		}
	}
	out = append(out, full...)
	return out
}
