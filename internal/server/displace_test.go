package server

import (
	"reflect"
	"strings"
	"testing"

	"github.com/ocm-overlay/ocm/internal/api"
	"github.com/ocm-overlay/ocm/internal/event"
	"github.com/ocm-overlay/ocm/internal/testutil"
	"github.com/ocm-overlay/ocm/internal/tree"
	"github.com/ocm-overlay/ocm/internal/wire"
)

// joinVia reports joined with the relay's measure of the edge and
// whether it asks to displace; it returns the error code ("" if
// accepted).
func (r *relay) joinVia(s, parent string, rttMs float64, displace bool) string {
	r.t.Helper()
	m := r.request(&wire.Joined{Stream: s, Parent: parent, RTTMs: rttMs, Displace: displace})
	switch b := m.Body.(type) {
	case *wire.Ack:
		r.parents[s] = parent
		return ""
	case *wire.Error:
		return b.Code
	}
	r.t.Fatalf("%s: joined answered by %s", r.id, m.Type)
	return ""
}

// candidate returns the candidate id of cs, failing the test without it.
func candidate(t *testing.T, cs []wire.Candidate, id string) wire.Candidate {
	t.Helper()
	for _, c := range cs {
		if c.Node == id {
			return c
		}
	}
	t.Fatalf("%s not among the candidates %+v", id, cs)
	return wire.Candidate{}
}

// displaceSetup is the case: the origin takes one relay, a far
// one (a, 150 ms from it) took it; b, 5 ms from the origin, relays and
// has room, so it is offered the origin for displacement.
func displaceSetup(t *testing.T, mod func(*Server)) (ts *testServer, a, b *relay) {
	t.Helper()
	ts = startServer(t, func(s *Server) {
		s.OriginCapacity = 1
		if mod != nil {
			mod(s)
		}
	})
	a = newRelay(t, "a", 2).dial(ts.Addr(), "")
	if code := a.joinVia(stream, wire.OriginID, 150, false); code != "" {
		t.Fatalf("a joins the origin: %s", code)
	}
	b = newRelay(t, "b", 2)
	b.rtsp = testutil.ClosedTCP(t) // an address of its own, nobody dials it
	b.dial(ts.Addr(), "")
	return ts, a, b
}

// A relay much closer to the full origin than its far child takes that
// child's slot; the child is told to move under it, with its address,
// and does; the tree, the event, the metric and the paths say so.
func TestDisplacementOverSockets(t *testing.T) {
	ts, a, b := displaceSetup(t, nil)
	if o := candidate(t, b.candidates(stream), wire.OriginID); o.DisplaceMs != 150 || o.Clients != 1 || o.Capacity != 1 {
		t.Fatalf("origin offered as %+v, want full with displace_ms 150", o)
	}
	if code := b.joinVia(stream, wire.OriginID, 5, true); code != "" {
		t.Fatalf("b displacing a at the origin: %s", code)
	}
	rc := a.waitReconnect()
	if rc.Reason != wire.ReasonDisplaced || rc.Target != "b" || rc.TargetRTSP != b.rtsp || rc.Parent != wire.OriginID {
		t.Fatalf("a told %+v, want displaced to b at %s", rc, b.rtsp)
	}
	// Make-before-break: a is still under the origin, one over its
	// capacity, until it joins b.
	if got := ts.shape(t, stream); got != "a<origin@1 b<origin@1" {
		t.Fatalf("tree while a moves: %s", got)
	}
	ts.validate(t)
	if code := a.joinVia(stream, "b", 3, false); code != "" {
		t.Fatalf("a joins b: %s", code)
	}
	if got := ts.shape(t, stream); got != "a<b@2 b<origin@1" {
		t.Fatalf("tree after the move: %s", got)
	}
	ts.validate(t)

	ds := testutil.Find[event.TreeDisplaced](t, ts.events)
	want := event.TreeDisplaced{Stream: stream, Node: "a", From: wire.OriginID, By: "b", RTTMs: 5, WorstMs: 150}
	if len(ds) != 1 || ds[0] != want {
		t.Fatalf("tree_displaced events %+v, want one %+v", ds, want)
	}
	if m := ts.metrics(t); !strings.Contains(m, "\nocm_displacements_total 1\n") {
		t.Fatalf("metrics without ocm_displacements_total 1:\n%s", m)
	}

	// Paths: b's RTT to the origin, then a's to b as its report updates it.
	c := newRelay(t, "c", 2).dial(ts.Addr(), "")
	cs := c.candidates(stream)
	if pb, pa := candidate(t, cs, "b").PathMs, candidate(t, cs, "a").PathMs; pb != 5 || pa != 8 {
		t.Fatalf("paths b %v a %v, want 5 and 8", pb, pa)
	}
	if _, err := a.c.Send(&wire.Report{Streams: []wire.StreamReport{{Stream: stream, Parent: "b", Level: 2, RTTMs: 40}}}); err != nil {
		t.Fatal(err)
	}
	a.sync()
	if pa := candidate(t, c.candidates(stream), "a").PathMs; pa != 45 {
		t.Fatalf("a's path after its report of 40 ms to b: %v, want 45", pa)
	}
	var snap api.Tree
	ts.getJSON(t, "/api/v1/tree?stream="+stream, &snap)
	paths := map[string]float64{}
	for _, m := range snap.Nodes {
		paths[m.Node] = m.PathMs
	}
	if want := map[string]float64{"a": 45, "b": 5}; !reflect.DeepEqual(paths, want) {
		t.Fatalf("tree API paths %v, want %v", paths, want)
	}
}

