package server

import (
	"context"
	"io"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/ocm-overlay/ocm/internal/api"
	"github.com/ocm-overlay/ocm/internal/event"
	"github.com/ocm-overlay/ocm/internal/testutil"

	"github.com/ocm-overlay/ocm/internal/tree"
	"github.com/ocm-overlay/ocm/internal/wire"
)

// sendOnly sends body without waiting for its answer and returns its id.
func (r *relay) sendOnly(body wire.Body) uint64 {
	r.t.Helper()
	id, err := r.c.Send(body)
	if err != nil {
		r.t.Fatalf("%s: send %s: %v", r.id, body.Type(), err)
	}
	return id
}

// answered syncs and reports whether the answer to id has arrived (it
// stays in r.pushed).
func (r *relay) answered(id uint64) bool {
	r.t.Helper()
	r.sync()
	for _, m := range r.pushed {
		if m.Re == id {
			return true
		}
	}
	return false
}

// waitAnswer reads until the answer to id arrives.
func (r *relay) waitAnswer(id uint64) wire.Msg {
	r.t.Helper()
	for i, m := range r.pushed {
		if m.Re == id {
			r.pushed = append(r.pushed[:i:i], r.pushed[i+1:]...)
			return m
		}
	}
	for {
		m, err := r.c.ReadMsg()
		if err != nil {
			r.t.Fatalf("%s: waiting for the answer to %d: %v", r.id, id, err)
		}
		if m.Re == id {
			return m
		}
		r.pushed = append(r.pushed, m)
	}
}

// follow obeys a handover reconnect: joined with its target.
func (r *relay) follow(rc *wire.Reconnect) {
	r.t.Helper()
	if rc.Target == "" {
		r.t.Fatalf("%s: reconnect without target %+v", r.id, rc)
	}
	r.mustJoin(rc.Stream, rc.Target)
}

