package relay

import (
	"errors"
	"io"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ocm-overlay/ocm/internal/api"
	"github.com/ocm-overlay/ocm/internal/control"
	"github.com/ocm-overlay/ocm/internal/event"
	"github.com/ocm-overlay/ocm/internal/probe"
	"github.com/ocm-overlay/ocm/internal/server"
	"github.com/ocm-overlay/ocm/internal/testutil"
	"github.com/ocm-overlay/ocm/internal/tree"
	"github.com/ocm-overlay/ocm/internal/wire"
)

// member is a started relay with its fake mediator and the RTSP address
// the mediator says it listens on.
type member struct {
	*testRelay
	med  *fakeMediator
	rtsp string
}

// join starts a willing relay id on the server, connects its mediator
// (hello with a fresh RTSP address), resolves stream and, as a mediator
// whose pull plays, says it is active.
func join(t *testing.T, id, serverAddr, stream string, mod func(*Relay)) (*member, control.Upstream) {
	t.Helper()
	m := &member{testRelay: startRelay(t, id, serverAddr, mod), rtsp: startRTSP(t).Addr()}
	m.med = dialMediator(t, m.ControlAddr())
	m.med.hello(m.rtsp)
	up := m.med.resolve(stream)
	m.med.send(&control.Active{Stream: stream, Upstream: up})
	m.med.sync()
	return m, up
}

// originUp is the upstream of the stream pulled from the origin itself.
func originUp(originAddr string) control.Upstream {
	return control.Upstream{URL: streamOn(originAddr), Addr: originAddr, Node: wire.OriginID}
}

// relayUp is the upstream of the stream pulled from the relay m.
func relayUp(m *member, originAddr string) control.Upstream {
	return control.Upstream{URL: enhanced(m.rtsp, originAddr), Addr: m.rtsp, Node: m.NodeID}
}

// startParent starts what a relay offers as a parent at level 1: an RTSP
// server and a probe responder saying so; it returns the candidate the
// server gives for it.
func startParent(t *testing.T, node string) wire.Candidate {
	t.Helper()
	rtsp := startRTSP(t).Addr()
	pr := startProbeResponder(t, probe.Info{Node: node, Level: 1, Cores: 2, Willing: true, FreeCapacity: 3})
	return wire.Candidate{Node: node, RTSP: rtsp, Probe: pr.Addr(), Level: 1, Capacity: 4}
}

// TestResolveOriginOnly: with no other relay, the origin (probed with an
// RTSP OPTIONS round trip) is the only candidate, whatever the policy; the
// server's tree has the relay under it.
func TestResolveOriginOnly(t *testing.T) {
	for _, policy := range tree.Policies {
		t.Run(string(policy), func(t *testing.T) {
			origin := startRTSP(t)
			stream := streamOn(origin.Addr())
			srv := startServer(t, policy, nil)

			r := startRelay(t, "a", srv.Addr(), nil)
			med := dialMediator(t, r.ControlAddr())
			h := med.hello(startRTSP(t).Addr())
			if h.Node != "a" || h.Willing == nil || !*h.Willing || h.Error != "" {
				t.Fatalf("hello reply = %+v, want node a, willing", h)
			}

			if up, want := med.resolve(stream), originUp(origin.Addr()); up != want {
				t.Fatalf("upstream = %+v, want %+v", up, want)
			}
			snap := srv.tree(t, stream)
			if got := shape(snap); got != "a<origin@1" {
				t.Errorf("tree = %q, want a<origin@1", got)
			}
			if !slices.Equal(snap.Origin.Children, []string{"a"}) {
				t.Errorf("origin children = %v, want [a]", snap.Origin.Children)
			}

			// The session announced the policy; the join was reported.
			conn := testutil.Find[event.ServerLink](t, r.events)
			if len(conn) == 0 || conn[0].State != "connected" || conn[0].Recovery != string(policy) {
				t.Errorf("server events = %v, want connected with recovery %s", conn, policy)
			}
			joined := testutil.Find[event.Joined](t, r.events)
			if len(joined) != 1 || joined[0].Parent != wire.OriginID || joined[0].Level != 1 {
				t.Errorf("joined events = %v, want one under origin at level 1", joined)
			}
			if fb := testutil.Find[event.Fallback](t, r.events); len(fb) != 0 {
				t.Errorf("fallback with a server up: %v", fb)
			}
		})
	}
}

// TestResolveRelayCandidate: with the origin full, the second relay is
// offered the first, probes it (its probe responder answers) and pulls the
// enhanced URL from its mediator.
func TestResolveRelayCandidate(t *testing.T) {
	origin := startRTSP(t)
	stream := streamOn(origin.Addr())
	srv := startServer(t, tree.Repair, func(s *server.Server) { s.OriginCapacity = 1 })

	a, upA := join(t, "a", srv.Addr(), stream, nil)
	if want := originUp(origin.Addr()); upA != want {
		t.Fatalf("a: upstream = %+v, want %+v", upA, want)
	}
	b, upB := join(t, "b", srv.Addr(), stream, nil)
	if want := relayUp(a, origin.Addr()); upB != want {
		t.Fatalf("b: upstream = %+v, want %+v", upB, want)
	}
	if got := shape(srv.tree(t, stream)); got != "a<origin@1 b<a@2" {
		t.Errorf("tree = %q, want a<origin@1 b<a@2", got)
	}
	joined := testutil.Find[event.Joined](t, b.events)
	if len(joined) != 1 || joined[0].Parent != "a" || joined[0].Level != 2 || joined[0].Upstream != upB.URL {
		t.Errorf("b: joined events = %v, want one under a at level 2", joined)
	}
	// b now relays the stream at level 2 and says so to probes.
	res := probe.Probe(ctxGuard(t), b.ProbeAddr(), stream, 2*time.Second)
	if res.Err != nil || res.Info.Node != "b" || res.Info.Level != 2 || !res.Info.Willing {
		t.Errorf("probe b = %+v, want node b, level 2, willing", res)
	}
}

