package tree

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/ocm-overlay/ocm/internal/wire"
)

// joinVia joins with a measured RTT, failing the test on an error.
func joinVia(t *testing.T, f *Forest, node, parent string, via Via) Result {
	t.Helper()
	res, err := f.JoinVia(S, node, parent, via, t0)
	if err != nil {
		t.Fatalf("%s joins %s via %+v: %v", node, parent, via, err)
	}
	mustValid(t, f)
	return res
}

// wantShape fails the test unless stream S's tree is want.
func wantShape(t *testing.T, f *Forest, when, want string) {
	t.Helper()
	if got := shape(f, S); got != want {
		t.Fatalf("%s: %s, want %s", when, got, want)
	}
}

// wantNotices fails the test unless res sends want.
func wantNotices(t *testing.T, res Result, want [][]Notice) {
	t.Helper()
	if !reflect.DeepEqual(res.Groups, want) {
		t.Fatalf("notices %+v, want %+v", res.Groups, want)
	}
}

// wantNoExpiry fails the test if ExpireDisplaced at at does anything.
func wantNoExpiry(t *testing.T, f *Forest, at time.Time, when string) {
	t.Helper()
	if res := f.ExpireDisplaced(at); len(res.Orphaned)+len(res.Groups) != 0 {
		t.Fatalf("%s: ExpireDisplaced did %+v", when, res)
	}
}

// farOrigin is the case: the origin takes one relay, a far one
// (a, 150 ms from it) took it; b relays and has room.
func farOrigin(t *testing.T, nodes string) *Forest {
	t.Helper()
	f := forest(t, 1, nodes, "")
	f.SetDisplace(2)
	joinVia(t, f, "a", Origin, Via{RTT: 150})
	return f
}

// A relay much closer to the full origin than its far child takes the
// child's slot: the child is told to move under it (a slot reserved
// there), the origin serves one over its capacity until the child has
// moved, then is back within it.
func TestJoinViaDisplaces(t *testing.T) {
	f := farOrigin(t, "a:2 b:1 c:2")
	res := joinVia(t, f, "b", Origin, Via{RTT: 5, Displace: true})
	wantD := []Displacement{{Stream: S, Node: "a", From: Origin, By: "b", RTT: 5, Worst: 150}}
	if !reflect.DeepEqual(res.Displaced, wantD) {
		t.Fatalf("displaced %+v, want %+v", res.Displaced, wantD)
	}
	wantNotices(t, res, [][]Notice{{{Stream: S, Node: "a", Reason: ReasonDisplaced, Parent: Origin, Target: "b"}}})
	wantShape(t, f, "while a moves", "a<origin@1 b<origin@1")
	if p, ok := f.Reserved(S, "a"); !ok || p != "b" {
		t.Fatalf("a's reserved parent %q %v, want b", p, ok)
	}
	// b's only slot is a's, the origin's is b's: c finds neither.
	for _, p := range []string{Origin, "b"} {
		if _, err := f.Join(S, "c", p); !errors.Is(err, ErrFull) {
			t.Fatalf("c joins %s while a moves: %v, want full", p, err)
		}
	}
	for _, c := range f.Candidates(S, "c", nil, 0) {
		if c.ID == Origin || c.ID == "b" {
			t.Fatalf("c offered %+v while a moves", c)
		}
	}
	joinVia(t, f, "a", "b", Via{RTT: 3})
	wantShape(t, f, "after a moved", "a<b@2 b<origin@1")
	if _, ok := f.Reserved(S, "a"); ok {
		t.Fatal("a's slot still reserved after it moved")
	}
	if _, err := f.Join(S, "c", Origin); !errors.Is(err, ErrFull) {
		t.Fatalf("c joins the origin after a moved: %v, want full (capacity 1, b there)", err)
	}
	if p := f.Path(S, "a"); p != 8 {
		t.Fatalf("a's path %v, want 5+3", p)
	}
	wantNoExpiry(t, f, t0.Add(DisplaceHold), "after a moved")
}