// A relay leaving a stream it serves children on: each child is sent a
// target (never its own subtree; the leaving relay's slot at the origin
// goes to one of them; reserved, so a newcomer cannot take it), the
// leaving relay stays their parent until they join, and its left is acked
// only when the last one did. The leaving side uses wire.Client, as
// ocm-relay does.
func TestHandoverLeftWaitsForChildren(t *testing.T) {
	for _, pol := range tree.Policies {
		t.Run(string(pol), func(t *testing.T) {
			ts := startServer(t, func(s *Server) { s.Recovery = pol; s.OriginCapacity = 2; s.HandoverTimeout = time.Hour })
			ctx := context.Background()
			c, err := wire.Dial("tcp", ts.Addr(), guard)
			if err != nil {
				t.Fatal(err)
			}
			leaving := wire.NewClient(c)
			t.Cleanup(func() { leaving.Close() })
			w, err := leaving.Hello(ctx, &wire.Hello{Node: "L", RTSP: "127.0.0.2:5554", Willing: true, Capacity: 2})
			if err != nil {
				t.Fatal(err)
			}
			if w.Handover() != time.Hour {
				t.Fatalf("welcome %+v", w)
			}
			x := newRelay(t, "x", 1)
			x.rtsp = "127.0.0.3:5554"
			x.dial(ts.Addr(), "")
			c1 := newRelay(t, "c1", 2).dial(ts.Addr(), "")
			c2 := newRelay(t, "c2", 2).dial(ts.Addr(), "")
			g := newRelay(t, "g", 2).dial(ts.Addr(), "")
			z := newRelay(t, "z", 2).dial(ts.Addr(), "")
			x.mustJoin(stream, "origin")
			if _, err := leaving.Join(ctx, stream, "origin"); err != nil {
				t.Fatal(err)
			}
			c1.mustJoin(stream, "L")
			c2.mustJoin(stream, "L")
			g.mustJoin(stream, "c1")

			done := make(chan error, 1)
			go func() { done <- leaving.Leave(ctx, stream) }()

			// c1 (the bigger subtree) takes L's origin slot, c2 goes to x
			// (level 1, free) rather than below c1; g is not told.
			rc1, rc2 := c1.waitReconnect(), c2.waitReconnect()
			if want := (&wire.Reconnect{Stream: stream, Reason: wire.ReasonParentLeft, Parent: "L", Target: wire.OriginID,
				TargetRTSP: "127.0.0.1:5554"}); !reflect.DeepEqual(rc1, want) {
				t.Fatalf("c1 got %+v, want %+v", rc1, want)
			}
			if want := (&wire.Reconnect{Stream: stream, Reason: wire.ReasonParentLeft, Parent: "L", Target: "x",
				TargetRTSP: "127.0.0.3:5554"}); !reflect.DeepEqual(rc2, want) {
				t.Fatalf("c2 got %+v, want %+v", rc2, want)
			}
			if got := g.reconnects(); len(got) != 0 {
				t.Fatalf("g told %v", got)
			}
			// Meanwhile the tree is unchanged and valid, L marked leaving,
			// and the promised slots are not offered to z.
			if got, want := ts.shape(t, stream), "L<origin@1 c1<L@2 c2<L@2 g<c1@3 x<origin@1"; got != want {
				t.Fatalf("shape %q, want %q", got, want)
			}
			ts.validate(t)
			var snap api.Tree
			ts.getJSON(t, "/api/v1/tree?stream="+stream, &snap)
			for _, m := range snap.Nodes {
				if m.Leaving != (m.Node == "L") {
					t.Fatalf("member %+v", m)
				}
			}
			for _, cand := range z.candidates(stream) {
				if cand.Node == "x" || cand.Node == "L" || cand.Node == wire.OriginID {
					t.Fatalf("z offered %+v during the handover", cand)
				}
			}
			if code := z.join(stream, "x"); code != wire.CodeFull {
				t.Fatalf("z joining reserved x: %q", code)
			}
			if code := z.join(stream, "L"); code != wire.CodeNotActive {
				t.Fatalf("z joining leaving L: %q", code)
			}

			c1.follow(rc1)
			select {
			case err := <-done:
				t.Fatalf("left acked before c2 switched: %v", err)
			default:
			}
			ts.check(t, func(st *state) {}) // c1's join fully processed
			select {
			case err := <-done:
				t.Fatalf("left acked before c2 switched: %v", err)
			default:
			}
			c2.follow(rc2)
			select {
			case err := <-done:
				if err != nil {
					t.Fatalf("left: %v", err)
				}
			case <-time.After(guard):
				t.Fatal("left not acked after the children switched")
			}
			if got, want := ts.shape(t, stream), "c1<origin@1 c2<x@2 g<c1@2 x<origin@1"; got != want {
				t.Fatalf("shape %q, want %q", got, want)
			}
			ts.validate(t)
			for _, r := range []*relay{c1, c2, g, x} {
				if got := r.reconnects(); len(got) != 0 {
					t.Fatalf("%s told %v after the handover", r.id, got)
				}
			}
			if evs := testutil.Find[event.HandoverDone](t, ts.events); len(evs) != 1 || evs[0].Result != "switched" {
				t.Fatalf("handover_done events %v", evs)
			}
			// L closes after the ack: a clean leave, nobody told.
			leaving.Close()
			waitEvent[event.NodeLeft](t, ts, "L")
			c1.sync()
			if got := c1.reconnects(); len(got) != 0 {
				t.Fatalf("c1 told %v after L closed", got)
			}
		})
	}
}

// Children that do not switch in time: the left is acked at the
// deadline, and the policy deals with those still below (repair: told to
// resolve by themselves, without target).
func TestHandoverTimeout(t *testing.T) {
	ts := startServer(t, func(s *Server) { s.HandoverTimeout = 50 * time.Millisecond })
	L := newRelay(t, "L", 2).dial(ts.Addr(), "")
	c1 := newRelay(t, "c1", 2).dial(ts.Addr(), "")
	c2 := newRelay(t, "c2", 2).dial(ts.Addr(), "")
	L.mustJoin(stream, "origin")
	c1.mustJoin(stream, "L")
	c2.mustJoin(stream, "L")
	id := L.sendOnly(&wire.Left{Stream: stream})
	c1.follow(c1.waitReconnect())
	if rc := c2.waitReconnect(); rc.Target == "" {
		t.Fatalf("c2 got %+v", rc)
	}
	start := time.Now()
	if m := L.waitAnswer(id); m.Type != wire.TypeAck {
		t.Fatalf("left answered by %+v", m)
	}
	if time.Since(start) > guard/2 {
		t.Fatal("too slow")
	}
	if rc := c2.waitReconnect(); rc.Reason != wire.ReasonParentLeft || rc.Target != "" {
		t.Fatalf("c2 after the timeout: %+v", rc)
	}
	if got, want := ts.shape(t, stream), "c1<origin@1 c2<-@2"; got != want {
		t.Fatalf("shape %q, want %q", got, want)
	}
	ts.validate(t)
	if evs := testutil.Find[event.HandoverDone](t, ts.events); len(evs) != 1 || evs[0].Result != "timeout" {
		t.Fatalf("handover_done events %v", evs)
	}
	// The promised slot is free again: c2 joins the origin's last but one.
	c2.mustJoin(stream, "origin")
	ts.validate(t)
}