// silentServer accepts connections and never answers: it reads and
// drops what comes until the client goes or the test ends.
func silentServer(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	testutil.Serve(t, ln, guard, func(c net.Conn) { _, _ = io.Copy(io.Discard, c) })
	return ln.Addr().String()
}

// TestResolveFallback: without a usable ocm-server the relay answers the
// origin itself and emits a fallback event.
func TestResolveFallback(t *testing.T) {
	cases := []struct {
		name   string
		server func(t *testing.T) string
		reason string // in the fallback's reason
	}{
		{"connection refused", refusingAddr, "refused"},
		{"no welcome", silentServer, "hello"},
		{"hello refused", func(t *testing.T) string {
			return startServer(t, tree.Repair, func(s *server.Server) { s.Token = "secret" }).Addr()
		}, "token"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			origin := startRTSP(t)
			stream := streamOn(origin.Addr())
			a, up := join(t, "a", tc.server(t), stream, nil)
			if want := originUp(origin.Addr()); up != want {
				t.Fatalf("upstream = %+v, want %+v", up, want)
			}
			fb := testutil.Find[event.Fallback](t, a.events)
			if len(fb) != 1 || fb[0].Stream != stream {
				t.Fatalf("fallback events = %v, want one for %s", fb, stream)
			}
			if reason := fb[0].Reason; !strings.Contains(reason, tc.reason) {
				t.Errorf("fallback reason = %q, want it to mention %q", reason, tc.reason)
			}
			if j := testutil.Find[event.Joined](t, a.events); len(j) != 0 {
				t.Errorf("joined without a server: %v", j)
			}
		})
	}
}

// TestServerReconnect: a reconnect the operator asks the server for
// reaches the relay, which finds the upstream (the target, if named) and
// pushes a switch to its mediator.
func TestServerReconnect(t *testing.T) {
	// Level weighs so much that b prefers the origin while it has room.
	originFirst := func(r *Relay) { r.Weights.Level = 1000 }
	cases := []struct {
		name      string
		originCap int
		relays    []string // joined in this order; the first under the origin
		before    string   // the tree before the reconnect
		reconnect string   // node, then query parameters
		target    string   // the node the switch goes to
		wantTree  string
		log       string // logged by the relay told, if not ""
	}{
		{"re-resolve", 1, []string{"a"}, "a<origin@1", "a", wire.OriginID, "a<origin@1", ""},
		{"to another relay", 2, []string{"a", "b"}, "a<origin@1 b<origin@1", "b&to=a", "a", "a<origin@1 b<a@2", ""},
		{"target refused: resolve", 1, []string{"a", "b"}, "a<origin@1 b<a@2", "b&to=origin", "a", "a<origin@1 b<a@2",
			"handover target refused, resolving instead"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			origin := startRTSP(t)
			stream := streamOn(origin.Addr())
			srv := startServer(t, tree.Repair, func(s *server.Server) { s.OriginCapacity = tc.originCap })
			ms := map[string]*member{}
			for i, id := range tc.relays {
				var mod func(*Relay)
				if i > 0 {
					mod = originFirst
				}
				m, _ := join(t, id, srv.Addr(), stream, mod)
				ms[id] = m
			}
			if got := shape(srv.tree(t, stream)); got != tc.before {
				t.Fatalf("tree before = %q, want %q", got, tc.before)
			}
			node, _, _ := strings.Cut(tc.reconnect, "&")
			srv.post(t, "/api/v1/reconnect?node="+tc.reconnect)

			sw := ms[node].med.waitSwitch()
			want := originUp(origin.Addr())
			if tc.target != wire.OriginID {
				want = relayUp(ms[tc.target], origin.Addr())
			}
			if sw.Stream != stream || sw.Upstream == nil || *sw.Upstream != want {
				t.Fatalf("switch = %+v %+v, want %s from %+v", sw, sw.Upstream, stream, want)
			}
			if got := shape(srv.tree(t, stream)); got != tc.wantTree {
				t.Errorf("tree = %q, want %q", got, tc.wantTree)
			}
			if tc.log != "" {
				ms[node].log.wait(t, tc.log)
			}
			for id, m := range ms {
				if id != node {
					m.med.noSwitch()
				}
			}
		})
	}
}

