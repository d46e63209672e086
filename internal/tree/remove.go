package tree

import (
	"fmt"
	"sort"
	"time"
)

// RemoveNode forgets a failed (or disconnected) node and applies pol to
// what was below it in every stream, as if its children's parent failed.
func (f *Forest) RemoveNode(node string, pol Policy, now time.Time) (Result, error) {
	var res Result
	if f.nodes[node] == nil {
		return res, fmt.Errorf("%w %q", ErrUnknownNode, node)
	}
	f.dropExpectations(node)
	streams := make([]string, 0, len(f.streams))
	for s := range f.streams {
		streams = append(streams, s)
	}
	sort.Strings(streams)
	for _, s := range streams {
		f.detach(f.streams[s], s, node, pol, ReasonParentFailed, now, &res)
		f.gc(s)
	}
	f.dropPromises("", node)
	if f.nodes[node].Quarantine != "" {
		f.nquarantined--
	}
	delete(f.nodes, node)
	return res, nil
}

// gradualKeep is how long a gradual rebuild keeps a relay's old slot for
// it: well past the last level's turn.
const gradualKeep = 10 * time.Second

// Leave takes node out of stream's tree (it stopped receiving it) and
// applies pol to its children, told their parent left.
func (f *Forest) Leave(stream, node string, pol Policy, now time.Time) (Result, error) {
	var res Result
	if f.nodes[node] == nil {
		return res, fmt.Errorf("%w %q", ErrUnknownNode, node)
	}
	t := f.streams[stream]
	if t == nil || t.members[node] == nil {
		return res, fmt.Errorf("%w: %s is not in %s", ErrNotInStream, node, stream)
	}
	f.detach(t, stream, node, pol, ReasonParentLeft, now, &res)
	f.gc(stream)
	return res, nil
}

// detach removes node from t (if it is there) and applies pol to its
// children, including orphans waiting for it as their pending parent.
func (f *Forest) detach(t *tree, stream, node string, pol Policy, reason string, now time.Time, res *Result) {
	m := t.members[node]
	var kids []string
	if m != nil {
		for c := range m.children {
			kids = append(kids, c)
		}
	}
	if t.npending > 0 {
		for id, o := range t.members {
			if o.pending == node && o.parent == "" {
				kids = append(kids, id)
			}
		}
	}
	sort.Strings(kids)
	if m == nil && len(kids) == 0 {
		return
	}

	if pol == Repair || pol == "" {
		for _, c := range kids {
			cm := t.members[c]
			if cm.parent != "" {
				f.unlink(t, cm)
				res.Orphaned = append(res.Orphaned, Member{stream, c})
			}
			t.setPending(cm, "")
			cm.orphanSince = now
			res.notify(0, Notice{Stream: stream, Node: c, Reason: reason, Parent: node})
		}
		if m != nil {
			f.remove(t, stream, []string{node}, res)
		}
		return
	}

	// Drop, Reconnect, Gradual: the whole subtree goes, level by level.
	var gone []string
	if m != nil {
		gone = append(gone, node)
	}
	level := kids
	for depth := 0; len(level) > 0; depth++ {
		var next []string
		for _, id := range level {
			gone = append(gone, id)
			r, parent := ReasonAncestorFailed, ""
			if depth == 0 {
				r, parent = reason, node
			}
			switch pol {
			case Reconnect:
				res.notify(0, Notice{Stream: stream, Node: id, Reason: r, Parent: parent})
			case Gradual:
				home := ""
				if depth > 0 {
					home = t.members[id].parent
					f.expect(stream, id, home, now.Add(gradualKeep))
				}
				res.notify(depth, Notice{Stream: stream, Node: id, Reason: r, Parent: parent, Home: home})
			}
			var cs []string
			for c := range t.members[id].children {
				cs = append(cs, c)
			}
			sort.Strings(cs)
			next = append(next, cs...)
		}
		level = next
	}
	f.remove(t, stream, gone, res)
}

// remove takes members out of t: first every edge, then the members.
func (f *Forest) remove(t *tree, stream string, ids []string, res *Result) {
	for _, id := range ids {
		m := t.members[id]
		f.unlink(t, m)
		for c := range m.children {
			// Children not removed with it become orphans; callers
			// remove whole subtrees, so this only guards the counts.
			if cm := t.members[c]; cm != nil && cm.parent == id {
				f.unlink(t, cm)
			}
		}
	}
	for _, id := range ids {
		if m := t.members[id]; m != nil {
			t.setPending(m, "")
			if m.leaving {
				f.nleaving--
			}
			t.drop(m)
		}
		f.dropReservations(stream, id)
		f.dropPromises(stream, id)
		res.Removed = append(res.Removed, Member{stream, id})
	}
}

// ExpireOrphans tells orphans to rejoin: those waiting since before
// pendingBefore for a pending parent that has not said hello (or has not
// become a member of the stream) give up that edge (ReasonParentMissing:
// the parent may never come, e.g. it went to another server, and the
// relay finds one through candidates); those detached or last told before
// orphanBefore that did not rejoin after an earlier notice are told again
// (ReasonOrphaned). Their clock restarts at now.
func (f *Forest) ExpireOrphans(pendingBefore, orphanBefore, now time.Time) Result {
	var res Result
	streams := make([]string, 0, len(f.streams))
	for s := range f.streams {
		streams = append(streams, s)
	}
	sort.Strings(streams)
	for _, s := range streams {
		t := f.streams[s]
		var ids []string
		for id, m := range t.members {
			before := orphanBefore
			if m.pending != "" {
				before = pendingBefore
			}
			if m.parent == "" && m.orphanSince.Before(before) {
				ids = append(ids, id)
			}
		}
		sort.Strings(ids)
		for _, id := range ids {
			m := t.members[id]
			reason := ReasonOrphaned
			if m.pending != "" {
				reason = ReasonParentMissing
			}
			t.setPending(m, "")
			m.orphanSince = now
			res.notify(0, Notice{Stream: s, Node: id, Reason: reason})
		}
	}
	return res
}