// A child failing or leaving counts as switched; the leaving relay
// failing ends the handover (the policy applies as to any failure).
func TestHandoverChildGone(t *testing.T) {
	ts := startServer(t, func(s *Server) { s.HandoverTimeout = time.Hour })
	L := newRelay(t, "L", 3).dial(ts.Addr(), "")
	c1 := newRelay(t, "c1", 2).dial(ts.Addr(), "")
	c2 := newRelay(t, "c2", 2).dial(ts.Addr(), "")
	c3 := newRelay(t, "c3", 2).dial(ts.Addr(), "")
	L.mustJoin(stream, "origin")
	for _, c := range []*relay{c1, c2, c3} {
		c.mustJoin(stream, "L")
	}
	id := L.sendOnly(&wire.Left{Stream: stream})
	for _, c := range []*relay{c1, c2, c3} {
		c.waitReconnect()
	}
	c1.c.Close()
	if m := c2.request(&wire.Left{Stream: stream}); m.Type != wire.TypeAck {
		t.Fatalf("c2's own left: %+v", m)
	}
	if L.answered(id) {
		t.Fatal("acked with c3 still below")
	}
	c3.mustJoin(stream, "origin")
	if m := L.waitAnswer(id); m.Type != wire.TypeAck {
		t.Fatalf("left answered by %+v", m)
	}
	if got, want := ts.shape(t, stream), "c3<origin@1"; got != want {
		t.Fatalf("shape %q, want %q", got, want)
	}
	ts.validate(t)
	ts.check(t, func(st *state) {
		if len(st.handovers) != 0 {
			t.Fatalf("handovers %+v", st.handovers)
		}
	})
}

func TestHandoverLeavingNodeFails(t *testing.T) {
	ts := startServer(t, func(s *Server) { s.HandoverTimeout = time.Hour })
	rs := ts.chain(t, "L", "c")
	L, c := rs[0], rs[1]
	L.sendOnly(&wire.Left{Stream: stream})
	c.waitReconnect()
	L.c.Close()
	if rc := c.waitReconnect(); rc.Reason != wire.ReasonParentFailed {
		t.Fatalf("c: %+v", rc)
	}
	ts.check(t, func(st *state) {
		if len(st.handovers) != 0 {
			t.Fatalf("handovers %+v", st.handovers)
		}
	})
	if evs := testutil.Find[event.HandoverDone](t, ts.events); len(evs) != 1 || evs[0].Result != "gone" {
		t.Fatalf("handover_done events %v", evs)
	}
	ts.validate(t)
}

// A drain starts the handover of every stream the node is in at once;
// the relay's left is acked when its children switched (or at once if
// the drain already took it out).
func TestDrainHandsOver(t *testing.T) {
	const other = "rtsp://127.0.0.1:5554/other"
	ts := startServer(t, func(s *Server) { s.OriginCapacity = 1; s.HandoverTimeout = time.Hour })
	L := newRelay(t, "L", 4).dial(ts.Addr(), "")
	c1 := newRelay(t, "c1", 2).dial(ts.Addr(), "")
	c2 := newRelay(t, "c2", 2).dial(ts.Addr(), "")
	L.mustJoin(stream, "origin")
	L.mustJoin(other, "origin")
	c1.mustJoin(stream, "L")
	c2.mustJoin(stream, "L")

	var sent api.Sent
	if code := ts.post(t, "/api/v1/drain?node=L", &sent); code != http.StatusOK {
		t.Fatalf("drain: %d", code)
	}
	want := []api.Target{{Node: "L", Type: "drain"}, {Node: "c1", Stream: stream, Type: "reconnect", Target: "origin"},
		{Node: "c2", Stream: stream, Type: "reconnect", Target: "c1"}}
	if !reflect.DeepEqual(sent.Sent, want) {
		t.Fatalf("sent %+v, want %+v", sent.Sent, want)
	}
	if m, err := L.next(); err != nil || m.Type != wire.TypeDrain {
		t.Fatalf("L got %+v %v", m, err)
	}
	// The other stream had no children: L is out of it already.
	if code := ts.getJSON(t, "/api/v1/tree?stream="+other, nil); code != http.StatusNotFound {
		t.Fatalf("other stream: %d", code)
	}
	idOther := L.sendOnly(&wire.Left{Stream: other})
	id := L.sendOnly(&wire.Left{Stream: stream})
	if m := L.waitAnswer(idOther); m.Type != wire.TypeAck {
		t.Fatalf("left of the other stream: %+v", m)
	}
	c1.follow(c1.waitReconnect())
	if L.answered(id) {
		t.Fatal("acked before c2 switched")
	}
	c2.follow(c2.waitReconnect())
	if m := L.waitAnswer(id); m.Type != wire.TypeAck {
		t.Fatalf("left: %+v", m)
	}
	if got, want := ts.shape(t, stream), "c1<origin@1 c2<c1@2"; got != want {
		t.Fatalf("shape %q, want %q", got, want)
	}
	ts.validate(t)
	resp, err := http.Get(ts.url("/metrics"))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{`ocm_handovers_total{result="started"} 2`, `ocm_handovers_total{result="switched"} 2`,
		"ocm_handovers_active 0", `ocm_reconnects_sent_total{reason="parent_left"} 2`} {
		if !strings.Contains(string(body), want) {
			t.Errorf("metrics lack %q:\n%s", want, body)
		}
	}
	// A second drain of a node in no stream only sends drain.
	if ts.post(t, "/api/v1/drain?node=L", &sent); len(sent.Sent) != 1 {
		t.Fatalf("second drain sent %+v", sent.Sent)
	}
	// A left for a stream the node was never in is still an error.
	if m := c1.request(&wire.Left{Stream: other}); m.Type != wire.TypeError {
		t.Fatalf("c1 left of a stream it is not in: %+v", m)
	}
}

