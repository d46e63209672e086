package tree

import (
	"errors"
	"fmt"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/ocm-overlay/ocm/internal/api"
)

const S = "rtsp://ms:554/live"

var t0 = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)

// forest builds a Forest from a compact spec.
// nodes: "a:3 b:2 p:0-" (id:capacity, trailing "-" for not willing).
// joins: "a<origin b<a" on stream S, applied in order with Join.
// rtspOf is the mediator address test node id announces; the tree only
// stores and hands it out, nothing listens there.
func rtspOf(id string) string { return id + ":0" }

func forest(t *testing.T, originCap int, nodes, joins string) *Forest {
	t.Helper()
	f := New(originCap)
	for _, spec := range strings.Fields(nodes) {
		id, c, _ := strings.Cut(spec, ":")
		willing := !strings.HasSuffix(c, "-")
		var capacity int
		fmt.Sscan(strings.TrimSuffix(c, "-"), &capacity)
		if _, err := f.Hello(NodeInfo{ID: id, RTSP: rtspOf(id), Willing: willing, Capacity: capacity}, nil, Repair, t0); err != nil {
			t.Fatal(err)
		}
	}
	for _, j := range strings.Fields(joins) {
		n, p, _ := strings.Cut(j, "<")
		if _, err := f.Join(S, n, p); err != nil {
			t.Fatalf("join %s: %v", j, err)
		}
	}
	mustValid(t, f)
	return f
}

func mustValid(t *testing.T, f *Forest) {
	t.Helper()
	if err := f.Validate(); err != nil {
		t.Fatalf("invalid forest: %v", err)
	}
}

// shape renders a stream's tree: "id<parent@level" sorted by id; an
// orphan's parent is "-" (or "~P" when pending on P).
func shape(f *Forest, stream string) string {
	ts, ok := f.Tree(stream)
	if !ok {
		return ""
	}
	var parts []string
	for _, m := range ts.Nodes {
		p := m.Parent
		if p == "" {
			p = "-"
			if m.PendingParent != "" {
				p = "~" + m.PendingParent
			}
		}
		parts = append(parts, fmt.Sprintf("%s<%s@%d", m.Node, p, m.Level))
	}
	sort.Strings(parts)
	return strings.Join(parts, " ")
}

func TestParsePolicy(t *testing.T) {
	for _, p := range Policies {
		if got, err := ParsePolicy(string(p)); err != nil || got != p {
			t.Errorf("ParsePolicy(%q) = %q, %v", p, got, err)
		}
	}
	if _, err := ParsePolicy("magic"); err == nil {
		t.Error("ParsePolicy accepted magic")
	}
}

func TestJoin(t *testing.T) {
	const nodes = "a:2 b:2 c:1 d:2 e:2 p:3- z:0"
	const base = "a<origin b<a c<b"
	tests := []struct {
		name      string
		node, par string
		wantErr   error
		want      string // shape after; "" = unchanged
	}{
		{"under origin", "d", Origin, nil, "a<origin@1 b<a@2 c<b@3 d<origin@1"},
		{"under a relay", "d", "b", nil, "a<origin@1 b<a@2 c<b@3 d<b@3"},
		{"deeper", "d", "c", nil, "a<origin@1 b<a@2 c<b@3 d<c@4"},
		{"same parent again", "b", "a", nil, ""},
		{"move with subtree", "b", Origin, nil, "a<origin@1 b<origin@1 c<b@2"},
		{"move leaf", "c", "a", nil, "a<origin@1 b<a@2 c<a@2"},
		{"unknown node", "x", "a", ErrUnknownNode, ""},
		{"unknown parent", "d", "x", ErrUnknownParent, ""},
		{"parent not in stream", "d", "e", ErrNotActive, ""},
		{"self", "d", "d", ErrCycle, ""},
		{"own child", "b", "c", ErrCycle, ""},
		{"own grandchild", "a", "c", ErrCycle, ""},
		{"parent with a free slot", "d", "c", nil, "a<origin@1 b<a@2 c<b@3 d<c@4"},
		{"not willing parent", "d", "p", ErrNotActive, ""},
		{"zero capacity parent", "d", "z", ErrNotActive, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := forest(t, 4, nodes, base)
			before := shape(f, S)
			_, err := f.Join(S, tt.node, tt.par)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			mustValid(t, f)
			want := tt.want
			if want == "" {
				want = before
			}
			if got := shape(f, S); got != want {
				t.Fatalf("shape %q, want %q", got, want)
			}
		})
	}
}