// Displacement is refused, changing nothing, unless the requester asks,
// is close enough (wire.Displaces), relays (willing, capacity above 0),
// and no other child of that parent is moving away already.
func TestJoinViaDisplaceRefused(t *testing.T) {
	for _, tc := range []struct {
		name   string
		nodes  string
		origin int
		setup  string // joins after a's, each with RTT 5 (a displacing one with Displace)
		node   string
		via    Via
		msg    string // in the error
	}{
		{"not asked", "a:2 b:2", 1, "", "b", Via{RTT: 5}, "slots taken"},
		{"not close enough", "a:2 b:2", 1, "", "b", Via{RTT: 100, Displace: true}, "not close enough"},
		{"gain too small", "a:2 b:2", 1, "", "b", Via{RTT: 145, Displace: true}, "not close enough"},
		{"rtt unknown", "a:2 b:2", 1, "", "b", Via{Displace: true}, "not close enough"},
		{"passive requester", "a:2 b:2-", 1, "", "b", Via{RTT: 5, Displace: true}, "does not relay"},
		{"requester of capacity 0", "a:2 b:0", 1, "", "b", Via{RTT: 5, Displace: true}, "does not relay"},
		{"another under way", "a:2 x:2 b:2 c:2", 2, "x<origin b<origin!", "c", Via{RTT: 5, Displace: true}, "already moving"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := forest(t, tc.origin, tc.nodes, "")
			f.SetDisplace(2)
			joinVia(t, f, "a", Origin, Via{RTT: 150})
			for _, j := range strings.Fields(tc.setup) {
				j, displace := strings.CutSuffix(j, "!")
				n, p, _ := strings.Cut(j, "<")
				rtt := 5.0
				if n == "x" {
					rtt = 120
				}
				joinVia(t, f, n, p, Via{RTT: rtt, Displace: displace})
			}
			before, reserved := shape(f, S), len(f.reserved)
			res, err := f.JoinVia(S, tc.node, Origin, tc.via, t0)
			if !errors.Is(err, ErrFull) || !strings.Contains(err.Error(), tc.msg) {
				t.Fatalf("err %v, want full saying %q", err, tc.msg)
			}
			if len(res.Displaced)+len(res.Groups)+len(res.Changes) != 0 {
				t.Fatalf("a refused join did %+v", res)
			}
			if got := shape(f, S); got != before || len(f.reserved) != reserved {
				t.Fatalf("tree %s (%d reserved), was %s (%d)", got, len(f.reserved), before, reserved)
			}
			mustValid(t, f)
		})
	}
}

// A requester without a free slot may displace too: the child is told
// to move without a target (it resolves, leaving out the parent it
// leaves), nothing is reserved for it, and the parent is one over its
// capacity until it has found a place.
func TestDisplaceWithoutRoom(t *testing.T) {
	f := farOrigin(t, "a:2 b:1 c:2 d:2")
	joinVia(t, f, "b", "a", Via{RTT: 140})
	joinVia(t, f, "c", "b", Via{RTT: 2})
	res := joinVia(t, f, "b", Origin, Via{RTT: 5, Displace: true})
	wantNotices(t, res, [][]Notice{{{Stream: S, Node: "a", Reason: ReasonDisplaced, Parent: Origin}}})
	wantShape(t, f, "while a moves", "a<origin@1 b<origin@1 c<b@2")
	if _, ok := f.Reserved(S, "a"); ok {
		t.Fatal("a slot reserved for a under b, which has none free")
	}
	if _, err := f.Join(S, "d", Origin); !errors.Is(err, ErrFull) {
		t.Fatalf("d joins the origin while a moves: %v, want full", err)
	}
	joinVia(t, f, "a", "c", Via{RTT: 30})
	wantShape(t, f, "after a found a place", "a<c@3 b<origin@1 c<b@2")
	wantNoExpiry(t, f, t0.Add(DisplaceHold), "after a moved")
}

