// Package tree holds the overlay's distribution trees: the registered
// nodes and, for every stream, which node receives it from which parent.
// It is pure logic (no goroutines, no I/O, no clock of its own): the
// server's state goroutine owns one Forest and feeds it what the relays
// say; every mutation returns a Result telling the caller what changed and
// whom to send a reconnect to.
//
// Each stream's tree is rooted at the origin (id Origin, level 0), whose
// direct children are limited by the origin capacity. A member is either
// attached (its parent chain reaches the origin) or detached: an orphan is
// a member without parent (its parent failed or left, or its declared
// parent has not said hello yet) and the members below an orphan keep
// their edges, so a subtree survives a repair and comes back whole when its
// root rejoins. Only attached members are offered as candidates or
// accepted as parents by Join.
//
// Capacity is a node's maximum number of children over all streams (each
// child is one more egress copy); the origin's capacity counts its direct
// children per stream. Two things adjust the count while a handover is
// under way (Handover): a leaving member's slot at its parent counts as
// free (it goes within the handover timeout, and one of its own children
// may take its place: the parent briefly serves one copy more), and a
// slot promised to a moving child counts as taken for everyone else.
//
// Graceful handover: Handover marks a member leaving (it is no longer a
// candidate nor accepted as a parent) and plans a new parent for each of
// its children, reserving the slot it promises. The children stay below
// the leaving member, so the tree stays valid, until each one's Join moves
// it with its subtree; Leave then removes the member (and EndHandover
// releases what is still reserved when the caller gives up waiting).
//
// Rebuild after a server restart: Hello takes the edges a relay declares.
// An edge whose parent is already a member (attached or not) or the
// origin is re-created at once; otherwise the relay becomes an orphan with
// a pending parent, and the edge is completed as soon as that parent
// becomes a member, whatever order the relays reconnect in. Nobody is told
// anything unless an edge is impossible (a cycle, or a parent over
// capacity) or the parent is still missing after a grace period
// (ExpireOrphans).
package tree

import (
	"errors"
	"fmt"
	"net/netip"
	"time"
)

// Origin is the id of the origin in every tree.
const Origin = "origin"

// Policy is what happens to a failed (or leaving) node's subtree.
type Policy string

// Recovery policies.
const (
	// Repair removes only the node; its children become orphans and are
	// told to rejoin at once; deeper members keep their parents.
	Repair Policy = "repair"
	// Drop removes the node's whole subtree and tells nobody: each relay
	// notices its stall and rejoins by itself.
	Drop Policy = "drop"
	// Reconnect removes the subtree and tells every member of it.
	Reconnect Policy = "reconnect"
	// Gradual removes the subtree and tells the children first, then the
	// next level one step later, and so on down (Result.Groups).
	Gradual Policy = "gradual"
)

// Policies lists the valid policies, default first.
var Policies = []Policy{Repair, Drop, Reconnect, Gradual}

// ParsePolicy returns the policy named s.
func ParsePolicy(s string) (Policy, error) {
	for _, p := range Policies {
		if string(p) == s {
			return p, nil
		}
	}
	return "", fmt.Errorf("unknown recovery policy %q (want repair, drop, reconnect or gradual)", s)
}

// Reasons given in a Notice; the same strings as the wire protocol's.
const (
	ReasonParentFailed   = "parent_failed"
	ReasonParentLeft     = "parent_left"
	ReasonAncestorFailed = "ancestor_failed"
	ReasonParentMissing  = "parent_missing"
	ReasonRejected       = "rejected"
	ReasonCapacity       = "capacity"
	ReasonOrphaned       = "orphaned"
	ReasonDisplaced      = "displaced"
)

// Errors returned by the mutations; they change nothing when they fail.
var (
	ErrUnknownNode   = errors.New("unknown node")
	ErrUnknownParent = errors.New("unknown parent")
	ErrNotActive     = errors.New("parent not active on the stream")
	ErrCycle         = errors.New("would create a cycle")
	ErrFull          = errors.New("parent has no free capacity")
	ErrNotWilling    = errors.New("parent does not relay")
	ErrNotInStream   = errors.New("node not in the stream's tree")
	ErrReserved      = errors.New("node id reserved for the origin")
	ErrQuarantined   = errors.New("parent is quarantined")
)

// NodeInfo is what a node says about itself in its hello.
type NodeInfo struct {
	ID       string
	RTSP     string // host:port of its mediator
	Probe    string // host:port of its UDP probe responder
	Willing  bool
	Capacity int // max children over all streams
	Cores    int
	// Addr is the address the node connects to the server from (its
	// public address behind a NAT); the zero Addr if unknown. It is the
	// locality hint of SetNearby.
	Addr netip.Addr
}