func TestJoinCapacityAndWilling(t *testing.T) {
	tests := []struct {
		name    string
		nodes   string
		joins   string
		node    string
		parent  string
		origin  int
		wantErr error
	}{
		{"origin full", "a:1 b:1 c:1", "a<origin b<origin", "c", Origin, 2, ErrFull},
		{"origin capacity zero", "a:1", "", "a", Origin, 0, ErrFull},
		{"relay full", "a:1 b:1 c:1", "a<origin b<a", "c", "a", 4, ErrFull},
		{"capacity counts other streams", "a:1 b:1 c:1", "a<origin", "c", "a", 4, ErrFull},
		{"not willing", "a:3- c:1", "a<origin", "c", "a", 4, ErrNotWilling},
		{"zero capacity", "a:0 c:1", "a<origin", "c", "a", 4, ErrFull},
		{"origin re-join is free", "a:1 b:1", "a<origin b<origin", "a", Origin, 2, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := forest(t, tt.origin, tt.nodes, tt.joins)
			if tt.name == "capacity counts other streams" {
				if _, err := f.Join("other", "a", Origin); err != nil {
					t.Fatal(err)
				}
				if _, err := f.Join("other", "b", "a"); err != nil {
					t.Fatal(err)
				}
			}
			before := shape(f, S)
			_, err := f.Join(S, tt.node, tt.parent)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			if err != nil && shape(f, S) != before {
				t.Fatalf("failed join changed the tree: %q -> %q", before, shape(f, S))
			}
			mustValid(t, f)
		})
	}
}

func TestJoinDetachedParentRefused(t *testing.T) {
	f := forest(t, 4, "a:2 b:2 c:2 d:2", "a<origin b<a c<b")
	if _, err := f.RemoveNode("a", Repair, t0); err != nil {
		t.Fatal(err)
	}
	if _, err := f.Join(S, "d", "c"); !errors.Is(err, ErrNotActive) {
		t.Fatalf("join under detached c: %v", err)
	}
	// b rejoins; now c is attached again and accepts d.
	res, err := f.Join(S, "b", Origin)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Changes) != 1 || res.Changes[0].Subtree != 2 || res.Changes[0].From != "" {
		t.Fatalf("changes %+v", res.Changes)
	}
	if _, err := f.Join(S, "d", "c"); err != nil {
		t.Fatal(err)
	}
	mustValid(t, f)
	if got, want := shape(f, S), "b<origin@1 c<b@2 d<c@3"; got != want {
		t.Fatalf("shape %q, want %q", got, want)
	}
}

func TestJoinChange(t *testing.T) {
	f := forest(t, 4, "a:2 b:2 c:2", "a<origin b<a c<b")
	res, err := f.Join(S, "b", Origin)
	if err != nil {
		t.Fatal(err)
	}
	want := []Change{{Stream: S, Node: "b", Parent: Origin, From: "a", Level: 1, Subtree: 2}}
	if !reflect.DeepEqual(res.Changes, want) {
		t.Fatalf("changes %+v, want %+v", res.Changes, want)
	}
	if res, _ := f.Join(S, "b", Origin); len(res.Changes) != 0 {
		t.Fatalf("no-op join reported %+v", res.Changes)
	}
}

func ids(cs []Candidate) string {
	var out []string
	for _, c := range cs {
		out = append(out, c.ID)
	}
	return strings.Join(out, " ")
}