// TestStaleReconnect: a reconnect about a parent the relay no longer has
// (it moved on faster than the server's message) is ignored; one about its
// current parent is obeyed. The server is a fake: a real one does not send
// a stale reconnect on demand.
func TestStaleReconnect(t *testing.T) {
	cases := []struct {
		name   string
		parent string // the reconnect's Parent
		obey   bool
	}{
		{"parent gone: stale", "gone", false},
		{"current parent", wire.OriginID, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			origin := startRTSP(t)
			stream := streamOn(origin.Addr())
			other := startParent(t, "r2")
			fs := startFakeServer(t, func(g *wire.GetCandidates) []wire.Candidate {
				if slices.Contains(g.Exclude, wire.OriginID) {
					return []wire.Candidate{other}
				}
				return []wire.Candidate{{Node: wire.OriginID, RTSP: origin.Addr(), Capacity: 4}}
			})
			a, up := join(t, "a", fs.Addr(), stream, nil)
			if want := originUp(origin.Addr()); up != want {
				t.Fatalf("upstream = %+v, want %+v", up, want)
			}

			fs.push(&wire.Reconnect{Stream: stream, Reason: wire.ReasonParentFailed, Parent: tc.parent})
			if !tc.obey {
				a.log.wait(t, "reconnect is stale", "parent="+tc.parent)
				a.med.noSwitch()
				if got := fs.types(); !slices.Equal(got, []string{wire.TypeGetCandidates, wire.TypeJoined}) {
					t.Errorf("requests = %v, want only the first resolve's", got)
				}
				return
			}
			sw := a.med.waitSwitch()
			want := control.Upstream{URL: enhanced(other.RTSP, origin.Addr()), Addr: other.RTSP, Node: "r2"}
			if sw.Stream != stream || sw.Upstream == nil || *sw.Upstream != want {
				t.Fatalf("switch = %+v %+v, want %+v", sw, sw.Upstream, want)
			}
			want4 := []string{wire.TypeGetCandidates, wire.TypeJoined, wire.TypeGetCandidates, wire.TypeJoined}
			if got := fs.types(); !slices.Equal(got, want4) {
				t.Fatalf("requests = %v, want %v", got, want4)
			}
			fs.mu.Lock()
			g := fs.requests[2].Body.(*wire.GetCandidates)
			j := fs.requests[3].Body.(*wire.Joined)
			fs.mu.Unlock()
			if !slices.Equal(g.Exclude, []string{wire.OriginID}) || j.Parent != "r2" {
				t.Errorf("re-resolve excluded %v and joined %s, want [origin] and r2", g.Exclude, j.Parent)
			}
		})
	}
}

// TestPassiveRelay: a relay with Willing false offers itself to no one: its
// hello to the server says so (and gives no RTSP address), the control
// hello reply tells the mediator, and its probe answers say so.
func TestPassiveRelay(t *testing.T) {
	for _, willing := range []bool{true, false} {
		name := "willing"
		if !willing {
			name = "passive"
		}
		t.Run(name, func(t *testing.T) {
			origin := startRTSP(t)
			stream := streamOn(origin.Addr())
			srv := startServer(t, tree.Repair, nil)
			r := startRelay(t, "p", srv.Addr(), func(r *Relay) { r.Willing = willing })
			med := dialMediator(t, r.ControlAddr())
			rtsp := startRTSP(t).Addr()
			h := med.hello(rtsp)
			if h.Node != "p" || h.Willing == nil || *h.Willing != willing {
				t.Fatalf("hello reply = %+v (willing %v), want node p, willing %v", h, h.Willing, willing)
			}
			if up, want := med.resolve(stream), originUp(origin.Addr()); up != want {
				t.Fatalf("upstream = %+v, want %+v", up, want)
			}

			// The resolve went through the session: the server has p.
			var nodes []api.Node
			srv.getJSON(t, "/api/v1/nodes", &nodes)
			i := slices.IndexFunc(nodes, func(n api.Node) bool { return n.ID == "p" })
			if i < 0 {
				t.Fatalf("server nodes = %+v, no p", nodes)
			}
			wantRTSP := rtsp
			if !willing {
				wantRTSP = ""
			}
			if n := nodes[i]; n.Willing != willing || n.RTSP != wantRTSP {
				t.Errorf("server sees p willing %v at %q, want %v at %q", n.Willing, n.RTSP, willing, wantRTSP)
			}

			res := probe.Probe(ctxGuard(t), r.ProbeAddr(), stream, 2*time.Second)
			if res.Err != nil || res.Info.Willing != willing || res.Info.Level != 1 {
				t.Errorf("probe = %+v, want willing %v at level 1", res, willing)
			}
		})
	}
}

// TestLeaveHandsChildOver: a relay leaving with a child: the server moves
// the child (here to the origin slot the leaving relay frees), the child's
// mediator is told to switch there, and Leave returns once the server
// acked the left.
func TestLeaveHandsChildOver(t *testing.T) {
	origin := startRTSP(t)
	stream := streamOn(origin.Addr())
	srv := startServer(t, tree.Repair, func(s *server.Server) {
		s.OriginCapacity = 1
		s.HandoverTimeout = guard // the ack comes because the child switched, not at a deadline
	})
	a, _ := join(t, "a", srv.Addr(), stream, nil)
	b, upB := join(t, "b", srv.Addr(), stream, nil)
	if want := relayUp(a, origin.Addr()); upB != want {
		t.Fatalf("b: upstream = %+v, want %+v", upB, want)
	}

	left := make(chan struct{})
	go func() {
		defer close(left)
		a.Leave(ctxGuard(t))
	}()

	sw := b.med.waitSwitch()
	if want := originUp(origin.Addr()); sw.Stream != stream || sw.Upstream == nil || *sw.Upstream != want {
		t.Fatalf("b: switch = %+v %+v, want %+v", sw, sw.Upstream, want)
	}
	select {
	case <-left:
	case <-time.After(guard):
		t.Fatalf("Leave did not return within %v", guard)
	}
	select {
	case <-a.Done():
	default:
		t.Error("a is not closed after Leave")
	}

	// The server ended the handover because b switched, and took a out of
	// the stream before acking its left: a GET after Leave returned sees it.
	if got := shape(srv.tree(t, stream)); got != "b<origin@1" {
		t.Errorf("tree = %q, want b<origin@1", got)
	}
	done := testutil.Find[event.HandoverDone](t, srv.events)
	if len(done) != 1 || done[0].Node != "a" || done[0].Result != "switched" {
		t.Errorf("handover_done events = %v, want a switched", done)
	}
	if l := leftEvents(t, a.events); len(l) != 1 {
		t.Errorf("a: left events = %v, want one", l)
	}
	a.log.mu.Lock()
	defer a.log.mu.Unlock()
	for _, l := range a.log.lines {
		if strings.Contains(l, `msg=leave`) {
			t.Errorf("a: the left was not acked: %s", l)
		}
	}
}