// A displaced child that has not moved when DisplaceHold is over is
// detached and told to rejoin; the slot kept for it is given up and its
// old parent is within its capacity again.
func TestExpireDisplaced(t *testing.T) {
	f := farOrigin(t, "a:2 b:1 c:2")
	joinVia(t, f, "b", Origin, Via{RTT: 5, Displace: true})
	wantNoExpiry(t, f, t0.Add(DisplaceHold-1), "before the hold's end")
	res := f.ExpireDisplaced(t0.Add(DisplaceHold))
	if !reflect.DeepEqual(res.Orphaned, []Member{{S, "a"}}) {
		t.Fatalf("orphaned %+v, want a", res.Orphaned)
	}
	wantNotices(t, res, [][]Notice{{{Stream: S, Node: "a", Reason: ReasonCapacity, Parent: Origin}}})
	wantShape(t, f, "after the hold", "a<-@1 b<origin@1")
	if _, ok := f.Reserved(S, "a"); ok {
		t.Fatal("a's slot under b still reserved")
	}
	mustValid(t, f)
	if _, err := f.Join(S, "c", "b"); err != nil {
		t.Fatalf("b's slot is free again, yet: %v", err)
	}
	wantNoExpiry(t, f, t0.Add(2*DisplaceHold), "expired twice")
}

// A requester below the far child (its grandchild here) displaces it:
// it moves up to the origin with its own subtree, the child is told to
// move under it, and no cycle is made, before or after the move.
func TestDisplaceOwnAncestor(t *testing.T) {
	f := farOrigin(t, "a:2 b:2 c:2")
	joinVia(t, f, "c", "a", Via{RTT: 2})
	joinVia(t, f, "b", "c", Via{RTT: 2})
	res := joinVia(t, f, "b", Origin, Via{RTT: 5, Displace: true})
	if len(res.Displaced) != 1 || res.Displaced[0].Node != "a" || res.Displaced[0].By != "b" {
		t.Fatalf("displaced %+v, want a by b", res.Displaced)
	}
	wantShape(t, f, "while a moves", "a<origin@1 b<origin@1 c<a@2")
	joinVia(t, f, "a", "b", Via{RTT: 3})
	wantShape(t, f, "after a moved", "a<b@2 b<origin@1 c<a@3")
	if p := f.Path(S, "c"); p != 5+3+2 {
		t.Fatalf("c's path %v, want 10", p)
	}
}

// Path sums the RTTs up the chain, unknown ones as 0; reports update
// a member's RTT to the parent they name, if it is its parent; the
// candidates carry their path.
func TestPath(t *testing.T) {
	f := forest(t, 4, "a:2 b:2 c:2 d:2 e:2", "")
	joinVia(t, f, "a", Origin, Via{RTT: 10})
	joinVia(t, f, "b", "a", Via{RTT: 20})
	joinVia(t, f, "c", "b", Via{RTT: 30})
	if _, err := f.Join(S, "d", "c"); err != nil {
		t.Fatal(err)
	}
	for id, want := range map[string]float64{Origin: 0, "a": 10, "b": 30, "c": 60, "d": 60, "x": 0} {
		if got := f.Path(S, id); got != want {
			t.Errorf("path of %s %v, want %v", id, got, want)
		}
	}
	report := func(parent string, rtt float64) {
		t.Helper()
		if err := f.Report("c", Report{Streams: []StreamStats{{Stream: S, Parent: parent, Level: 3, RTT: rtt}}}, t0); err != nil {
			t.Fatal(err)
		}
	}
	report("b", 35)
	report("a", 99) // not its parent: ignored
	if got := f.Path(S, "d"); got != 65 {
		t.Fatalf("d's path after c reported 35 ms to b: %v, want 65", got)
	}
	// A move makes the RTT unknown until measured again.
	if _, err := f.Join(S, "c", "a"); err != nil {
		t.Fatal(err)
	}
	if got := f.Path(S, "c"); got != 10 {
		t.Fatalf("c's path after a move without a measure: %v, want 10", got)
	}
	// The tree API carries them (to 0.1 ms), detached members none.
	if err := f.Report("a", Report{Streams: []StreamStats{{Stream: S, Parent: Origin, Level: 1, RTT: 10.04}}}, t0); err != nil {
		t.Fatal(err)
	}
	if _, err := f.Leave(S, "b", Repair, t0); err != nil {
		t.Fatal(err)
	}
	snap, _ := f.Tree(S)
	api := map[string]float64{}
	for _, m := range snap.Nodes {
		api[m.Node] = m.PathMs
	}
	if want := map[string]float64{"a": 10, "c": 10, "d": 10}; !reflect.DeepEqual(api, want) {
		t.Fatalf("tree API paths %v, want %v", api, want)
	}
	if _, err := f.Join(S, "b", "a"); err != nil {
		t.Fatal(err)
	}
	paths := map[string]float64{}
	for _, c := range f.Candidates(S, "e", nil, 0) {
		paths[c.ID] = c.Path
	}
	want := map[string]float64{Origin: 0, "b": 10.04, "c": 10.04, "d": 10.04} // a is full
	if !reflect.DeepEqual(paths, want) {
		t.Fatalf("candidates' paths %v, want %v", paths, want)
	}
}