func TestCandidates(t *testing.T) {
	tests := []struct {
		name      string
		origin    int
		nodes     string
		joins     string
		requester string
		exclude   []string
		k         int
		want      string
	}{
		{"empty stream offers the origin", 4, "x:2", "", "x", nil, 5, Origin},
		{"origin full", 1, "a:2 x:2", "a<origin", "x", nil, 5, "a"},
		{"origin excluded", 4, "a:2 x:2", "a<origin", "x", []string{Origin}, 5, "a"},
		{"lowest level first", 4, "a:2 b:2 c:2 x:2", "c<origin b<c a<b", "x", nil, 5, "origin c b a"},
		{"load spread among equals", 4, "a:4 b:4 c:4 d:1 e:1 x:1",
			"a<origin b<origin c<origin d<a e<a", "x", nil, 5, "origin b c a d e"},
		{"load is relative to capacity", 4, "a:4 b:2 c:1 d:1 x:1",
			"a<origin b<origin c<a d<b", "x", nil, 5, "origin a b c d"},
		{"full nodes skipped", 4, "a:1 b:1 x:1", "a<origin b<a", "x", nil, 5, "origin b"},
		{"not willing skipped", 4, "a:3- b:1 x:1", "a<origin b<origin", "x", nil, 5, "origin b"},
		{"requester and descendants skipped", 4, "a:2 b:2 c:2 d:2 x:2",
			"a<origin x<a b<x c<b d<a", "x", nil, 5, "origin a d"},
		{"requester's own slot is free", 1, "a:1 x:1", "a<origin x<a", "x", nil, 5, "a"},
		{"requester's own origin slot is free", 1, "x:1", "x<origin", "x", nil, 5, Origin},
		{"exclude list", 4, "a:2 b:2 c:2 x:2", "a<origin b<origin c<a", "x", []string{"a", "c"}, 5, "origin b"},
		{"at most k relays plus the origin", 4, "a:2 b:2 c:2 x:2", "a<origin b<origin c<origin", "x", nil, 2, "origin a b"},
		{"k zero means no limit", 4, "a:2 b:2 c:2 x:2", "a<origin b<origin c<origin", "x", nil, 0, "origin a b c"},
		{"unknown requester", 4, "a:2", "a<origin", "stranger", nil, 5, "origin a"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := forest(t, tt.origin, tt.nodes, tt.joins)
			if got := ids(f.Candidates(S, tt.requester, tt.exclude, tt.k)); got != tt.want {
				t.Fatalf("candidates %q, want %q", got, tt.want)
			}
		})
	}
}

func TestCandidatesSkipDetached(t *testing.T) {
	f := forest(t, 4, "a:2 b:2 c:2 x:2", "a<origin b<a c<b")
	if _, err := f.RemoveNode("a", Repair, t0); err != nil {
		t.Fatal(err)
	}
	if got := ids(f.Candidates(S, "x", nil, 5)); got != Origin {
		t.Fatalf("candidates %q, want only the origin", got)
	}
}

func TestCandidateFields(t *testing.T) {
	f := forest(t, 3, "a:4 x:1", "a<origin")
	willing := true
	_ = f.Report("a", Report{CPU: 0.5, Willing: &willing, Clients: 7}, t0)
	got := f.Candidates(S, "x", nil, 5)
	want := []Candidate{
		{ID: Origin, Level: 0, Clients: 1, Capacity: 3},
		{ID: "a", RTSP: rtspOf("a"), Level: 1, Clients: 0, Capacity: 4, CPU: 0.5},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %+v\nwant %+v", got, want)
	}
}

func TestRemoveNodePolicies(t *testing.T) {
	// a at level 1 with children b, c; b has d, e; d has f. g is elsewhere.
	const nodes = "a:2 b:2 c:2 d:2 e:2 f:2 g:2"
	const joins = "a<origin b<a c<a d<b e<b f<d g<origin"
	tests := []struct {
		name     string
		pol      Policy
		node     string
		shape    string
		orphaned string
		removed  string
		groups   string // "|" between groups
	}{
		{"repair", Repair, "b", "a<origin@1 c<a@2 d<-@3 e<-@3 f<d@4 g<origin@1",
			"d e", "b", "d:parent_failed e:parent_failed"},
		{"repair leaf", Repair, "f", "a<origin@1 b<a@2 c<a@2 d<b@3 e<b@3 g<origin@1", "", "f", ""},
		{"repair level 1", Repair, "a", "b<-@2 c<-@2 d<b@3 e<b@3 f<d@4 g<origin@1", "b c", "a", "b:parent_failed c:parent_failed"},
		{"drop", Drop, "b", "a<origin@1 c<a@2 g<origin@1", "", "b d e f", ""},
		{"reconnect", Reconnect, "b", "a<origin@1 c<a@2 g<origin@1", "", "b d e f",
			"d:parent_failed e:parent_failed f:ancestor_failed"},
		{"gradual", Gradual, "a", "g<origin@1", "", "a b c d e f",
			"b:parent_failed c:parent_failed | d:ancestor_failed e:ancestor_failed | f:ancestor_failed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := forest(t, 4, nodes, joins)
			res, err := f.RemoveNode(tt.node, tt.pol, t0)
			if err != nil {
				t.Fatal(err)
			}
			mustValid(t, f)
			if f.HasNode(tt.node) {
				t.Fatal("node still registered")
			}
			if got := shape(f, S); got != tt.shape {
				t.Errorf("shape %q\nwant  %q", got, tt.shape)
			}
			if got := members(res.Orphaned); got != tt.orphaned {
				t.Errorf("orphaned %q, want %q", got, tt.orphaned)
			}
			if got := members(res.Removed); got != tt.removed {
				t.Errorf("removed %q, want %q", got, tt.removed)
			}
			if got := groups(res.Groups); got != tt.groups {
				t.Errorf("groups %q\nwant   %q", got, tt.groups)
			}
		})
	}
}