// A displaced child that does not move is detached after
// tree.DisplaceHold by the sweep and told to rejoin; the origin is back
// within its capacity.
func TestDisplacedChildThatStaysIsDetached(t *testing.T) {
	ts, a, b := displaceSetup(t, nil)
	if code := b.joinVia(stream, wire.OriginID, 5, true); code != "" {
		t.Fatalf("b displacing a at the origin: %s", code)
	}
	if rc := a.waitReconnect(); rc.Reason != wire.ReasonDisplaced {
		t.Fatalf("a told %+v", rc)
	}
	ts.sweep(t)
	if got := ts.shape(t, stream); got != "a<origin@1 b<origin@1" {
		t.Fatalf("tree before the hold ends: %s", got)
	}
	ts.clock.Advance(tree.DisplaceHold + 1)
	ts.sweep(t)
	if rc := a.waitReconnect(); rc.Reason != wire.ReasonCapacity || rc.Parent != wire.OriginID {
		t.Fatalf("a told %+v after the hold, want capacity", rc)
	}
	if got := ts.shape(t, stream); got != "a<-@1 b<origin@1" {
		t.Fatalf("tree after the hold: %s", got)
	}
	ts.validate(t)
}

// No displacement when the newcomer is not close enough, or when the
// server has it off: a plain "full", and the far child is left alone.
func TestDisplacementRefused(t *testing.T) {
	for _, tc := range []struct {
		name string
		mod  func(*Server)
		rtt  float64
	}{
		{"not close enough", nil, 100},
		{"off", func(s *Server) { s.NoDisplace = true }, 5},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ts, a, b := displaceSetup(t, tc.mod)
			origin := false
			for _, c := range b.candidates(stream) {
				origin = origin || c.Node == wire.OriginID
			}
			if off := tc.mod != nil; origin == off {
				t.Fatalf("full origin offered: %v, with displacement off: %v", origin, off)
			}
			if code := b.joinVia(stream, wire.OriginID, tc.rtt, true); code != wire.CodeFull {
				t.Fatalf("b's displacing join answered %q, want %s", code, wire.CodeFull)
			}
			if rcs := a.reconnects(); len(rcs) != 0 {
				t.Fatalf("a told %v", rcs)
			}
			if got := ts.shape(t, stream); got != "a<origin@1" {
				t.Fatalf("tree: %s", got)
			}
			if n := len(testutil.Find[event.TreeDisplaced](t, ts.events)); n != 0 {
				t.Fatalf("%d tree_displaced events", n)
			}
		})
	}
}

