package tree

import (
	"errors"
	"fmt"
	"slices"
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
// child take that child's slot: the child is told to move under the
// newcomer (ReasonDisplaced, with the newcomer as its target, a slot
// there reserved for it) and does so make-before-break; until it has,
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

// SetDisplace sets how many full near members Candidates offers for
// displacement besides the origin (negative: no displacement offered at
// all, the origin's included).
func (f *Forest) SetDisplace(n int) { f.displace = n }

// JoinVia is Join with the relay's measure of the edge: its RTT is kept
// (the path of the members below counts it), and a join refused because
// the parent is full takes the slot of the parent's farthest child when
// via.Displace asks for it and the rule allows it (wire.Displaces, the
// node relays and has a free slot for the child, the parent has no other
// displacement under way). The displaced child is in Result.Displaced
// and told to move (a Notice with Target).
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
	case !f.hasRoom(stream, node):
		return res, fmt.Errorf("%w (%s has no free slot for the child it would displace)", err, node)
	}
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
	f.setReserved(wm, reservation{parent: node, by: parent})
	res.Displaced = append(res.Displaced, Displacement{Stream: stream, Node: w, From: parent, By: node,
		RTT: via.RTT, Worst: worst})
	res.notify(0, Notice{Stream: stream, Node: w, Reason: ReasonDisplaced, Parent: parent, Target: node})
	return res, nil
}

// setRTT records node's measured RTT to parent, if that is its parent.
func (f *Forest) setRTT(stream, node, parent string, rtt float64) {
	if t := f.streams[stream]; t != nil {
		if m := t.members[node]; m != nil && m.parent == parent && rtt > 0 {
			m.rtt = rtt
		}
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
	for k, d := range f.displaced {
		if k.Stream != stream {
			continue
		}
		m := t.members[k.Node]
		if m == nil || m.parent != d.from {
			delete(f.displaced, k) // gone, or moved some other way
			continue
		}
		if now.Before(d.until) {
			continue
		}
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

// displaceScan bounds the members displaceCandidates looks at per
// request.
const displaceScan = 256

// displaceCandidates returns the full parents requester may displace a
// child of: the shallowest full members (the origin first) whose
// farthest child is far enough for some requester to displace it, found
// level by level from the origin, at most f.displace of them besides the
// origin and displaceScan members looked at. Each carries Worst, its
// farthest child's RTT. Requester must relay and have a free slot. The
// top of the tree is where a far child costs most: every relay below it
// pays for its RTT.
func (f *Forest) displaceCandidates(t *tree, stream, requester string, self *member, exclude []string,
	have []Candidate) []Candidate {
	if f.displace < 0 || t == nil || !f.hasRoom(stream, requester) {
		return nil
	}
	var out []Candidate
	worthIt := func(parent string) (float64, bool) {
		if self != nil && self.parent == parent || haveID(have, parent) || slices.Contains(exclude, parent) ||
			f.displacing(t, stream, parent) {
			return 0, false
		}
		_, worst := f.farthestChild(t, stream, parent, requester)
		return worst, worst > wire.DisplaceMinGainMs
	}
	if worst, ok := worthIt(Origin); ok {
		out = append(out, Candidate{ID: Origin, Clients: f.occupied(stream, Origin, requester),
			Capacity: f.originCap, Worst: worst})
	}
	level := sortedKeys(t.origin)
	seen := 0
	for found := 0; len(level) > 0 && found < f.displace && seen < displaceScan; {
		var next []string
		for _, id := range level {
			if seen++; seen > displaceScan || found >= f.displace {
				break
			}
			m := t.members[id]
			if m == nil || m.id == requester {
				continue // its subtree is the requester's own
			}
			next = append(next, sortedKeys(m.children)...)
			n := m.node
			if !n.Willing || m.leaving {
				continue
			}
			c := f.taken(stream, m, requester, "")
			if c < n.Capacity {
				continue // not full: an ordinary candidate
			}
			worst, ok := worthIt(m.id)
			if !ok || f.quarantinedAbove(t, m.id) != "" {
				continue
			}
			out = append(out, Candidate{ID: m.id, Level: m.level, Clients: c, Capacity: n.Capacity,
				RTSP: n.RTSP, Probe: n.Probe, Cores: n.Cores, CPU: n.CPU, Worst: worst})
			found++
		}
		level = next
	}
	return out
}
