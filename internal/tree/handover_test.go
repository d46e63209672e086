package tree

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

// moves renders a plan as "child>target@level", "child>-" without target.
func moves(ms []Move) string {
	var parts []string
	for _, m := range ms {
		if m.Target == "" {
			parts = append(parts, m.Node+">-")
			continue
		}
		parts = append(parts, fmt.Sprintf("%s>%s@%d", m.Node, m.Target, m.Level))
	}
	return strings.Join(parts, " ")
}

func unwilling(t *testing.T, f *Forest, ids ...string) {
	t.Helper()
	no := false
	for _, id := range ids {
		if err := f.Report(id, Report{Willing: &no}, t0); err != nil {
			t.Fatal(err)
		}
	}
}

func TestHandoverPlan(t *testing.T) {
	tests := []struct {
		name      string
		originCap int
		nodes     string
		joins     string
		unwilling []string
		leaving   string
		want      string
	}{
		{
			// The leaving node's slot at a is free: the first child takes
			// its place, the second goes one level down (a is then full).
			name: "grandparent slot, then next level", originCap: 1,
			nodes: "a:2 x:3 L:2 c1:0 c2:0", joins: "a<origin x<a L<a c1<L c2<L",
			leaving: "L", want: "c1>a@2 c2>x@3",
		},
		{
			name: "origin first while it has room", originCap: 2,
			nodes: "a:4 L:2 c1:2", joins: "a<origin L<a c1<L",
			leaving: "L", want: "c1>origin@1",
		},
		{
			// L under the origin: its slot there goes to its child.
			name: "origin slot of the leaving node", originCap: 1,
			nodes: "L:2 c1:2 c2:2", joins: "L<origin c1<L c2<L",
			leaving: "L", want: "c1>origin@1 c2>c1@2",
		},
		{
			// The only room is below c1 itself: c1 gets no target.
			name: "never below the child itself", originCap: 1,
			nodes: "a:1 L:1 c1:1 g:5", joins: "a<origin L<a c1<L g<c1", unwilling: []string{"a"},
			leaving: "L", want: "c1>-",
		},
		{
			// c1 (bigger subtree) is placed first, outside; c2 may then
			// go below c1, never the other way round.
			name: "below a sibling once it is placed", originCap: 1,
			nodes: "a:1 L:2 c1:3 c2:3 g:0", joins: "a<origin L<a c1<L c2<L g<c1",
			leaving: "L", want: "c1>a@2 c2>c1@3",
		},
		{
			// With no room outside, siblings could only go below each
			// other, which would be a cycle: nobody gets a target.
			name: "siblings never below each other", originCap: 1,
			nodes: "a:2 L:2 c1:3 c2:3", joins: "a<origin L<a c1<L c2<L", unwilling: []string{"a"},
			leaving: "L", want: "c1>- c2>-",
		},
		{
			// Three children, two free slots at x: the reservations keep
			// the third off x.
			name: "reservations", originCap: 1,
			nodes: "a:2 x:2 L:3 c1:0 c2:0 c3:0", joins: "a<origin x<a L<a c1<L c2<L c3<L", unwilling: []string{"a"},
			leaving: "L", want: "c1>x@3 c2>x@3 c3>-",
		},
		{
			name: "not below the leaving node's other members unless placed", originCap: 1,
			nodes: "a:1 L:2 c1:0 c2:0 x:5", joins: "a<origin L<a c1<L c2<L", unwilling: []string{"a"},
			leaving: "L", want: "c1>- c2>-",
		},
		{
			name: "lowest level, then least loaded", originCap: 1,
			nodes: "a:3 p:4 q:2 r:9 L:2 c1:0 c2:0", joins: "a<origin p<a q<a L<a r<p c1<L c2<L",
			unwilling: []string{"a"}, leaving: "L", want: "c1>q@3 c2>p@3",
		},
		{
			name: "a leaf", originCap: 1, nodes: "a:2 L:1", joins: "a<origin L<a", leaving: "L", want: "",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := forest(t, tt.originCap, tt.nodes, tt.joins)
			unwilling(t, f, tt.unwilling...)
			before := shape(f, S)
			ms, err := f.Handover(S, tt.leaving)
			if err != nil {
				t.Fatal(err)
			}
			mustValid(t, f)
			if got := moves(ms); got != tt.want {
				t.Errorf("plan %q, want %q", got, tt.want)
			}
			if got := shape(f, S); got != before {
				t.Errorf("handover changed the tree: %q, was %q", got, before)
			}
			if !f.Leaving(S, tt.leaving) {
				t.Error("not marked leaving")
			}
			for _, m := range ms {
				if p, ok := f.Reserved(S, m.Node); ok != (m.Target != "") || p != m.Target {
					t.Errorf("%s: reserved %q %v, planned %q", m.Node, p, ok, m.Target)
				}
				if m.Target != "" && m.Target != Origin && m.RTSP != rtspOf(m.Target) {
					t.Errorf("%s: rtsp %q", m.Node, m.RTSP)
				}
			}
			// Carry the plan out, in reverse order: every join is accepted
			// and the result is a valid tree without the leaving node.
			for i := len(ms) - 1; i >= 0; i-- {
				if m := ms[i]; m.Target != "" {
					if _, err := f.Join(S, m.Node, m.Target); err != nil {
						t.Fatalf("join %s<%s: %v", m.Node, m.Target, err)
					}
					mustValid(t, f)
				}
			}
			placed := 0
			for _, m := range ms {
				if m.Target != "" {
					placed++
					if lvl, _ := f.Level(S, m.Node); lvl != m.Level {
						t.Errorf("%s: level %d, planned %d", m.Node, lvl, m.Level)
					}
				}
			}
			if got := len(f.Children(S, tt.leaving)); got != len(ms)-placed {
				t.Errorf("%d children left under %s, want %d", got, tt.leaving, len(ms)-placed)
			}
			if placed == len(ms) {
				res, err := f.Leave(S, tt.leaving, Reconnect, t0)
				if err != nil || len(res.Notices()) != 0 {
					t.Fatalf("leave after the handover: %v %+v", err, res)
				}
				mustValid(t, f)
			}
		})
	}
}