func members(ms []Member) string {
	var out []string
	for _, m := range ms {
		out = append(out, m.Node)
	}
	sort.Strings(out)
	return strings.Join(out, " ")
}

func groups(gs [][]Notice) string {
	var out []string
	for _, g := range gs {
		var ns []string
		for _, n := range g {
			ns = append(ns, n.Node+":"+n.Reason)
		}
		out = append(out, strings.Join(ns, " "))
	}
	return strings.Join(out, " | ")
}

func TestRepairKeepsSubtreeShape(t *testing.T) {
	f := forest(t, 4, "a:2 b:2 c:2 d:2 e:2", "a<origin b<a c<b d<c e<origin")
	if _, err := f.RemoveNode("a", Repair, t0); err != nil {
		t.Fatal(err)
	}
	// b rejoins under e: c and d follow with recomputed levels.
	if _, err := f.Join(S, "b", "e"); err != nil {
		t.Fatal(err)
	}
	mustValid(t, f)
	if got, want := shape(f, S), "b<e@2 c<b@3 d<c@4 e<origin@1"; got != want {
		t.Fatalf("shape %q, want %q", got, want)
	}
}

func TestRemoveNodeManyStreams(t *testing.T) {
	f := forest(t, 4, "a:4 b:4 c:4", "a<origin b<a")
	if _, err := f.Join("s2", "a", Origin); err != nil {
		t.Fatal(err)
	}
	if _, err := f.Join("s2", "c", "a"); err != nil {
		t.Fatal(err)
	}
	res, err := f.RemoveNode("a", Repair, t0)
	if err != nil {
		t.Fatal(err)
	}
	mustValid(t, f)
	if got := groups(res.Groups); got != "b:parent_failed c:parent_failed" {
		t.Fatalf("groups %q", got)
	}
	if got := res.Notices(); got[0].Stream != S || got[1].Stream != "s2" {
		t.Fatalf("notices %+v", got)
	}
	if _, err := f.RemoveNode("a", Repair, t0); !errors.Is(err, ErrUnknownNode) {
		t.Fatalf("second removal: %v", err)
	}
}

func TestRemoveLastMemberForgetsStream(t *testing.T) {
	f := forest(t, 4, "a:1", "a<origin")
	if _, err := f.RemoveNode("a", Drop, t0); err != nil {
		t.Fatal(err)
	}
	mustValid(t, f)
	if len(f.Streams()) != 0 {
		t.Fatalf("streams %+v", f.Streams())
	}
}

func TestLeave(t *testing.T) {
	tests := []struct {
		name   string
		pol    Policy
		node   string
		err    error
		shape  string
		groups string
	}{
		{"leaf", Repair, "c", nil, "a<origin@1 b<a@2", ""},
		{"with children, repair", Repair, "a", nil, "b<-@2 c<b@3", "b:parent_left"},
		{"with children, reconnect", Reconnect, "a", nil, "", "b:parent_left c:ancestor_failed"},
		{"with children, drop", Drop, "a", nil, "", ""},
		{"not a member", Repair, "x", ErrNotInStream, "a<origin@1 b<a@2 c<b@3", ""},
		{"unknown", Repair, "nobody", ErrUnknownNode, "a<origin@1 b<a@2 c<b@3", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := forest(t, 4, "a:2 b:2 c:2 x:2", "a<origin b<a c<b")
			res, err := f.Leave(S, tt.node, tt.pol, t0)
			if !errors.Is(err, tt.err) {
				t.Fatalf("err = %v, want %v", err, tt.err)
			}
			mustValid(t, f)
			if got := shape(f, S); got != tt.shape {
				t.Errorf("shape %q, want %q", got, tt.shape)
			}
			if got := groups(res.Groups); got != tt.groups {
				t.Errorf("groups %q, want %q", got, tt.groups)
			}
			if tt.err == nil && !f.HasNode(tt.node) {
				t.Error("leave unregistered the node")
			}
		})
	}
}