// Several children move at once with one slot: the first gets it, the
// others resolve by themselves (no target), and the left is acked once
// they all joined somewhere.
func TestHandoverNoRoom(t *testing.T) {
	ts := startServer(t, func(s *Server) { s.OriginCapacity = 1; s.HandoverTimeout = time.Hour })
	L := newRelay(t, "L", 3).dial(ts.Addr(), "")
	cs := []*relay{newRelay(t, "c1", 0), newRelay(t, "c2", 0), newRelay(t, "c3", 0)}
	L.mustJoin(stream, "origin")
	for _, c := range cs {
		c.dial(ts.Addr(), "")
		c.mustJoin(stream, "L")
	}
	id := L.sendOnly(&wire.Left{Stream: stream})
	var targets []string
	for _, c := range cs {
		targets = append(targets, c.waitReconnect().Target)
	}
	if want := []string{"origin", "", ""}; !reflect.DeepEqual(targets, want) {
		t.Fatalf("targets %q, want %q", targets, want)
	}
	// c2 resolving by itself is offered nothing: the origin slot is c1's.
	if got := cs[1].candidates(stream); len(got) != 0 {
		t.Fatalf("c2 offered %+v", got)
	}
	cs[0].mustJoin(stream, "origin")
	if L.answered(id) {
		t.Fatal("acked with c2, c3 still below")
	}
	for _, c := range cs[1:] {
		if m := c.request(&wire.Left{Stream: stream}); m.Type != wire.TypeAck {
			t.Fatalf("%s left: %+v", c.id, m)
		}
	}
	if m := L.waitAnswer(id); m.Type != wire.TypeAck {
		t.Fatalf("left: %+v", m)
	}
	ts.validate(t)
}

// Gradual: a node is told as soon as its old parent has rejoined, long
// before its level's step, while a node whose parent has not is not.
func TestGradualTellsNodeWhenParentIsBack(t *testing.T) {
	ts := startServer(t, func(s *Server) { s.Recovery = tree.Gradual; s.ReconnectStep = time.Hour })
	rs := map[string]*relay{}
	for _, id := range []string{"a", "b1", "b2", "c1", "c2", "d1"} {
		rs[id] = newRelay(t, id, 2).dial(ts.Addr(), "")
	}
	rs["a"].mustJoin(stream, "origin")
	rs["b1"].mustJoin(stream, "a")
	rs["b2"].mustJoin(stream, "a")
	rs["c1"].mustJoin(stream, "b1")
	rs["c2"].mustJoin(stream, "b2")
	rs["d1"].mustJoin(stream, "c1")
	rs["a"].c.Close()

	silent := func(ids ...string) {
		t.Helper()
		for _, id := range ids {
			if got := rs[id].reconnects(); len(got) != 0 {
				t.Fatalf("%s told %v too early", id, got)
			}
		}
	}
	told := func(reason string, ids ...string) {
		t.Helper()
		for _, id := range ids {
			if rc := rs[id].waitReconnect(); rc.Reason != reason {
				t.Fatalf("%s: %+v, want %s", id, rc, reason)
			}
		}
	}
	told(wire.ReasonParentFailed, "b1", "b2")
	silent("c1", "c2", "d1")
	rs["b1"].mustJoin(stream, "origin")
	told(wire.ReasonAncestorFailed, "c1")
	silent("c2", "d1") // b2 has not rejoined yet, c1 neither
	rs["c1"].mustJoin(stream, "b1")
	told(wire.ReasonAncestorFailed, "d1")
	silent("c2")
	rs["b2"].mustJoin(stream, "origin")
	told(wire.ReasonAncestorFailed, "c2")
	rs["c2"].mustJoin(stream, "b2")
	rs["d1"].mustJoin(stream, "c1")
	ts.check(t, func(st *state) {
		if len(st.cascades) != 0 {
			t.Fatalf("cascades left %+v", st.cascades)
		}
	})
	ts.validate(t)
}