// waitUntil polls cond until it holds; guard is a liveness limit.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(guard)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v", what, guard)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestParentFailure: b pulls from a, a dies. Under repair, reconnect and
// gradual the server tells b, which moves to the origin (the slot a freed)
// and pushes the switch; under drop nobody is told, and b's mediator,
// once its upstream stalls, resolves excluding a and gets the origin.
func TestParentFailure(t *testing.T) {
	for _, policy := range tree.Policies {
		t.Run(string(policy), func(t *testing.T) {
			origin := startRTSP(t)
			stream := streamOn(origin.Addr())
			srv := startServer(t, policy, func(s *server.Server) { s.OriginCapacity = 1 })
			a, _ := join(t, "a", srv.Addr(), stream, nil)
			b, upB := join(t, "b", srv.Addr(), stream, nil)
			if want := relayUp(a, origin.Addr()); upB != want {
				t.Fatalf("b: upstream = %+v, want %+v", upB, want)
			}
			a.Close()
			waitUntil(t, "server notices a failed", func() bool {
				for _, e := range testutil.Find[event.NodeFailed](t, srv.events) {
					if e.Node == "a" {
						return true
					}
				}
				return false
			})

			want := originUp(origin.Addr())
			if policy == tree.Drop {
				r := b.med.call(&control.Resolve{Stream: stream, Mode: control.ModeAfterLoss, Exclude: []string{upB.Addr}})
				if r.Error != "" || r.Upstream == nil || *r.Upstream != want {
					t.Fatalf("b: resolve after the stall = %+v %+v, want %+v", r, r.Upstream, want)
				}
				b.med.noSwitch()
			} else {
				sw := b.med.waitSwitch()
				if sw.Stream != stream || sw.Upstream == nil || *sw.Upstream != want {
					t.Fatalf("b: switch = %+v %+v, want %+v", sw, sw.Upstream, want)
				}
			}
			if got := shape(srv.tree(t, stream)); got != "b<origin@1" {
				t.Errorf("tree = %q, want b<origin@1", got)
			}
		})
	}
}

// TestResolveAfterLoss: a mediator that lost its upstream resolves in
// after_loss mode, with it excluded. Under reconnect (and gradual), when
// the server no longer has the lost parent (it failed), the relay waits
// for the server's reconnect and answers with the parent it names, pushing
// no switch; under repair it resolves at once, excluding the lost parent.
func TestResolveAfterLoss(t *testing.T) {
	cases := []struct {
		recovery string
		requests []string // after the first resolve's
	}{
		{wire.RecoveryReconnect, []string{wire.TypeGetCandidates, wire.TypeJoined}},
		{wire.RecoveryRepair, []string{wire.TypeGetCandidates, wire.TypeJoined}},
	}
	for _, tc := range cases {
		t.Run(tc.recovery, func(t *testing.T) {
			origin := startRTSP(t)
			stream := streamOn(origin.Addr())
			p1 := startParent(t, "p1")
			other := startParent(t, "r2")
			var p1Failed atomic.Bool
			fs := startFakeServer(t, func(g *wire.GetCandidates) []wire.Candidate {
				if p1Failed.Load() {
					return []wire.Candidate{other}
				}
				return []wire.Candidate{p1}
			})
			fs.recovery = tc.recovery
			a, up := join(t, "a", fs.Addr(), stream, nil)
			if up.Node != "p1" {
				t.Fatalf("first upstream = %+v, want p1", up)
			}
			p1Failed.Store(true)

			reply := make(chan ctlMsg, 1)
			go func() {
				reply <- a.med.call(&control.Resolve{Stream: stream, Mode: control.ModeAfterLoss, Exclude: []string{up.Addr}})
			}()
			if tc.recovery == wire.RecoveryReconnect {
				a.log.wait(t, "waiting for the server's reconnect")
				fs.push(&wire.Reconnect{Stream: stream, Reason: wire.ReasonParentFailed, Parent: "p1",
					Target: "r2", TargetRTSP: other.RTSP})
			}
			var r ctlMsg
			select {
			case r = <-reply:
			case <-time.After(guard):
				t.Fatalf("no answer to the resolve within %v", guard)
			}
			want := control.Upstream{URL: enhanced(other.RTSP, origin.Addr()), Addr: other.RTSP, Node: "r2"}
			if r.Error != "" || r.Upstream == nil || *r.Upstream != want {
				t.Fatalf("resolve = %+v %+v, want %+v", r, r.Upstream, want)
			}
			a.med.noSwitch()
			wantReq := append([]string{wire.TypeGetCandidates, wire.TypeJoined}, tc.requests...)
			if got := fs.types(); !slices.Equal(got, wantReq) {
				t.Errorf("requests = %v, want %v", got, wantReq)
			}
		})
	}
}