// The slot a requester will most likely take is promised under a
// candidate with a free slot, never under a full one offered for
// displacement.
func TestLikelyPickSkipsDisplaceable(t *testing.T) {
	for _, tc := range []struct {
		name string
		cs   []tree.Candidate
		want string
	}{
		{"free deep relay over full origin", []tree.Candidate{
			{ID: tree.Origin, Clients: 1, Capacity: 1, Worst: 150},
			{ID: "a", Level: 3, Clients: 1, Capacity: 2},
		}, "a"},
		{"only displaceable", []tree.Candidate{{ID: tree.Origin, Clients: 1, Capacity: 1, Worst: 150}}, ""},
		{"full without displacement still counts", []tree.Candidate{{ID: tree.Origin, Clients: 1, Capacity: 1}}, tree.Origin},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := likelyPick(tc.cs)
			if got != tc.want || ok != (tc.want != "") {
				t.Fatalf("likelyPick = %q, %v; want %q", got, ok, tc.want)
			}
		})
	}
}

// A full relay with a far child is offered for displacement by default;
// Displace < 0 (--displace 0) offers the origin only.
func TestDisplaceFullRelay(t *testing.T) {
	for _, tc := range []struct {
		name     string
		displace int
		want     float64 // a's displace_ms
	}{{"default", 0, 40}, {"origin only", -1, 0}} {
		t.Run(tc.name, func(t *testing.T) {
			ts, _, b := displaceSetup(t, func(s *Server) { s.Displace = tc.displace })
			c := newRelay(t, "c", 2).dial(ts.Addr(), "")
			for r, rtt := range map[*relay]float64{b: 40, c: 30} { // a full, with far children
				if code := r.joinVia(stream, "a", rtt, false); code != "" {
					t.Fatalf("%s joins a: %s", r.id, code)
				}
			}
			d := newRelay(t, "d", 2).dial(ts.Addr(), "")
			cs := d.candidates(stream)
			if o := candidate(t, cs, wire.OriginID); o.DisplaceMs != 150 {
				t.Fatalf("origin offered as %+v, want displace_ms 150", o)
			}
			got := 0.0
			for _, k := range cs {
				if k.Node == "a" {
					got = k.DisplaceMs
				}
			}
			if got != tc.want {
				t.Fatalf("a offered for displacement at %v ms, want %v; candidates %+v", got, tc.want, cs)
			}
		})
	}
}

// An attached relay's improvement round (candidates asked without
// excluding anything) is promised no slot: before, the origin's last
// free slot was promised to the relay already under the origin, and the
// origin looked full to the next relay for promiseHold.
func TestImprovementRoundPromisesNothing(t *testing.T) {
	ts := startServer(t, func(s *Server) { s.OriginCapacity = 2 })
	a := newRelay(t, "a", 2).dial(ts.Addr(), "")
	if code := a.joinVia(stream, wire.OriginID, 5, false); code != "" {
		t.Fatalf("a joins the origin: %s", code)
	}
	candidate(t, a.candidates(stream), wire.OriginID) // a's improvement round
	b := newRelay(t, "b", 2).dial(ts.Addr(), "")
	if o := candidate(t, b.candidates(stream), wire.OriginID); o.Clients != 1 {
		t.Errorf("after a's round the origin is offered to b with %d of its 2 slots taken, want 1", o.Clients)
	}
	// A relay that lost its parent still gets its promise.
	c := newRelay(t, "c", 2).dial(ts.Addr(), "")
	if code := c.joinVia(stream, "a", 5, false); code != "" {
		t.Fatalf("c joins a: %s", code)
	}
	c.candidates(stream, "a")
	for _, o := range newRelay(t, "d", 2).dial(ts.Addr(), "").candidates(stream) {
		if o.Node == wire.OriginID {
			t.Errorf("after c's resolve without a, the origin is offered to d as %+v, want it full (a, and c's promise)", o)
		}
	}
}
