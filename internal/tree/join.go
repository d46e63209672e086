package tree

import (
	"fmt"
	"sort"
	"time"
)

// Join records that node receives stream from parent (a node id or
// Origin). The parent must be attached to the stream, willing, not
// leaving nor quarantined (nor below a quarantined member), with free
// capacity (see occupied: a slot reserved for the node
// is its own), and neither the node nor one of its descendants. A node already
// in the tree moves with its subtree (levels recomputed); joining the
// parent it already has changes nothing. On error nothing changes.
func (f *Forest) Join(stream, node, parent string) (Result, error) {
	var res Result
	if f.nodes[node] == nil {
		return res, fmt.Errorf("%w %q", ErrUnknownNode, node)
	}
	t := f.streams[stream]
	if t == nil {
		if parent != Origin {
			return res, fmt.Errorf("%w: %s does not receive %s (nobody does yet)", ErrNotActive, parent, stream)
		}
		t = f.tree(stream)
	}
	err := f.attach(t, stream, node, parent, true, 0, &res)
	f.gc(stream)
	return res, err
}

// attach links node under parent after the checks; strict is Join's rule
// (the parent must be attached and willing), non-strict is the rebuild's
// (any member will do: its own upstream may not have said hello yet).
// extra is how many slots over its capacity the parent may go (a
// displacement's one, while the displaced child moves).
func (f *Forest) attach(t *tree, stream, node, parent string, strict bool, extra int, res *Result) error {
	if parent == node {
		return fmt.Errorf("%w: %s cannot be its own parent", ErrCycle, node)
	}
	m := t.members[node]
	if m != nil && m.parent == parent {
		return nil
	}
	level := 1
	if parent == Origin {
		if n := f.occupied(stream, Origin, node); n >= f.originCap+extra {
			return fmt.Errorf("%w: the origin has %d of its %d slots taken", ErrFull, n, f.originCap)
		}
	} else {
		pn := f.nodes[parent]
		if pn == nil {
			return fmt.Errorf("%w %q", ErrUnknownParent, parent)
		}
		pm := t.members[parent]
		if pm == nil {
			return fmt.Errorf("%w: %s does not receive %s", ErrNotActive, parent, stream)
		}
		if strict && !t.attached(parent) {
			return fmt.Errorf("%w: %s is detached from %s (its upstream is being repaired)", ErrNotActive, parent, stream)
		}
		if m != nil && t.descends(parent, node) {
			return fmt.Errorf("%w: %s is a descendant of %s", ErrCycle, parent, node)
		}
		if strict && pm.leaving {
			return fmt.Errorf("%w: %s is leaving %s", ErrNotActive, parent, stream)
		}
		if strict && !pn.Willing {
			return fmt.Errorf("%w: %s", ErrNotWilling, parent)
		}
		if q := f.quarantinedAbove(t, parent); strict && q != "" {
			return fmt.Errorf("%w: %s (%s)", ErrQuarantined, q, f.nodes[q].Quarantine)
		}
		if n := f.occupied(stream, parent, node); n >= pn.Capacity+extra {
			return fmt.Errorf("%w: %s has %d of its %d slots taken", ErrFull, parent, n, pn.Capacity)
		}
		level = pm.level + 1
	}
	from, created := "", m == nil
	if created {
		m = t.add(node, f.nodes[node])
	} else {
		from = m.parent
		f.unlink(t, m)
	}
	f.link(t, m, parent)
	m.level = level
	f.delReserved(Member{stream, node}) // a promised slot is taken or given up
	delete(f.displaced, Member{stream, node})
	f.delExpected(Member{stream, node})
	f.unpromise(Member{stream, node})
	res.Changes = append(res.Changes, Change{
		Stream: stream, Node: node, Parent: parent, From: from, Level: level, Subtree: t.relevel(m),
	})
	if created {
		f.refresh(t, m) // a new leaf: one member to rank
	} else {
		t.invalidate() // a subtree moved
	}
	if created {
		f.resolvePending(t, stream, node, res)
	}
	return nil
}

// resolvePending completes the edges waiting for parent, which has just
// become a member of the tree. An edge that cannot be completed (full
// parent, cycle) leaves its node an orphan, told to rejoin.
func (f *Forest) resolvePending(t *tree, stream, parent string, res *Result) {
	if t.npending == 0 {
		return
	}
	var waiting []string
	for id, m := range t.members {
		if m.pending == parent && m.parent == "" {
			waiting = append(waiting, id)
		}
	}
	sort.Strings(waiting)
	for _, id := range waiting {
		if err := f.attach(t, stream, id, parent, false, 0, res); err != nil {
			t.setPending(t.members[id], "")
			res.notify(0, Notice{Stream: stream, Node: id, Reason: ReasonRejected})
		}
	}
}