// TestLossAfterReconnectAnswered: under reconnect, the server's
// RECONNECT for a failed parent came and found no new parent; a while
// later the mediator, which lost that parent, resolves without it. The
// server has said all it will about that failure, so the relay resolves
// at once instead of waiting for a second RECONNECT (it used to wait
// whenever the first had come more than 2 s before).
func TestLossAfterReconnectAnswered(t *testing.T) {
	origin := startRTSP(t)
	stream := streamOn(origin.Addr())
	p1 := startParent(t, "p1")
	r2 := startParent(t, "r2")
	var p1Failed, r2Up atomic.Bool
	fs := startFakeServer(t, func(g *wire.GetCandidates) []wire.Candidate {
		switch {
		case !p1Failed.Load():
			return []wire.Candidate{p1}
		case r2Up.Load():
			return []wire.Candidate{r2}
		}
		return nil // nobody has room
	})
	fs.recovery = wire.RecoveryReconnect
	a, up := join(t, "a", fs.Addr(), stream, nil)
	if up.Node != "p1" {
		t.Fatalf("first upstream = %+v, want p1", up)
	}
	p1Failed.Store(true)
	fs.push(&wire.Reconnect{Stream: stream, Reason: wire.ReasonParentFailed, Parent: "p1"})
	a.log.wait(t, "reconnect: no new parent")
	// Long after the RECONNECT (the old rule forgot it after 2 s), a
	// relay with room comes up and the mediator reports the loss.
	time.Sleep(3 * time.Second)
	r2Up.Store(true)
	r := a.med.call(&control.Resolve{Stream: stream, Mode: control.ModeAfterLoss, Exclude: []string{up.Addr}})
	want := control.Upstream{URL: enhanced(r2.RTSP, origin.Addr()), Addr: r2.RTSP, Node: "r2"}
	if r.Error != "" || r.Upstream == nil || *r.Upstream != want {
		t.Fatalf("resolve after the loss = %+v %+v, want %+v", r, r.Upstream, want)
	}
	if a.log.has("waiting for the server's reconnect") {
		t.Error("the relay waited for a second reconnect about a failure the server had answered")
	}
}

// TestLossWithServerUnanswering: under reconnect, a relay whose upstream
// stalled cannot ask the server whether its parent is still there (the
// connection drops as it asks). A RECONNECT could only come over a
// connection, so it does not wait for one: it resolves at once (and finds
// nothing but p1, which it excludes, or, if the connection is not back
// yet, falls back to the origin as it does whenever the server does not
// answer).
func TestLossWithServerUnanswering(t *testing.T) {
	origin := startRTSP(t)
	stream := streamOn(origin.Addr())
	p1 := startParent(t, "p1")
	var asked atomic.Int32
	fs := startFakeServer(t, func(g *wire.GetCandidates) []wire.Candidate {
		if slices.Contains(g.Exclude, "p1") {
			return nil
		}
		return []wire.Candidate{p1}
	})
	fs.recovery = wire.RecoveryReconnect
	fs.hangUp = func(g *wire.GetCandidates) bool { return asked.Add(1) == 2 } // the check after the loss
	a, up := join(t, "a", fs.Addr(), stream, nil)

	r := a.med.call(&control.Resolve{Stream: stream, Mode: control.ModeAfterLoss, Exclude: []string{up.Addr}})
	fallback := r.Upstream != nil && *r.Upstream == originUp(origin.Addr())
	if !fallback && !strings.Contains(r.Error, "no parent") {
		t.Fatalf("resolve answered upstream %+v, error %q; want no parent, or the origin directly", r.Upstream, r.Error)
	}
	if a.log.has("waiting for the server's reconnect") {
		t.Error("the relay waited for a reconnect over a connection that had dropped")
	}
}

// TestOriginOutage: the origin (which takes one relay) goes away and comes
// back on the same address; its relay a and a's child b stay in the tree.
// Under every policy, a's mediator, which lost the origin, and b's, whose
// parent a went silent, get an answer at once: the server saw no node
// fail, so no reconnect is coming and waiting for one would only keep
// the readers waiting. With the lost upstream excluded there is nothing
// else; asked again without it, b gets a again, and a the origin as soon
// as it answers.
func TestOriginOutage(t *testing.T) {
	for _, policy := range tree.Policies {
		t.Run(string(policy), func(t *testing.T) {
			origin := startRTSP(t)
			addr := origin.Addr()
			stream := streamOn(addr)
			srv := startServer(t, policy, func(s *server.Server) { s.OriginCapacity = 1 })
			a, upA := join(t, "a", srv.Addr(), stream, nil)
			b, upB := join(t, "b", srv.Addr(), stream, nil)
			if want := relayUp(a, addr); upB != want {
				t.Fatalf("b: upstream = %+v, want %+v", upB, want)
			}
			origin.close()

			// noParent checks an answer that says there is no parent, and
			// not that the relay waited for a reconnect until it gave up.
			noParent := func(who string, r ctlMsg) {
				t.Helper()
				if r.Error == "" || !strings.Contains(r.Error, "parent") || strings.Contains(r.Error, "deadline") {
					t.Fatalf("%s: resolve answered upstream %+v, error %q; want an error saying there is no parent", who, r.Upstream, r.Error)
				}
			}
			noParent("a, origin excluded", a.med.call(&control.Resolve{Stream: stream, Mode: control.ModeAfterLoss, Exclude: []string{upA.Addr}}))
			noParent("a, origin down", a.med.call(&control.Resolve{Stream: stream, Mode: control.ModeJoin}))
			noParent("b, a excluded", b.med.call(&control.Resolve{Stream: stream, Mode: control.ModeAfterLoss, Exclude: []string{upB.Addr}}))
			if up := b.med.resolve(stream); up != upB {
				t.Fatalf("b: resolve without exclusions = %+v, want a again (%+v)", up, upB)
			}
			for _, m := range []*member{a, b} {
				if m.log.has("waiting for the server's reconnect") {
					t.Errorf("%s waited for a reconnect the server had no reason to send", m.NodeID)
				}
			}

			back := relistenRTSP(t, addr)
			if up := a.med.resolve(stream); up != originUp(back.Addr()) {
				t.Fatalf("a: resolve with the origin back = %+v, want %+v", up, originUp(back.Addr()))
			}
			if got := shape(srv.tree(t, stream)); got != "a<origin@1 b<a@2" {
				t.Errorf("tree = %q, want a<origin@1 b<a@2", got)
			}
		})
	}
}

