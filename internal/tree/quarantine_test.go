package tree

import (
	"errors"
	"strings"
	"testing"
)

// TestQuarantine: a quarantined node keeps its children but is neither
// offered, nor accepted as a new parent, nor planned as a handover
// target; the mark survives a hello again and is shown in its snapshot;
// lifting it restores everything.
func TestQuarantine(t *testing.T) {
	f := forest(t, 2, "a:8 d:2 b:2 c:2 e:2 x:2 y:2", "a<origin d<origin c<a b<d e<d y<b")
	plan := func() string {
		t.Helper()
		mv, err := f.Handover(S, "b")
		if err != nil {
			t.Fatal(err)
		}
		f.EndHandover(S, "b")
		return moves(mv)
	}
	if got := plan(); got != "y>a@2" {
		t.Fatalf("handover plan before the quarantine %q, want y>a@2", got)
	}
	if err := f.Quarantine("a", "children stalled"); err != nil {
		t.Fatal(err)
	}
	if err := f.Quarantine("nobody", "x"); !errors.Is(err, ErrUnknownNode) {
		t.Errorf("quarantine of an unknown node: %v", err)
	}
	// b is leaving since the plan (its slot at d free, itself no
	// candidate); a and c below it are the others missing.
	if got := ids(f.Candidates(S, "x", nil, 5)); got != "d e y" {
		t.Errorf("candidates %q, want d e y (origin full, a quarantined with c below it, b leaving)", got)
	}
	for _, p := range []string{"a", "c"} {
		if _, err := f.Join(S, "x", p); !errors.Is(err, ErrQuarantined) || !strings.Contains(err.Error(), "a (children stalled)") {
			t.Errorf("join under %s: %v, want ErrQuarantined naming a", p, err)
		}
	}
	if got := plan(); got != "y>d@2" {
		t.Errorf("handover plan %q, want y>d@2 (never a)", got)
	}
	if p, _ := f.Parent(S, "c"); p != "a" {
		t.Errorf("c's parent %q: a quarantined node keeps its children", p)
	}
	// Hello again (a reconnect) keeps the mark.
	if _, err := f.Hello(NodeInfo{ID: "a", RTSP: rtspOf("a"), Willing: true, Capacity: 4}, []Edge{{Stream: S, Parent: Origin}}, Repair, t0); err != nil {
		t.Fatal(err)
	}
	n, _ := f.Node("a")
	if !n.Quarantined || n.QuarantineReason != "children stalled" || !f.Quarantined("a") {
		t.Errorf("snapshot after hello: %+v", n)
	}
	if err := f.Quarantine("a", ""); err != nil {
		t.Fatal(err)
	}
	if n, _ := f.Node("a"); n.Quarantined || n.QuarantineReason != "" {
		t.Errorf("snapshot after lifting: %+v", n)
	}
	if _, err := f.Join(S, "x", "a"); err != nil {
		t.Errorf("join under a after lifting: %v", err)
	}
	if p, ok := f.Parent(S, "x"); !ok || p != "a" {
		t.Errorf("Parent(x) = %q %v", p, ok)
	}
	if _, ok := f.Parent(S, "nobody"); ok {
		t.Error("Parent of a non-member")
	}
	mustValid(t, f)
}
