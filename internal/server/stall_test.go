package server

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ocm-overlay/ocm/internal/api"
	"github.com/ocm-overlay/ocm/internal/event"
	"github.com/ocm-overlay/ocm/internal/testutil"
	"github.com/ocm-overlay/ocm/internal/wire"
)

// quickStalls judges stalls 50ms after they are said, not 5s.
func quickStalls(s *Server) {
	s.OriginCapacity = 2
	s.StallConfirm = 50 * time.Millisecond
	s.QuarantineClean = time.Minute
}

// stall is what a relay whose upstream parent stopped sending does: ask
// for candidates without it.
func (r *relay) stall(s, parent string) []wire.Candidate {
	r.t.Helper()
	return r.candidates(s, parent)
}

func nodeEntry(t *testing.T, ts *testServer, id string) api.Node {
	t.Helper()
	var nodes []api.Node
	ts.getJSON(t, "/api/v1/nodes", &nodes)
	for _, n := range nodes {
		if n.ID == id {
			return n
		}
	}
	t.Fatalf("no node %s in /api/v1/nodes", id)
	return api.Node{}
}

func offered(cs []wire.Candidate) []string {
	out := []string{}
	for _, c := range cs {
		out = append(out, c.Node)
	}
	return out
}

// TestBlackHoleQuarantined: a relay that stays connected while two
// children lose their stream under it is passed over: no longer offered
// (nor the relays below it), a joined under it refused, its API entry
// saying why; its first victim alone is not enough. Clean reports for
// QuarantineClean bring it back.
func TestBlackHoleQuarantined(t *testing.T) {
	ts := startServer(t, quickStalls)
	// The victims join bh as a relay's selection would: it looks best.
	rs := ts.build(t, "bh<origin honest<origin v1<bh v2<bh v3<bh")
	bh, victims := rs["bh"], []*relay{rs["v1"], rs["v2"], rs["v3"]}

	// The first victim: counted, not enough. Asking again changes nothing.
	victims[0].stall(stream, "bh")
	victims[0].stall(stream, "bh")
	ev := waitEvent[event.ChildStalled](t, ts, "bh")
	if ev.Child != "v1" || ev.Verdict != stallCounted {
		t.Fatalf("first stall: %+v", ev)
	}
	if got := offered(victims[2].candidates(stream)); !slices.Contains(got, "bh") {
		t.Fatalf("after one victim bh is no longer offered: %v", got)
	}

	// The second: quarantined.
	victims[1].stall(stream, "bh")
	q := waitEvent[event.NodeQuarantined](t, ts, "bh")
	t.Logf("quarantined: %v", q.Reason)
	if n := len(testutil.Find[event.ChildStalled](t, ts.events)); n != 2 {
		t.Errorf("%d child_stalled events, want 2 (v1's repeated ask is one stall)", n)
	}
	got := offered(victims[2].candidates(stream))
	if slices.Contains(got, "bh") || slices.ContainsFunc(got, func(id string) bool { return strings.HasPrefix(id, "v") }) {
		t.Errorf("offered %v: bh and the relays below it must not be", got)
	}
	if !slices.Contains(got, "honest") {
		t.Errorf("offered %v: honest must be", got)
	}
	if code := newRelay(t, "v4", 2).dial(ts.Addr(), "").join(stream, "bh"); code != wire.CodeQuarantined {
		t.Errorf("joined under bh answered %q, want %s", code, wire.CodeQuarantined)
	}
	n := nodeEntry(t, ts, "bh")
	if !n.Quarantined || !strings.Contains(n.QuarantineReason, "v1, v2") || !strings.Contains(n.QuarantineReason, "clean reports") {
		t.Errorf("bh's API entry: quarantined %v, reason %q", n.Quarantined, n.QuarantineReason)
	}
	if h := nodeEntry(t, ts, "honest"); h.Quarantined {
		t.Errorf("honest is quarantined: %q", h.QuarantineReason)
	}
	m := ts.metrics(t)
	for _, want := range []string{`ocm_child_stalls_total{verdict="counted"} 2`, "ocm_quarantines_total 1", "ocm_nodes_quarantined 1"} {
		if !strings.Contains(m, want) {
			t.Errorf("metrics lack %q", want)
		}
	}
	// It keeps its children; the tree stays valid.
	if got := ts.shape(t, stream); got != "bh<origin@1 honest<origin@1 v1<bh@2 v2<bh@2 v3<bh@2" {
		t.Errorf("shape %q", got)
	}
	ts.validate(t)

	// Its own reports: lossy ones restart the clock, clean ones for
	// QuarantineClean lift it.
	report := func(loss, bitrate float64) {
		bh.sendOnly(&wire.Report{CPU: 0.1, Clients: 3, Streams: []wire.StreamReport{
			{Stream: stream, Parent: wire.OriginID, Level: 1, Readers: 3, Loss: loss, Bitrate: bitrate}}})
		bh.sync()
	}
	report(0, 1e6)
	ts.clock.Advance(time.Minute - time.Second)
	report(0.5, 1e6)
	ts.clock.Advance(time.Minute)
	report(0, 1e6)
	if n := nodeEntry(t, ts, "bh"); !n.Quarantined {
		t.Fatal("lifted although a lossy report came within the last minute")
	}
	report(0, 1e6)
	ts.clock.Advance(time.Minute)
	report(0, 1e6)
	waitEvent[event.NodeReleased](t, ts, "bh")
	if n := nodeEntry(t, ts, "bh"); n.Quarantined || n.QuarantineReason != "" {
		t.Errorf("after clean reports: quarantined %v %q", n.Quarantined, n.QuarantineReason)
	}
	if got := offered(victims[2].candidates(stream)); !slices.Contains(got, "bh") {
		t.Errorf("after release bh not offered: %v", got)
	}
}