// TestReconnectForStreamLeft: a reconnect for a stream the relay no longer
// receives (the mediator went inactive and the left was on its way when
// the server decided) must not make the relay join it again.
func TestReconnectForStreamLeft(t *testing.T) {
	origin := startRTSP(t)
	stream := streamOn(origin.Addr())
	fs := startFakeServer(t, func(*wire.GetCandidates) []wire.Candidate {
		return []wire.Candidate{{Node: wire.OriginID, RTSP: origin.Addr(), Capacity: 4}}
	})
	a, _ := join(t, "a", fs.Addr(), stream, nil)
	a.med.send(&control.Inactive{Stream: stream})
	waitUntil(t, "left sent and acked", func() bool { return len(leftEvents(t, a.events)) == 1 })

	// As session.push would, but synchronously: when it returns, the
	// relay has decided.
	a.onReconnect(&wire.Reconnect{Stream: stream, Reason: wire.ReasonParentFailed, Parent: wire.OriginID})

	a.med.noSwitch()
	want := []string{wire.TypeGetCandidates, wire.TypeJoined, wire.TypeLeft}
	if got := fs.types(); !slices.Equal(got, want) {
		t.Errorf("requests = %v, want %v: the relay joined a stream it left", got, want)
	}
	var again bool
	var parent string
	_ = a.call(ctxGuard(t), func(st *state) {
		if ss := st.streams[stream]; ss != nil {
			again, parent = true, ss.parent
		}
	})
	if again {
		t.Errorf("the relay receives %s again, parent %q", stream, parent)
	}
}

// gate is a TCP proxy on 127.0.0.1:0 to target that, while shut, accepts
// and closes at once: an ocm-server that is down, then back at the same
// address.
type gate struct {
	ln     net.Listener
	target string
	mu     sync.Mutex
	open   bool
	conns  []net.Conn // passed, for cut
}

func startGate(t *testing.T, target string) *gate {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g := &gate{ln: ln, target: target}
	testutil.Serve(t, ln, 0, g.pass)
	return g
}

func (g *gate) Addr() string { return g.ln.Addr().String() }

func (g *gate) setOpen(open bool) {
	g.mu.Lock()
	g.open = open
	g.mu.Unlock()
}

// pass copies nc to the target and back while both stay open, if the
// gate was open when nc came.
func (g *gate) pass(nc net.Conn) {
	g.mu.Lock()
	open := g.open
	g.mu.Unlock()
	if !open {
		return
	}
	up, err := net.Dial("tcp", g.target)
	if err != nil {
		return
	}
	g.mu.Lock()
	g.conns = append(g.conns, nc, up)
	g.mu.Unlock()
	var wg sync.WaitGroup
	pipe := func(dst, src net.Conn) {
		defer wg.Done()
		buf := make([]byte, 32<<10)
		for {
			n, err := src.Read(buf)
			if n > 0 {
				if _, werr := dst.Write(buf[:n]); werr != nil {
					break
				}
			}
			if err != nil {
				break
			}
		}
		dst.Close()
		src.Close()
	}
	wg.Add(2)
	go pipe(up, nc)
	go pipe(nc, up)
	wg.Wait()
}

// TestActive: the mediator says which upstream it plays from. One the
// server does not know for the relay is told to it (joined); one taken
// while the server was away is declared in the next hello.
func TestActive(t *testing.T) {
	t.Run("other upstream", func(t *testing.T) {
		origin := startRTSP(t)
		stream := streamOn(origin.Addr())
		srv := startServer(t, tree.Repair, func(s *server.Server) { s.OriginCapacity = 2 })
		a, _ := join(t, "a", srv.Addr(), stream, nil)
		b, upB := join(t, "b", srv.Addr(), stream, func(r *Relay) { r.Weights.Level = 1000 })
		if want := originUp(origin.Addr()); upB != want {
			t.Fatalf("b: upstream = %+v, want %+v", upB, want)
		}
		// b's mediator plays from a (say an operator pointed it there).
		// The address alone names a: the relay learnt it from candidates.
		up := relayUp(a, origin.Addr())
		up.Node = ""
		b.med.send(&control.Active{Stream: stream, Upstream: up})
		b.med.sync() // active is handled before the next message is read
		if got := shape(srv.tree(t, stream)); got != "a<origin@1 b<a@2" {
			t.Errorf("tree = %q, want a<origin@1 b<a@2", got)
		}
		res := probe.Probe(ctxGuard(t), b.ProbeAddr(), stream, 2*time.Second)
		if res.Err != nil || res.Info.Level != 2 {
			t.Errorf("probe b = %+v, want level 2", res)
		}
	})
	t.Run("server back", func(t *testing.T) {
		origin := startRTSP(t)
		stream := streamOn(origin.Addr())
		srv := startServer(t, tree.Repair, nil)
		g := startGate(t, srv.Addr())
		a, up := join(t, "a", g.Addr(), stream, nil)
		if want := originUp(origin.Addr()); up != want {
			t.Fatalf("upstream = %+v, want %+v", up, want)
		}
		if fb := testutil.Find[event.Fallback](t, a.events); len(fb) != 1 {
			t.Fatalf("fallback events = %v, want one", fb)
		}
		a.med.send(&control.Active{Stream: stream, Upstream: up})
		a.med.sync()
		g.setOpen(true)
		// keepServer reconnects (after its backoff) and declares the stream.
		waitUntil(t, "the server rebuilds a<origin@1", func() bool {
			var snap api.Tree
			return srv.getJSON(t, "/api/v1/tree?stream="+stream, &snap) == 200 && shape(snap) == "a<origin@1"
		})
	})
}