// Hello registers a node (or updates one already registered) and rebuilds
// the edges it declares (Edge.Node is ignored: it is info.ID). Streams the
// node was in but no longer declares are left as with Leave under pol. If
// the node lowered its capacity below its current children, the excess
// children (smallest subtrees first) are detached and told to rejoin.
func (f *Forest) Hello(info NodeInfo, edges []Edge, pol Policy, now time.Time) (Result, error) {
	var res Result
	if info.ID == "" {
		return res, fmt.Errorf("%w: empty node id", ErrUnknownNode)
	}
	if info.ID == Origin {
		return res, fmt.Errorf("%w: %q", ErrReserved, info.ID)
	}
	n := f.nodes[info.ID]
	if n == nil {
		n = &Node{}
		f.nodes[info.ID] = n
	}
	n.NodeInfo = info
	f.refreshNode(n)
	if n.children-f.leavingKids(info.ID, "") > n.Capacity {
		f.shed(n, now, &res)
	}

	declared := make(map[string]string, len(edges))
	rtts := make(map[string]float64, len(edges))
	for _, e := range edges {
		declared[e.Stream] = e.Parent
		rtts[e.Stream] = e.RTT
	}
	for _, s := range f.streamsOf(info.ID) {
		if _, ok := declared[s]; !ok {
			f.detach(f.streams[s], s, info.ID, pol, ReasonParentLeft, now, &res)
			f.gc(s)
		}
	}

	streams := make([]string, 0, len(declared))
	for s := range declared {
		streams = append(streams, s)
	}
	sort.Strings(streams)
	for _, s := range streams {
		f.helloEdge(s, info.ID, declared[s], now, &res)
		f.setRTT(s, info.ID, declared[s], rtts[s]) // if the edge is made (a pending one: from the next report)
	}
	return res, nil
}

// helloEdge re-creates one declared edge, or records it as pending.
func (f *Forest) helloEdge(stream, node, parent string, now time.Time, res *Result) {
	t := f.tree(stream)
	m := t.members[node]
	if m != nil && m.parent == parent {
		return
	}
	orphan := func() *member {
		created := m == nil
		if created {
			m = t.add(node, f.nodes[node])
		} else if m.parent != "" {
			f.unlink(t, m)
			res.Orphaned = append(res.Orphaned, Member{stream, node})
		}
		m.orphanSince = now
		if created {
			f.resolvePending(t, stream, node, res)
		}
		return m
	}
	if parent == Origin || t.members[parent] != nil {
		if err := f.attach(t, stream, node, parent, false, 0, res); err != nil {
			orphan()
			res.notify(0, Notice{Stream: stream, Node: node, Reason: ReasonRejected})
		}
		return
	}
	t.setPending(orphan(), parent)
	res.Pending = append(res.Pending, Edge{Stream: stream, Node: node, Parent: parent})
}

// shed detaches children of n beyond its capacity, smallest subtrees first.
func (f *Forest) shed(n *Node, now time.Time, res *Result) {
	type kid struct {
		stream, id string
		size       int
	}
	var kids []kid
	for s, t := range f.streams {
		if pm := t.members[n.ID]; pm != nil {
			for c := range pm.children {
				if !t.members[c].leaving { // going anyway
					kids = append(kids, kid{s, c, t.subtreeSize(c)})
				}
			}
		}
	}
	sort.Slice(kids, func(i, j int) bool {
		a, b := kids[i], kids[j]
		if a.size != b.size {
			return a.size < b.size
		}
		if a.stream != b.stream {
			return a.stream < b.stream
		}
		return a.id < b.id
	})
	for _, k := range kids[:max(len(kids)-n.Capacity, 0)] {
		t := f.streams[k.stream]
		m := t.members[k.id]
		f.unlink(t, m)
		m.orphanSince = now
		res.Orphaned = append(res.Orphaned, Member{k.stream, k.id})
		res.notify(0, Notice{Stream: k.stream, Node: k.id, Reason: ReasonCapacity})
	}
}

// Report records a node's periodic report.
func (f *Forest) Report(node string, r Report, now time.Time) error {
	n := f.nodes[node]
	if n == nil {
		return fmt.Errorf("%w %q", ErrUnknownNode, node)
	}
	n.CPU, n.Clients, n.LastReport = r.CPU, r.Clients, now
	if r.Willing != nil {
		n.Willing = *r.Willing
		f.refreshNode(n)
	}
	for _, s := range r.Streams {
		if t := f.streams[s.Stream]; t != nil {
			if m := t.members[node]; m != nil {
				m.stats, m.statsAt = s, now
				if s.RTT > 0 && s.Parent == m.parent {
					t.setRTT(m, s.RTT)
				}
			}
		}
	}
	return nil
}

// streamsOf returns the streams node is a member of, sorted.
func (f *Forest) streamsOf(node string) []string {
	var out []string
	for s, t := range f.streams {
		if t.members[node] != nil {
			out = append(out, s)
		}
	}
	sort.Strings(out)
	return out
}