// helloSpec is one relay's hello: id:capacity and its parent on S ("" for
// none).
type helloSpec struct {
	id       string
	capacity int
	parent   string
}

func hello(t *testing.T, f *Forest, h helloSpec) Result {
	t.Helper()
	var edges []Edge
	if h.parent != "" {
		edges = []Edge{{Stream: S, Node: h.id, Parent: h.parent}}
	}
	res, err := f.Hello(NodeInfo{ID: h.id, RTSP: rtspOf(h.id), Willing: true, Capacity: h.capacity}, edges, Repair, t0)
	if err != nil {
		t.Fatal(err)
	}
	mustValid(t, f)
	return res
}

// Every order of reconnection rebuilds the same tree, telling nobody.
func TestHelloRebuildAnyOrder(t *testing.T) {
	specs := []helloSpec{{"a", 2, Origin}, {"b", 2, "a"}, {"c", 2, "a"}, {"d", 2, "b"}, {"e", 2, "d"}, {"f", 2, Origin}}
	const want = "a<origin@1 b<a@2 c<a@2 d<b@3 e<d@4 f<origin@1"
	perm(len(specs), func(order []int) {
		f := New(4)
		for _, i := range order {
			if res := hello(t, f, specs[i]); len(res.Groups) != 0 {
				t.Fatalf("order %v: hello %s notified %v", order, specs[i].id, groups(res.Groups))
			}
		}
		if got := shape(f, S); got != want {
			t.Fatalf("order %v: shape %q, want %q", order, got, want)
		}
	})
}

// perm calls fn with every permutation of 0..n-1.
func perm(n int, fn func([]int)) {
	p := make([]int, n)
	for i := range p {
		p[i] = i
	}
	var rec func(k int)
	rec = func(k int) {
		if k == n {
			fn(p)
			return
		}
		for i := k; i < n; i++ {
			p[k], p[i] = p[i], p[k]
			rec(k + 1)
			p[k], p[i] = p[i], p[k]
		}
	}
	rec(0)
}

func TestHelloPendingThenArrives(t *testing.T) {
	f := New(4)
	res := hello(t, f, helloSpec{"c", 2, "b"})
	if len(res.Pending) != 1 || res.Pending[0].Parent != "b" {
		t.Fatalf("pending %+v", res.Pending)
	}
	hello(t, f, helloSpec{"b", 2, "a"})
	if got, want := shape(f, S), "b<~a@0 c<b@1"; got != want {
		t.Fatalf("shape %q, want %q", got, want)
	}
	// Not attached yet: nobody is offered.
	if got := ids(f.Candidates(S, "x", nil, 5)); got != Origin {
		t.Fatalf("candidates %q", got)
	}
	res = hello(t, f, helloSpec{"a", 2, Origin})
	if got, want := shape(f, S), "a<origin@1 b<a@2 c<b@3"; got != want {
		t.Fatalf("shape %q, want %q", got, want)
	}
	if len(res.Changes) != 2 || res.Changes[1].Node != "b" || res.Changes[1].Subtree != 2 {
		t.Fatalf("changes %+v", res.Changes)
	}
}

func TestHelloRejections(t *testing.T) {
	tests := []struct {
		name   string
		specs  []helloSpec
		shape  string
		groups string // notices of the last hello
	}{
		{"parent over capacity", []helloSpec{{"a", 1, Origin}, {"b", 1, "a"}, {"c", 1, "a"}},
			"a<origin@1 b<a@2 c<-@0", "c:rejected"},
		{"pending child over capacity", []helloSpec{{"b", 1, "a"}, {"c", 1, "a"}, {"a", 1, Origin}},
			"a<origin@1 b<a@2 c<-@0", "c:rejected"},
		{"origin over capacity", []helloSpec{{"a", 1, Origin}, {"b", 1, Origin}, {"c", 1, Origin}},
			"a<origin@1 b<origin@1 c<-@0", "c:rejected"},
		{"declared cycle", []helloSpec{{"a", 1, "b"}, {"b", 1, "a"}},
			"a<-@0 b<a@1", "a:rejected"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := New(2)
			var res Result
			for _, s := range tt.specs {
				res = hello(t, f, s)
			}
			if got := shape(f, S); got != tt.shape {
				t.Errorf("shape %q, want %q", got, tt.shape)
			}
			if got := groups(res.Groups); got != tt.groups {
				t.Errorf("groups %q, want %q", got, tt.groups)
			}
		})
	}
}

