package tree

import "fmt"

// Quarantine takes node, and the members below it, out of the parents
// offered and accepted (reason says why, for the API), or puts them back
// (reason ""). Its children stay where they are; the caller decides when (the server: when children
// stall under it while it stays connected, and until its own reports are
// clean). The mark goes with the node: a node that leaves the overlay and
// says hello again starts clean.
func (f *Forest) Quarantine(node, reason string) error {
	n := f.nodes[node]
	if n == nil {
		return fmt.Errorf("%w %q", ErrUnknownNode, node)
	}
	recount(&f.nquarantined, n.Quarantine, reason)
	n.Quarantine = reason
	f.invalidateAll() // its subtree is (or is no longer) offered
	return nil
}

// quarantinedAbove returns id, or the first of its ancestors in t, that
// is quarantined ("" if none): what is below a quarantined member gets
// its stream through it.
func (f *Forest) quarantinedAbove(t *tree, id string) string {
	if f.nquarantined == 0 {
		return ""
	}
	for steps := 0; steps <= len(t.members); steps++ {
		if n := f.nodes[id]; n != nil && n.Quarantine != "" {
			return id
		}
		m := t.members[id]
		if m == nil || m.parent == "" || m.parent == Origin {
			return ""
		}
		id = m.parent
	}
	return ""
}

// Quarantined reports whether node is quarantined.
func (f *Forest) Quarantined(node string) bool {
	n := f.nodes[node]
	return n != nil && n.Quarantine != ""
}

// Parent returns node's parent in stream's tree ("" for an orphan), false
// if node is not a member.
func (f *Forest) Parent(stream, node string) (string, bool) {
	if t := f.streams[stream]; t != nil {
		if m := t.members[node]; m != nil {
			return m.parent, true
		}
	}
	return "", false
}