// TestStallExcused: children losing their stream do not count against a
// parent that lost its own upstream (an origin restart), nor against one
// that failed or is leaving.
func TestStallExcused(t *testing.T) {
	t.Run("parent lost its upstream", func(t *testing.T) {
		ts := startServer(t, quickStalls)
		rs := ts.build(t, "p<origin c1<p c2<p")
		rs["p"].stall(stream, wire.OriginID) // the origin went away
		rs["c1"].stall(stream, "p")
		rs["c2"].stall(stream, "p")
		for _, ev := range waitEvents[event.ChildStalled](t, ts, "p", 2) {
			if ev.Verdict != stallExcused || !strings.Contains(ev.Why, "lost its own upstream") {
				t.Errorf("stall %+v, want excused", ev)
			}
		}
		if n := nodeEntry(t, ts, "p"); n.Quarantined {
			t.Errorf("p quarantined: %q", n.QuarantineReason)
		}
		if m := ts.metrics(t); !strings.Contains(m, `ocm_child_stalls_total{verdict="excused"} 2`) {
			t.Errorf("metrics lack the excused stalls")
		}
	})
	t.Run("parent told to reconnect", func(t *testing.T) {
		// Its own parent k failed: p, told to reconnect, rejoins at once,
		// and its children's stalls from the switch come after.
		ts := startServer(t, quickStalls)
		rs := ts.build(t, "k<origin p<k c1<p c2<p")
		rs["k"].c.Close()
		if rc := rs["p"].waitReconnect(); rc.Reason != wire.ReasonParentFailed {
			t.Fatalf("p told %+v", rc)
		}
		rs["p"].mustJoin(stream, "origin")
		rs["c1"].stall(stream, "p")
		rs["c2"].stall(stream, "p")
		for _, ev := range waitEvents[event.ChildStalled](t, ts, "p", 2) {
			if ev.Verdict != stallExcused {
				t.Errorf("stall %+v, want excused", ev)
			}
		}
		if n := nodeEntry(t, ts, "p"); n.Quarantined {
			t.Errorf("p quarantined: %q", n.QuarantineReason)
		}
	})
	t.Run("parent failed", func(t *testing.T) {
		ts := startServer(t, func(s *Server) { quickStalls(s); s.StallConfirm = time.Hour })
		rs := ts.build(t, "p<origin c1<p c2<p")
		// Both children notice before the server reads p's close.
		rs["c1"].stall(stream, "p")
		rs["c2"].stall(stream, "p")
		rs["p"].c.Close()
		waitEvent[event.NodeFailed](t, ts, "p")
		// p comes back at once with the same id: it starts clean.
		p2 := newRelay(t, "p", 4).dial(ts.Addr(), "")
		p2.mustJoin(stream, "origin")
		// Judge every pending stall now, whatever the clock.
		ts.check(t, func(st *state) { st.confirmStalls(time.Now().Add(time.Hour)) })
		if got := testutil.Find[event.ChildStalled](t, ts.events); len(got) != 0 {
			t.Errorf("stalls under a failed parent judged: %v", got)
		}
		if n := nodeEntry(t, ts, "p"); n.Quarantined {
			t.Errorf("p quarantined after its failure: %q", n.QuarantineReason)
		}
	})
}