func TestHelloAgain(t *testing.T) {
	t.Run("same edges change nothing", func(t *testing.T) {
		f := forest(t, 4, "a:2 b:2", "a<origin b<a")
		res := hello(t, f, helloSpec{"b", 2, "a"})
		if len(res.Changes)+len(res.Groups)+len(res.Orphaned) != 0 {
			t.Fatalf("result %+v", res)
		}
	})
	t.Run("undeclared stream is left", func(t *testing.T) {
		f := forest(t, 4, "a:2 b:2", "a<origin b<a")
		res := hello(t, f, helloSpec{"a", 2, ""})
		if got := groups(res.Groups); got != "b:parent_left" {
			t.Fatalf("groups %q", got)
		}
		if got := shape(f, S); got != "b<-@2" {
			t.Fatalf("shape %q", got)
		}
	})
	t.Run("lower capacity sheds smallest subtrees", func(t *testing.T) {
		f := forest(t, 4, "a:3 b:2 c:2 d:2 e:2", "a<origin b<a c<a d<a e<b")
		res := hello(t, f, helloSpec{"a", 1, Origin})
		if got := groups(res.Groups); got != "c:capacity d:capacity" {
			t.Fatalf("groups %q", got)
		}
		if got := shape(f, S); got != "a<origin@1 b<a@2 c<-@2 d<-@2 e<b@3" {
			t.Fatalf("shape %q", got)
		}
	})
	t.Run("reserved and empty ids", func(t *testing.T) {
		f := New(4)
		if _, err := f.Hello(NodeInfo{ID: Origin}, nil, Repair, t0); !errors.Is(err, ErrReserved) {
			t.Fatalf("origin: %v", err)
		}
		if _, err := f.Hello(NodeInfo{}, nil, Repair, t0); err == nil {
			t.Fatal("empty id accepted")
		}
	})
}

func TestPendingParentFails(t *testing.T) {
	f := New(4)
	hello(t, f, helloSpec{"b", 2, "a"})
	hello(t, f, helloSpec{"c", 2, "b"})
	// a never said hello: nothing to remove. b (pending on a) fails:
	// c was attached under b, so it becomes an orphan and is told.
	res, err := f.RemoveNode("b", Repair, t0)
	if err != nil {
		t.Fatal(err)
	}
	mustValid(t, f)
	if got := groups(res.Groups); got != "c:parent_failed" {
		t.Fatalf("groups %q", got)
	}
}

func TestPendingOnFailedNodeThatIsNotAMember(t *testing.T) {
	f := forest(t, 4, "a:2", "")
	hello(t, f, helloSpec{"b", 2, "a"}) // a is registered but not in S yet
	res, err := f.RemoveNode("a", Repair, t0)
	if err != nil {
		t.Fatal(err)
	}
	mustValid(t, f)
	if got := groups(res.Groups); got != "b:parent_failed" {
		t.Fatalf("groups %q", got)
	}
	if got := shape(f, S); got != "b<-@0" {
		t.Fatalf("shape %q", got)
	}
}