// A level whose nodes are gone (failed meanwhile) does not hold the next.
func TestGradualLevelGone(t *testing.T) {
	ts := startServer(t, func(s *Server) { s.Recovery = tree.Gradual; s.ReconnectStep = time.Hour })
	rs := ts.chain(t, "a", "b", "c")
	a, b, c := rs[0], rs[1], rs[2]
	a.c.Close()
	b.waitReconnect()
	b.c.Close()
	if rc := c.waitReconnect(); rc.Reason != wire.ReasonAncestorFailed {
		t.Fatalf("c: %+v", rc)
	}
}

// Operators reconnect one node or its subtree; to= must not be inside it.
func TestOperatorReconnect(t *testing.T) {
	ts := startServer(t, func(s *Server) { s.Recovery = tree.Reconnect })
	a := newRelay(t, "a", 2).dial(ts.Addr(), "")
	b := newRelay(t, "b", 2).dial(ts.Addr(), "")
	c := newRelay(t, "c", 2).dial(ts.Addr(), "")
	d := newRelay(t, "d", 2).dial(ts.Addr(), "")
	a.mustJoin(stream, "origin")
	b.mustJoin(stream, "a")
	c.mustJoin(stream, "b")
	d.mustJoin(stream, "origin")

	var sent api.Sent
	if code := ts.post(t, "/api/v1/reconnect?node=a&subtree=1", &sent); code != http.StatusOK || len(sent.Sent) != 3 {
		t.Fatalf("subtree: %d %+v", code, sent)
	}
	for _, r := range []*relay{a, b, c} {
		if rc := r.waitReconnect(); rc.Reason != wire.ReasonOperator || rc.Target != "" {
			t.Fatalf("%s: %+v", r.id, rc)
		}
	}
	if got := d.reconnects(); len(got) != 0 {
		t.Fatalf("d told %v", got)
	}
	if code := ts.post(t, "/api/v1/reconnect?node=b", &sent); code != http.StatusOK || len(sent.Sent) != 1 {
		t.Fatalf("one node: %d %+v", code, sent)
	}
	b.waitReconnect()
	if got := c.reconnects(); len(got) != 0 {
		t.Fatalf("c told %v", got)
	}
	for _, to := range []string{"a", "b", "c"} {
		if code := ts.post(t, "/api/v1/reconnect?node=a&to="+to, nil); code != http.StatusBadRequest {
			t.Errorf("to=%s inside a's subtree: %d", to, code)
		}
	}
	if code := ts.post(t, "/api/v1/reconnect?node=b&to=d", &sent); code != http.StatusOK ||
		!reflect.DeepEqual(sent.Sent, []api.Target{{Node: "b", Stream: stream, Type: "reconnect", Target: "d"}}) {
		t.Fatalf("to=d: %d %+v", code, sent)
	}
	if rc := b.waitReconnect(); rc.Target != "d" || rc.TargetRTSP != "127.0.0.1:5554" {
		t.Fatalf("b: %+v", rc)
	}
	b.mustJoin(stream, "d")
	ts.validate(t)
}

// The wire client's view of the welcome under each policy.
func TestWelcomeStallWait(t *testing.T) {
	for _, tt := range []struct {
		pol  tree.Policy
		want time.Duration
	}{
		{tree.Repair, 0}, {tree.Drop, 0},
		{tree.Reconnect, 4 * time.Second}, {tree.Gradual, 4*time.Second + 3*250*time.Millisecond},
	} {
		ts := startServer(t, func(s *Server) {
			s.Recovery = tt.pol
			s.Heartbeat = time.Second
			s.ReconnectStep = 250 * time.Millisecond
		})
		r := newRelay(t, "a", 1).dial(ts.Addr(), "")
		if got := r.welcome.StallWait(3); got != tt.want || r.welcome.ReconnectStep() != 250*time.Millisecond {
			t.Errorf("%s: stall wait %v, want %v (%+v)", tt.pol, got, tt.want, r.welcome)
		}
		ts.Close()
	}
}