// TestStatsReported: the mediator's stats reach the server in the relay's
// reports and the relay's probe answers.
func TestStatsReported(t *testing.T) {
	origin := startRTSP(t)
	stream := streamOn(origin.Addr())
	srv := startServer(t, tree.Repair, func(s *server.Server) { s.ReportInterval = 20 * time.Millisecond })
	a, _ := join(t, "a", srv.Addr(), stream, nil)
	a.med.send(&control.Stats{Streams: []control.StreamStats{
		{Stream: stream, Readers: 3, RelayReaders: 1, PacketsIn: 90, Lost: 10, BitrateBPS: 1e6},
		{Stream: "rtsp://127.0.0.1:1/unknown", Readers: 7}, // not relayed: ignored
	}})
	a.med.sync()

	res := probe.Probe(ctxGuard(t), a.ProbeAddr(), stream, 2*time.Second)
	if res.Err != nil || res.Info.Clients != 3 || res.Info.FreeCapacity != 3 || res.Info.Level != 1 {
		t.Errorf("probe = %+v, want clients 3, free capacity 4-1, level 1", res)
	}
	waitUntil(t, "a report reaches the server", func() bool {
		snap := srv.tree(t, stream)
		return len(snap.Nodes) == 1 && snap.Nodes[0].Readers == 3
	})
	m := srv.tree(t, stream).Nodes[0]
	if m.Bitrate != 1e6 || m.Loss < 0.099 || m.Loss > 0.101 {
		t.Errorf("reported bitrate %v loss %v, want 1e6 and 0.1", m.Bitrate, m.Loss)
	}
}

// TestControlBadInput: a bad line is answered with an error and the
// connection goes on; an unknown type or an invalid message with an id is
// answered with an error naming what was wrong; a line of another
// version (the flat messages of before) is answered and the connection
// closed.
func TestControlBadInput(t *testing.T) {
	r := startRelay(t, "a", refusingAddr(t), nil)
	nc, err := net.Dial("tcp", r.ControlAddr())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	_ = nc.SetReadDeadline(time.Now().Add(guard))
	if _, err := nc.Write([]byte("this is not json\n")); err != nil {
		t.Fatal(err)
	}
	c := control.NewConn(nc)
	read := func() ctlMsg {
		t.Helper()
		m, err := c.ReadMsg()
		if err != nil {
			t.Fatalf("read: %v", err)
		}
		return ctlMsgOf(m)
	}
	if m := read(); m.Re != 0 || m.Code != wire.CodeBadRequest || !strings.Contains(m.Error, "bad control message") {
		t.Fatalf("answer to a bad line = %+v; want an error without re", m)
	}
	if err := c.WriteMsg(wire.Msg{ID: 7, Body: unknownBody{"frobnicate"}}); err != nil {
		t.Fatal(err)
	}
	if m := read(); m.Re != 7 || m.Code != wire.CodeUnknownType || !strings.Contains(m.Error, `"frobnicate"`) {
		t.Fatalf("answer to an unknown type = %+v", m)
	}
	if _, err := nc.Write([]byte(`{"v":1,"type":"resolve","id":9,"stream":"rtsp://127.0.0.1:1/x","mode":"later"}` + "\n")); err != nil {
		t.Fatal(err)
	}
	if m := read(); m.Re != 9 || m.Code != wire.CodeBadRequest || !strings.Contains(m.Error, `mode "later"`) {
		t.Fatalf("answer to a resolve of an unknown mode = %+v", m)
	}
	if err := c.WriteMsg(wire.Msg{ID: 8, Body: &control.Hello{RTSP: "127.0.0.1:5554"}}); err != nil {
		t.Fatal(err)
	}
	if m := read(); m.Re != 8 || m.Node != "a" {
		t.Fatalf("hello after bad input = %+v", m)
	}
	if _, err := nc.Write([]byte(`{"op":"hello","id":10,"rtsp":"127.0.0.1:5554"}` + "\n")); err != nil {
		t.Fatal(err)
	}
	if m := read(); m.Code != wire.CodeVersion || !strings.Contains(m.Error, `no "v" field`) {
		t.Fatalf("answer to an unversioned line = %+v", m)
	}
	if m, err := c.ReadMsg(); !errors.Is(err, io.EOF) {
		t.Fatalf("after a line of another version: read %+v, %v; want the connection closed", m, err)
	}

	// A line over the limit is answered, naming the limit, and closed.
	nc2, err := net.Dial("tcp", r.ControlAddr())
	if err != nil {
		t.Fatal(err)
	}
	defer nc2.Close()
	_ = nc2.SetReadDeadline(time.Now().Add(guard))
	c = control.NewConn(nc2)
	go func() { _, _ = nc2.Write([]byte(strings.Repeat("a", control.MaxLine+100) + "\n")) }()
	if m := read(); m.Code != wire.CodeLineTooLong || !strings.Contains(m.Error, strconv.Itoa(control.MaxLine)) {
		t.Fatalf("answer to a line over the limit = %+v", m)
	}
	if m, err := c.ReadMsg(); !errors.Is(err, io.EOF) {
		t.Fatalf("after a line over the limit: read %+v, %v; want the connection closed", m, err)
	}
}