func TestExpireOrphans(t *testing.T) {
	f := New(4)
	hello(t, f, helloSpec{"b", 2, "a"}) // pending since t0
	g := forest(t, 4, "x:2 y:2", "x<origin y<x")
	_, _ = g.RemoveNode("x", Repair, t0.Add(time.Minute))

	if res := f.ExpireOrphans(t0, t0, t0.Add(time.Hour)); len(res.Groups) != 0 {
		t.Fatalf("expired too early: %v", groups(res.Groups))
	}
	res := f.ExpireOrphans(t0.Add(time.Second), t0.Add(time.Second), t0.Add(time.Hour))
	if got := groups(res.Groups); got != "b:parent_missing" {
		t.Fatalf("groups %q", got)
	}
	mustValid(t, f)
	// The pending edge is given up: a arriving later does not adopt b.
	hello(t, f, helloSpec{"a", 2, Origin})
	if got := shape(f, S); got != "a<origin@1 b<-@0" {
		t.Fatalf("shape %q", got)
	}
	// Told again only after another grace period.
	if res := f.ExpireOrphans(t0.Add(time.Hour), t0.Add(time.Hour), t0.Add(2*time.Hour)); len(res.Groups) != 0 {
		t.Fatalf("told twice: %v", groups(res.Groups))
	}
	res = g.ExpireOrphans(t0.Add(2*time.Minute), t0.Add(2*time.Minute), t0.Add(time.Hour))
	if got := groups(res.Groups); got != "y:orphaned" {
		t.Fatalf("groups %q", got)
	}
}

func TestReport(t *testing.T) {
	f := forest(t, 4, "a:2 b:2", "a<origin")
	no := false
	err := f.Report("a", Report{CPU: 0.25, Willing: &no, Clients: 3, Streams: []StreamStats{
		{Stream: S, Parent: Origin, Level: 1, Readers: 3, Loss: 0.01, Bitrate: 2e6},
		{Stream: "not-a-member", Readers: 9},
	}}, t0)
	if err != nil {
		t.Fatal(err)
	}
	n, _ := f.Node("a")
	if n.CPU != 0.25 || n.Willing || n.Clients != 3 || n.LastReport == nil || !n.LastReport.Equal(t0) {
		t.Fatalf("node %+v", n)
	}
	ts, _ := f.Tree(S)
	if m := ts.Nodes[0]; m.Readers != 3 || m.Loss != 0.01 || m.Bitrate != 2e6 {
		t.Fatalf("member %+v", m)
	}
	if got := ids(f.Candidates(S, "b", nil, 5)); got != Origin {
		t.Fatalf("unwilling a still offered: %q", got)
	}
	if err := f.Report("nobody", Report{}, t0); !errors.Is(err, ErrUnknownNode) {
		t.Fatalf("unknown: %v", err)
	}
}

func TestSnapshots(t *testing.T) {
	f := forest(t, 3, "a:2 b:2 c:2 d:2", "a<origin b<a c<b")
	if _, err := f.Join("s2", "d", Origin); err != nil {
		t.Fatal(err)
	}
	ts, ok := f.Tree(S)
	if !ok || ts.Depth != 3 || !reflect.DeepEqual(ts.Origin, api.TreeOrigin{Children: []string{"a"}, Capacity: 3}) {
		t.Fatalf("tree %+v", ts)
	}
	if ts.Nodes[0].Node != "a" || !reflect.DeepEqual(ts.Nodes[0].Children, []string{"b"}) || !ts.Nodes[2].Attached {
		t.Fatalf("nodes %+v", ts.Nodes)
	}
	if _, ok := f.Tree("nope"); ok {
		t.Fatal("unknown stream found")
	}
	sums := f.Streams()
	want := []api.Stream{
		{Stream: S, Nodes: 3, Attached: 3, Depth: 3, OriginChildren: 1},
		{Stream: "s2", Nodes: 1, Attached: 1, Depth: 1, OriginChildren: 1},
	}
	if !reflect.DeepEqual(sums, want) {
		t.Fatalf("streams %+v", sums)
	}
	if len(f.Trees()) != 2 {
		t.Fatal("trees")
	}
	nodes := f.Nodes()
	if len(nodes) != 4 || nodes[0].ID != "a" || nodes[0].Children != 1 || !reflect.DeepEqual(nodes[3].Streams, []string{"s2"}) {
		t.Fatalf("nodes %+v", nodes)
	}
	if got := f.Subtree(S, "a"); !reflect.DeepEqual(got, [][]string{{"a"}, {"b"}, {"c"}}) {
		t.Fatalf("subtree %v", got)
	}
	if lvl, ok := f.Level(S, "c"); !ok || lvl != 3 {
		t.Fatalf("level %d %v", lvl, ok)
	}
}