// While a handover is under way, a reserved slot is taken for everyone but
// the child it is for, and the leaving node takes no new children.
func TestHandoverReservationsAndLeaving(t *testing.T) {
	f := forest(t, 1, "a:2 x:3 L:3 c1:0 c2:0 y:1 z:1", "a<origin x<a L<a c1<L c2<L y<x")
	unwilling(t, f, "a")
	ms, err := f.Handover(S, "L")
	if err != nil {
		t.Fatal(err)
	}
	if got := moves(ms); got != "c1>x@3 c2>x@3" {
		t.Fatalf("plan %q", got)
	}
	// z sees neither x (reserved full) nor L (leaving); y (level 3, free) yes.
	if got := ids(f.Candidates(S, "z", nil, 0)); got != "y" {
		t.Fatalf("z's candidates %q", got)
	}
	if _, err := f.Join(S, "z", "x"); !errors.Is(err, ErrFull) {
		t.Fatalf("z joining reserved x: %v", err)
	}
	if _, err := f.Join(S, "z", "L"); !errors.Is(err, ErrNotActive) {
		t.Fatalf("z joining leaving L: %v", err)
	}
	// c1 is offered its own slot, counted as free.
	cs := f.Candidates(S, "c1", nil, 0)
	if got := ids(cs); !strings.Contains(got, "x") {
		t.Fatalf("c1's candidates %q lack its reserved x", got)
	}
	for _, c := range cs {
		if c.ID == "x" && c.Clients != 2 {
			t.Fatalf("x offered to c1 with %d clients, want 2 (y and c2's reservation)", c.Clients)
		}
	}
	if _, err := f.Join(S, "c1", "x"); err != nil {
		t.Fatal(err)
	}
	if _, ok := f.Reserved(S, "c1"); ok {
		t.Fatal("c1's reservation kept after its join")
	}
	mustValid(t, f)
	// Ending the handover frees c2's slot for z.
	f.EndHandover(S, "L")
	if _, ok := f.Reserved(S, "c2"); ok {
		t.Fatal("reservation kept after EndHandover")
	}
	if !f.Leaving(S, "L") {
		t.Fatal("EndHandover cleared leaving")
	}
	if _, err := f.Join(S, "z", "x"); err != nil {
		t.Fatalf("z joining x after the handover ended: %v", err)
	}
	mustValid(t, f)
	snap, _ := f.Tree(S)
	for _, m := range snap.Nodes {
		if m.Leaving != (m.Node == "L") {
			t.Errorf("snapshot %s leaving=%v", m.Node, m.Leaving)
		}
	}
}