// Node is a registered node.
type Node struct {
	NodeInfo
	CPU        float64   // last reported busy fraction
	Clients    int       // last reported readers over all streams
	LastReport time.Time // zero before the first report
	// Quarantine says why the node is not offered as a parent nor
	// accepted as a new one ("" if it is): see Forest.Quarantine.
	Quarantine string

	children int // children over all trees, kept by link/unlink
	promised int // slots promised under it (Promise), over all streams
}

// Report is a node's periodic report.
type Report struct {
	CPU     float64
	Willing *bool // nil: unchanged
	Clients int
	Streams []StreamStats
}

// StreamStats is one stream's part of a report.
type StreamStats struct {
	Stream  string
	Parent  string
	Level   int
	Readers int
	Loss    float64
	Bitrate float64
	RTT     float64 // ms to Parent, as last measured (0: unknown)
}

// Edge is one declared edge: Node receives Stream from Parent.
type Edge struct {
	Stream string
	Node   string
	Parent string
	RTT    float64 // ms from Node to Parent as Node measured it (0: unknown)
}

// Member names a node in one stream's tree.
type Member struct {
	Stream string
	Node   string
}

// Notice asks the caller to send a reconnect.
type Notice struct {
	Stream string
	Node   string
	Reason string
	// Parent is the parent the node had when the notice was decided (the
	// failed or leaving node for its children), so a relay that has moved
	// since can tell the notice is stale.
	Parent string
	// Home is, under Gradual below the first level, the parent the node
	// had before the failure: the server tells the node as soon as Home
	// has rejoined, rather than at its level's step, so it finds its slot
	// there kept and its old parent already in the tree.
	Home string
	// Target, if set, is the parent to move under (make-before-break):
	// the relay that displaced the node (ReasonDisplaced).
	Target string
}

// Change is an edge created or moved.
type Change struct {
	Stream  string
	Node    string
	Parent  string
	From    string // previous parent; "" if the node was new or an orphan
	Level   int
	Subtree int // members that moved with it, itself included
}

// Result is what a mutation did.
type Result struct {
	Changes  []Change // edges created or moved, in order
	Pending  []Edge   // edges waiting for their parent to appear
	Orphaned []Member // members detached from their parent
	Removed  []Member // members taken out of a tree
	// Groups are the reconnects to send: Groups[0] now, Groups[i] one
	// policy step after Groups[i-1] (only Gradual makes more than one).
	Groups [][]Notice
	// Displaced are the slots taken by displacement (JoinVia).
	Displaced []Displacement
}

func (r *Result) notify(depth int, n Notice) {
	for len(r.Groups) <= depth {
		r.Groups = append(r.Groups, nil)
	}
	r.Groups[depth] = append(r.Groups[depth], n)
}

// Notices returns every notice of every group, in order.
func (r *Result) Notices() []Notice {
	var out []Notice
	for _, g := range r.Groups {
		out = append(out, g...)
	}
	return out
}

// member is a node's place in one stream's tree.
type member struct {
	id          string
	parent      string // Origin, a member's id, or "" (orphan)
	level       int    // kept relative inside a detached subtree
	children    map[string]struct{}
	pending     string    // orphans only: declared parent not yet a member
	orphanSince time.Time // orphans only: when it was last detached or told
	leaving     bool      // handing its children over (Handover); takes no new ones
	node        *Node     // its registered node (a member never outlives it)
	inTop       bool      // in tree.top
	idx         int       // its index in tree.list
	stats       StreamStats
	statsAt     time.Time
	rtt         float64         // ms to its parent as the relay measured it (0: unknown); set by tree.setRTT
	farKids     int             // children far from it (displace.go's far)
	nearKey     [2]netip.Prefix // its buckets in tree.near (nearby.go); invalid: none
	nearIdx     [2]int          // its indexes there
}

// tree is one stream's tree.
type tree struct {
	origin   map[string]struct{} // the origin's children
	members  map[string]*member
	list     []*member                  // the members again, for scans (a slice walks far faster than a map)
	npending int                        // members with a pending parent (setPending): lets joins skip a scan
	top      []*member                  // the best offerable members, ranked (topcache.go)
	topValid bool                       // top is up to date
	topAll   bool                       // top holds every offerable member
	near     map[netip.Prefix][]*member // members by address prefix (nearby.go)
	nearTurn uint64                     // where the next scan of a bucket starts
}

// Forest is every node and every stream's tree.
type Forest struct {
	originCap int
	nodes     map[string]*Node
	streams   map[string]*tree
	reserved  map[Member]reservation  // slots promised by handovers, by the child they are for
	expected  map[Member]expectation  // slots kept for the members of a gradual rebuild, by child
	heldUnder map[heldKey]int         // reserved and expected, counted by parent (held.go)
	promises                          // slots offered to requesters between candidates and join
	nearby    int                     // near candidates added to the k best (SetNearby)
	displace  int                     // full parents offered for displacement (SetDisplace)
	displaced map[Member]displacement // children told to make room, by child (displace.go)

	// Counts that let the hot paths (Candidates, Join) skip walks and
	// scans when there is nothing to find, which is almost always.
	nleaving     int // members marked leaving, over all trees
	nquarantined int // nodes with a Quarantine reason
}