func TestValidateCatchesCorruption(t *testing.T) {
	tests := []struct {
		name    string
		corrupt func(f *Forest)
		want    string
	}{
		{"wrong level", func(f *Forest) { f.streams[S].members["c"].level = 7 }, "level 7"},
		{"cycle", func(f *Forest) {
			tr := f.streams[S]
			f.unlink(tr, tr.members["a"])
			tr.members["a"].parent = "c"
			tr.members["c"].children["a"] = struct{}{}
			f.nodes["c"].children++
		}, "cycle"},
		{"over capacity", func(f *Forest) { f.nodes["b"].Capacity = 0 }, "capacity 0"},
		{"count drift", func(f *Forest) { f.nodes["a"].children = 5 }, "counts 5"},
		{"dangling child", func(f *Forest) { f.streams[S].members["a"].children["zz"] = struct{}{} }, "lists child zz"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := forest(t, 4, "a:2 b:2 c:2", "a<origin b<a c<b")
			tt.corrupt(f)
			err := f.Validate()
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Validate = %v, want mention of %q", err, tt.want)
			}
		})
	}
}

// Under gradual the relays told first (the failed node's children) must
// not take the slots of those told later: each keeps its old place until
// its turn, so the rebuilt tree has the old shape.
func TestGradualKeepsOldSlots(t *testing.T) {
	f := forest(t, 1, "r:2 a:2 b:2 a1:2 a2:2 b1:2", "r<origin a<r b<r a1<a a2<a b1<b")
	if _, err := f.RemoveNode("r", Gradual, t0); err != nil {
		t.Fatal(err)
	}
	mustJoin := func(n, p string) {
		t.Helper()
		if _, err := f.Join(S, n, p); err != nil {
			t.Fatalf("join %s<%s: %v", n, p, err)
		}
	}
	mustJoin("a", Origin)
	// a's two slots are a1's and a2's until they come back: b may not
	// take one, and is not offered a.
	if _, err := f.Join(S, "b", "a"); !errors.Is(err, ErrFull) {
		t.Fatalf("b joined a's kept slot: %v", err)
	}
	for _, c := range f.Candidates(S, "b", nil, 5) {
		if c.ID == "a" {
			t.Fatalf("a offered to b while its slots are kept: %+v", c)
		}
	}
	mustJoin("a1", "a")
	mustJoin("a2", "a")
	mustJoin("b", "a1")
	mustJoin("b1", "b")
	if got, want := shape(f, S), "a1<a@2 a2<a@2 a<origin@1 b1<b@4 b<a1@3"; got != want {
		t.Fatalf("tree %q, want %q", got, want)
	}
	mustValid(t, f)

	// Slots kept for relays that never come back are given up.
	f2 := forest(t, 1, "r:2 a:1 a1:2", "r<origin a<r a1<a")
	if _, err := f2.RemoveNode("r", Gradual, t0); err != nil {
		t.Fatal(err)
	}
	if _, err := f2.Join(S, "a", Origin); err != nil {
		t.Fatal(err)
	}
	f2.Hello(NodeInfo{ID: "x", RTSP: rtspOf("x"), Willing: true, Capacity: 1}, nil, Gradual, t0)
	if _, err := f2.Join(S, "x", "a"); !errors.Is(err, ErrFull) {
		t.Fatalf("x took a1's kept slot: %v", err)
	}
	f2.ExpireExpectations(t0.Add(gradualKeep))
	if _, err := f2.Join(S, "x", "a"); err != nil {
		t.Fatalf("after the keep expired: %v", err)
	}
}

// Passive hosts are offered the origin only when no relay has room, so
// the origin's slots stay with relays.
func TestPassiveKeptOffOrigin(t *testing.T) {
	f := forest(t, 2, "a:2 p:0- q:0-", "a<origin")
	ids := func(cs []Candidate) string {
		var s []string
		for _, c := range cs {
			s = append(s, c.ID)
		}
		return strings.Join(s, " ")
	}
	if got := ids(f.Candidates(S, "p", nil, 5)); got != "a" {
		t.Fatalf("passive p offered %q, want only the relay a", got)
	}
	if _, err := f.Join(S, "p", "a"); err != nil {
		t.Fatal(err)
	}
	if _, err := f.Join(S, "q", "a"); err != nil {
		t.Fatal(err)
	}
	f.Hello(NodeInfo{ID: "r", Willing: false}, nil, Repair, t0)
	if got := ids(f.Candidates(S, "r", nil, 5)); got != "origin" {
		t.Fatalf("with every relay full, passive r offered %q, want the origin", got)
	}
}