// TestResolvePassesOverLiar: a candidate whose probe answer claims level
// 0, a thousand free slots and an idle CPU is scored with the level and
// load in the server's candidate list, so the relay joins the honest
// candidate closer to the origin.
func TestResolvePassesOverLiar(t *testing.T) {
	origin := startRTSP(t)
	stream := streamOn(origin.Addr())
	honestRTSP, liarRTSP := startRTSP(t).Addr(), startRTSP(t).Addr()
	honest := startProbeResponder(t, probe.Info{Node: "honest", Clients: 1, Level: 1, Cores: 4, CPU: 0.3, Willing: true, FreeCapacity: 3})
	liar := startProbeResponder(t, probe.Info{Node: "liar", Level: 0, Cores: 64, CPU: 0, Willing: true, FreeCapacity: 1000})
	fs := startFakeServer(t, func(*wire.GetCandidates) []wire.Candidate {
		return []wire.Candidate{
			{Node: "honest", RTSP: honestRTSP, Probe: honest.Addr(), Level: 1, Clients: 1, Capacity: 4},
			{Node: "liar", RTSP: liarRTSP, Probe: liar.Addr(), Level: 3, Clients: 2, Capacity: 4},
		}
	})
	a, up := join(t, "a", fs.Addr(), stream, nil)
	if up.Node != "honest" || up.Addr != honestRTSP {
		t.Fatalf("upstream = %+v, want honest at %s", up, honestRTSP)
	}
	a.log.wait(t, "contradicts ocm-server", "candidate=liar", "level 0 (server: 3)")
}

// TestDuplicateNodeIDLogged: a relay started with the node id of one
// already connected is refused by the server, and says so in its log and
// events (once, while it keeps retrying); the first relay keeps its place.
func TestDuplicateNodeIDLogged(t *testing.T) {
	origin := startRTSP(t)
	stream := streamOn(origin.Addr())
	srv := startServer(t, tree.Repair, nil)
	join(t, "a", srv.Addr(), stream, nil)
	second := startRelay(t, "a", srv.Addr(), func(r *Relay) { r.RTSP = "127.0.0.1:6554" })
	line := second.log.wait(t, "refuses our node id", "node=a")
	t.Logf("logged: %s", line)
	if !strings.Contains(line, "level=ERROR") || !strings.Contains(line, "--node-id") {
		t.Errorf("refusal logged as %q, want an error naming --node-id", line)
	}
	waitUntil(t, "the refused event", func() bool {
		for _, ev := range testutil.Find[event.ServerLink](t, second.events) {
			if ev.State == "refused" && ev.Code == wire.CodeDuplicateNode {
				return true
			}
		}
		return false
	})
	if got := shape(srv.tree(t, stream)); got != "a<origin@1" {
		t.Errorf("tree = %q, want a<origin@1", got)
	}
}

// TestBlackHolePassedOver: relays whose mediators lose the stream under
// a parent that stays connected (a black hole) say so by resolving
// without it; after two of them the server offers it no more, nor the
// relays below it, and its API entry says why.
func TestBlackHolePassedOver(t *testing.T) {
	origin := startRTSP(t)
	stream := streamOn(origin.Addr())
	srv := startServer(t, tree.Repair, func(s *server.Server) {
		s.OriginCapacity = 1
		s.StallConfirm = 50 * time.Millisecond
	})
	bh, _ := join(t, "bh", srv.Addr(), stream, nil)
	levelFirst := func(r *Relay) { r.Weights.Level = 1000 } // bh, not a sibling below it
	var victims []*member
	for _, id := range []string{"v1", "v2"} {
		v, up := join(t, id, srv.Addr(), stream, levelFirst)
		if up != relayUp(bh, origin.Addr()) {
			t.Fatalf("%s: upstream %+v, want bh", id, up)
		}
		victims = append(victims, v)
	}
	for _, v := range victims {
		// The mediator's upstream stalled: it asks again without it.
		r := v.med.call(&control.Resolve{Stream: stream, Mode: control.ModeAfterLoss, Exclude: []string{bh.rtsp}})
		t.Logf("%s after the stall: upstream %+v, error %q", v.NodeID, r.Upstream, r.Error)
	}
	waitUntil(t, "bh quarantined", func() bool {
		var nodes []api.Node
		srv.getJSON(t, "/api/v1/nodes", &nodes)
		for _, n := range nodes {
			if n.ID == "bh" && n.Quarantined {
				t.Logf("bh: %s", n.QuarantineReason)
				return strings.Contains(n.QuarantineReason, "v1, v2")
			}
		}
		return false
	})
	v3 := startRelay(t, "v3", srv.Addr(), func(r *Relay) { r.RTSP = startRTSP(t).Addr() })
	med := dialMediator(t, v3.ControlAddr())
	r := med.call(&control.Resolve{Stream: stream, Mode: control.ModeJoin})
	if r.Error == "" || r.Upstream != nil {
		t.Fatalf("v3 resolved %+v: bh and the relays below it must not be offered", r.Upstream)
	}
	t.Logf("v3: %s", r.Error)
}

// leftEvents returns b's "left" events, of one stream or of every stream.
func leftEvents(t *testing.T, b *testutil.Buffer) []event.Event {
	t.Helper()
	var out []event.Event
	for _, e := range b.Events(t) {
		if e.EventName() == "left" {
			out = append(out, e)
		}
	}
	return out
}