// Reservations go with the members they name.
func TestHandoverReservationsDropped(t *testing.T) {
	for _, tt := range []struct {
		name string
		do   func(f *Forest) error
	}{
		{"target removed", func(f *Forest) error { _, err := f.RemoveNode("x", Repair, t0); return err }},
		{"target leaves", func(f *Forest) error { _, err := f.Leave(S, "x", Repair, t0); return err }},
		{"child removed", func(f *Forest) error { _, err := f.RemoveNode("c1", Repair, t0); return err }},
		{"leaving node leaves", func(f *Forest) error { _, err := f.Leave(S, "L", Repair, t0); return err }},
		{"leaving node removed", func(f *Forest) error { _, err := f.RemoveNode("L", Repair, t0); return err }},
		{"another handover", func(f *Forest) error { _, err := f.Handover(S, "L"); return err }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f := forest(t, 1, "a:2 x:1 L:1 c1:0", "a<origin x<a L<a c1<L")
			unwilling(t, f, "a")
			if ms, _ := f.Handover(S, "L"); moves(ms) != "c1>x@3" {
				t.Fatalf("plan %q", moves(ms))
			}
			if err := tt.do(f); err != nil {
				t.Fatal(err)
			}
			mustValid(t, f)
			if tt.name == "another handover" {
				if p, ok := f.Reserved(S, "c1"); !ok || p != "x" {
					t.Fatalf("replanned reservation %q %v", p, ok)
				}
				return
			}
			if p, ok := f.Reserved(S, "c1"); ok {
				t.Fatalf("reservation under %s kept", p)
			}
		})
	}
}

func TestHandoverErrors(t *testing.T) {
	f := forest(t, 1, "a:2 b:1", "a<origin")
	if _, err := f.Handover(S, "nobody"); !errors.Is(err, ErrUnknownNode) {
		t.Fatalf("unknown: %v", err)
	}
	if _, err := f.Handover(S, "b"); !errors.Is(err, ErrNotInStream) {
		t.Fatalf("not a member: %v", err)
	}
	if _, err := f.Handover("rtsp://other/x", "a"); !errors.Is(err, ErrNotInStream) {
		t.Fatalf("no tree: %v", err)
	}
}

// A leaving child's slot counts as free: its parent may briefly have one
// child more than its capacity, and a capacity cut does not shed for it.
func TestLeavingChildSlot(t *testing.T) {
	f := forest(t, 1, "a:1 L:1 c:0 z:0", "a<origin L<a c<L")
	if _, err := f.Handover(S, "L"); err != nil {
		t.Fatal(err)
	}
	if _, err := f.Join(S, "c", "a"); err != nil { // takes L's place
		t.Fatal(err)
	}
	mustValid(t, f)
	if _, err := f.Join(S, "z", "a"); !errors.Is(err, ErrFull) {
		t.Fatalf("z: %v", err)
	}
	res, err := f.Hello(NodeInfo{ID: "a", RTSP: rtspOf("a"), Willing: true, Capacity: 1}, []Edge{{Stream: S, Parent: Origin}}, Repair, t0)
	if err != nil || len(res.Orphaned) != 0 {
		t.Fatalf("hello again: %v %+v", err, res)
	}
	mustValid(t, f)
}