// expectation keeps a slot under a child's old parent while a gradual
// rebuild works its way down to the child, so the relays told first (the
// failed node's children) do not take the places of those told later and
// the rebuilt tree keeps the old one's shape.
type expectation struct {
	parent string
	until  time.Time
}

// New returns an empty Forest whose origin accepts originCapacity direct
// children per stream.
func New(originCapacity int) *Forest {
	return &Forest{originCap: originCapacity, nodes: map[string]*Node{}, streams: map[string]*tree{},
		reserved: map[Member]reservation{}, expected: map[Member]expectation{}, heldUnder: map[heldKey]int{},
		promises: newPromises(), displaced: map[Member]displacement{}}
}

// OriginCapacity returns the origin's capacity per stream.
func (f *Forest) OriginCapacity() int { return f.originCap }

func (f *Forest) tree(stream string) *tree {
	t := f.streams[stream]
	if t == nil {
		t = &tree{origin: map[string]struct{}{}, members: map[string]*member{}}
		f.streams[stream] = t
	}
	return t
}

// gc forgets a stream's tree once nobody is in it.
func (f *Forest) gc(stream string) {
	if t := f.streams[stream]; t != nil && len(t.members) == 0 {
		delete(f.streams, stream)
	}
}

func (t *tree) add(id string, n *Node) *member {
	m := &member{id: id, children: map[string]struct{}{}, node: n, idx: len(t.list)}
	t.members[id] = m
	t.list = append(t.list, m)
	t.nearIndex(m)
	return m
}

// drop forgets member m.
func (t *tree) drop(m *member) {
	delete(t.members, m.id)
	t.nearUnindex(m)
	last := t.list[len(t.list)-1]
	t.list[m.idx], last.idx = last, m.idx
	t.list[len(t.list)-1] = nil
	t.list = t.list[:len(t.list)-1]
}

// setPending sets the parent m waits for ("" none), keeping the count.
func (t *tree) setPending(m *member, parent string) {
	recount(&t.npending, m.pending, parent)
	m.pending = parent
}

// recount keeps n, a count of non-empty values, as one changes from old
// to new.
func recount(n *int, old, new string) {
	switch {
	case old == "" && new != "":
		*n++
	case old != "" && new == "":
		*n--
	}
}

// link makes parent the parent of m (m must have none) and sets m's level.
func (f *Forest) link(t *tree, m *member, parent string) {
	m.parent = parent
	t.setPending(m, "")
	m.orphanSince = time.Time{}
	if parent == Origin {
		t.origin[m.id] = struct{}{}
		m.level = 1
		return
	}
	pm := t.members[parent]
	pm.children[m.id] = struct{}{}
	f.nodes[parent].children++
	m.level = pm.level + 1
	f.refreshNode(f.nodes[parent])
}

// unlink detaches m from its parent, leaving it an orphan.
func (f *Forest) unlink(t *tree, m *member) {
	switch m.parent {
	case "":
	case Origin:
		delete(t.origin, m.id)
	default:
		if pm := t.members[m.parent]; pm != nil {
			delete(pm.children, m.id)
		}
		if pn := f.nodes[m.parent]; pn != nil {
			pn.children--
			defer f.refreshNode(pn)
		}
	}
	t.setRTT(m, 0) // the edge's measure goes with it
	t.invalidate() // m's subtree is detached
	m.parent = ""
}

// relevel recomputes the levels below m and returns the subtree's size.
func (t *tree) relevel(m *member) int {
	n := 0
	stack := []*member{m}
	for len(stack) > 0 {
		cur := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		n++
		for c := range cur.children {
			cm := t.members[c]
			cm.level = cur.level + 1
			stack = append(stack, cm)
		}
	}
	return n
}

// attached reports whether id's parent chain reaches the origin.
func (t *tree) attached(id string) bool {
	for steps := 0; steps <= len(t.members); steps++ {
		m := t.members[id]
		if m == nil || m.parent == "" {
			return false
		}
		if m.parent == Origin {
			return true
		}
		id = m.parent
	}
	return false // a cycle; Validate reports it
}

// descends reports whether id is anc or below anc.
func (t *tree) descends(id, anc string) bool {
	for steps := 0; steps <= len(t.members); steps++ {
		if id == anc {
			return true
		}
		m := t.members[id]
		if m == nil || m.parent == "" || m.parent == Origin {
			return false
		}
		id = m.parent
	}
	return false
}

// subtreeSize counts m and everything below it.
func (t *tree) subtreeSize(id string) int {
	m := t.members[id]
	if m == nil {
		return 0
	}
	n := 1
	for c := range m.children {
		n += t.subtreeSize(c)
	}
	return n
}
