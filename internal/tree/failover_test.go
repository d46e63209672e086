package tree

import (
	"fmt"
	"testing"
	"time"
)

// TestHelloAnyDeclarationsAnyOrder: hellos from relays that reach a
// standby server in any order, declaring any parents (a relay, the origin,
// one that never says hello, or ones that make a cycle), never leave the
// forest invalid (no cycle, no member under a non-member), and each relay
// ends under the parent it declared, or pending on one that has not said
// hello, or told to rejoin: none is left detached in silence.
func TestHelloAnyDeclarationsAnyOrder(t *testing.T) {
	ids := []string{"a", "b", "c", "d"}
	choices := []string{Origin, "a", "b", "c", "d", "z"} // z never says hello
	n := len(ids)
	total := 1
	for range ids {
		total *= len(choices)
	}
	for code := 0; code < total; code++ {
		parents := map[string]string{}
		c := code
		self := false
		for _, id := range ids {
			parents[id] = choices[c%len(choices)]
			c /= len(choices)
			self = self || parents[id] == id
		}
		if self { // refused by the wire codec before the tree sees it
			continue
		}
		perm(n, func(order []int) {
			f := New(1)
			told := map[string]string{}
			for _, i := range order {
				id := ids[i]
				res, err := f.Hello(NodeInfo{ID: id, RTSP: rtspOf(id), Willing: true, Capacity: 1},
					[]Edge{{Stream: S, Node: id, Parent: parents[id]}}, Repair, t0)
				if err != nil {
					t.Fatal(err)
				}
				if err := f.Validate(); err != nil {
					t.Fatalf("declared %v, order %v: %v", parents, order, err)
				}
				for _, nt := range res.Notices() {
					told[nt.Node] = nt.Reason
				}
			}
			ts, _ := f.Tree(S)
			for _, m := range ts.Nodes {
				switch {
				case m.Parent == parents[m.Node]:
				case m.Parent == "" && m.PendingParent == parents[m.Node] && m.PendingParent == "z":
				case m.Parent == "" && told[m.Node] != "":
				default:
					t.Fatalf("declared %v, order %v: %s ends %s, told %q\n%s", parents, order, m.Node,
						fmt.Sprintf("parent %q pending %q", m.Parent, m.PendingParent), told[m.Node], shape(f, S))
				}
			}
		})
	}
}

// A member pending on a parent that has not said hello and an orphan
// that did not rejoin are held for bounds of their own.
func TestExpirePendingAndOrphansApart(t *testing.T) {
	f := forest(t, 4, "x:2 y:2", "x<origin y<x")
	if _, err := f.RemoveNode("x", Repair, t0); err != nil { // y: orphan since t0
		t.Fatal(err)
	}
	hello(t, f, helloSpec{"b", 2, "a"}) // b: pending on a since t0
	later := t0.Add(time.Second)
	if got := groups(f.ExpireOrphans(later, t0, later).Groups); got != "b:parent_missing" {
		t.Fatalf("pending bound over, orphan bound not: told %q", got)
	}
	mustValid(t, f)
	if got := groups(f.ExpireOrphans(t0, later, later).Groups); got != "y:orphaned" {
		t.Fatalf("orphan bound over: told %q", got)
	}
}