// The full origin is offered for displacement, with its farthest child's
// RTT, only to a requester that relays, never to one of its own
// children, and not at all with SetDisplace(-1); a full relay
// near the top is offered as well.
func TestCandidatesOfferDisplaceable(t *testing.T) {
	// worst returns the RTT id is offered to requester for displacement
	// with, 0 if it is not.
	worst := func(f *Forest, requester, id string) float64 {
		for _, c := range f.Candidates(S, requester, nil, 0) {
			if c.ID == id {
				return c.Worst
			}
		}
		return 0
	}
	f := farOrigin(t, "a:1 b:2 p:2- z:0")
	if w := worst(f, "b", Origin); w != 150 {
		t.Fatalf("origin offered to b for displacement at %v, want 150", w)
	}
	for _, r := range []string{"p", "z", "a"} { // passive, capacity 0, its own child
		if w := worst(f, r, Origin); w != 0 {
			t.Errorf("full origin offered to %s for displacement (worst %v)", r, w)
		}
	}
	// The origin's two slots: far a, near k; b under a fills a.
	f2 := forest(t, 2, "a:1 b:2 k:2 e:2", "")
	f2.SetDisplace(2)
	joinVia(t, f2, "a", Origin, Via{RTT: 150})
	joinVia(t, f2, "k", Origin, Via{RTT: 5})
	joinVia(t, f2, "b", "a", Via{RTT: 40})
	if w := worst(f2, "k", Origin); w != 0 {
		t.Errorf("full origin offered to its own child k for displacement (worst %v)", w)
	}
	if w := worst(f2, "k", "a"); w != 40 {
		t.Errorf("full a offered to k for displacement at %v, want 40", w)
	}
	if w := worst(f2, "e", Origin); w != 150 {
		t.Errorf("full origin offered to e for displacement at %v, want 150", w)
	}
	f2.SetDisplace(0)
	if w := worst(f2, "e", "a"); w != 0 {
		t.Errorf("full a offered with SetDisplace(0) (worst %v)", w)
	}
	if w := worst(f2, "e", Origin); w != 150 {
		t.Errorf("with SetDisplace(0) the origin is still offered for displacement: worst %v, want 150", w)
	}
	f2.SetDisplace(-1)
	for _, c := range f2.Candidates(S, "e", nil, 0) {
		if c.Worst != 0 {
			t.Errorf("with SetDisplace(-1), %s offered for displacement (worst %v)", c.ID, c.Worst)
		}
	}
	if !wire.Displaces(5, 150) || wire.Displaces(100, 150) {
		t.Fatal("the rule these cases are built on changed")
	}
}

// A hello's edges carry their RTT, so a restarted or standby server
// knows the paths at once, not a report interval later; an edge whose
// parent has not said hello yet learns it from the next report.
func TestHelloEdgeRTT(t *testing.T) {
	f := New(4)
	hello := func(id string, edges ...Edge) {
		t.Helper()
		if _, err := f.Hello(NodeInfo{ID: id, Willing: true, Capacity: 2}, edges, Repair, t0); err != nil {
			t.Fatal(err)
		}
	}
	hello("a", Edge{Stream: S, Parent: Origin, RTT: 12})
	hello("b", Edge{Stream: S, Parent: "a", RTT: 30})
	hello("c", Edge{Stream: S, Parent: "d", RTT: 7}) // d comes later
	hello("d", Edge{Stream: S, Parent: "b", RTT: 5})
	for id, want := range map[string]float64{"a": 12, "b": 42, "d": 47, "c": 47} {
		if got := f.Path(S, id); got != want {
			t.Errorf("path of %s after the hellos: %v, want %v", id, got, want)
		}
	}
	if _, worst := f.farthestChild(f.streams[S], S, "a", ""); worst != 30 {
		t.Errorf("a's farthest child at %v ms, want 30 (b's hello)", worst)
	}
}
