package relay

import (
	"context"
	"testing"
	"time"

	"github.com/ocm-overlay/ocm/internal/control"
	"github.com/ocm-overlay/ocm/internal/server"
	"github.com/ocm-overlay/ocm/internal/testutil"
	"github.com/ocm-overlay/ocm/internal/tree"
	"github.com/ocm-overlay/ocm/internal/wire"
)

// wireRelay is a relay written with package wire, speaking the protocol
// to a real ocm-server as ocm-relay does, so that a test says what it
// reports (an RTT to its parent, its willingness) whatever the loopback
// measures. It offers a probe responder and an RTSP address like a
// willing relay at level 1.
type wireRelay struct {
	t    *testing.T
	node string
	cl   *wire.Client
	c    wire.Candidate // as a candidate: its addresses
}

func startWireRelay(t *testing.T, serverAddr, node string, willing bool) *wireRelay {
	t.Helper()
	c := startParent(t, node)
	nc := testutil.Dial(t, serverAddr, guard)
	cl := wire.NewClient(wire.NewConn(nc))
	t.Cleanup(func() { cl.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), guard)
	defer cancel()
	if _, err := cl.Hello(ctx, &wire.Hello{Node: node, RTSP: c.RTSP, Probe: c.Probe, Willing: willing,
		Capacity: c.Capacity, Cores: 1, Agent: "test"}); err != nil {
		t.Fatalf("%s: hello: %v", node, err)
	}
	return &wireRelay{t: t, node: node, cl: cl, c: c}
}

// join takes parent for stream, saying rttMs.
func (w *wireRelay) join(stream, parent string, rttMs float64) {
	w.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), guard)
	defer cancel()
	if _, err := w.cl.JoinWith(ctx, &wire.Joined{Stream: stream, Parent: parent, RTTMs: rttMs}); err != nil {
		w.t.Fatalf("%s: join %s: %v", w.node, parent, err)
	}
}

// report sends a report of stream under parent at level 1 with rttMs,
// and the willingness if willing is not nil; a heartbeat after it
// makes sure the server has applied it.
func (w *wireRelay) report(stream, parent string, rttMs float64, willing *bool) {
	w.t.Helper()
	if err := w.cl.Report(&wire.Report{Willing: willing, Streams: []wire.StreamReport{
		{Stream: stream, Parent: parent, Level: 1, RTTMs: rttMs}}}); err != nil {
		w.t.Fatalf("%s: report: %v", w.node, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), guard)
	defer cancel()
	if err := w.cl.Heartbeat(ctx); err != nil {
		w.t.Fatalf("%s: heartbeat: %v", w.node, err)
	}
}

// candidatesFor asks the server for stream's candidates as w.
func (w *wireRelay) candidatesFor(stream string) []wire.Candidate {
	w.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), guard)
	defer cancel()
	cs, err := w.cl.Candidates(ctx, stream, nil)
	if err != nil {
		w.t.Fatalf("%s: candidates: %v", w.node, err)
	}
	return cs
}

// improveScene is a real ocm-server with an origin of two slots, both
// taken: by far, a relay that reports farMs to the origin, and by near,
// which reports nearMs and is passive until it says otherwise. The
// relay a (passive, so it asks to displace nobody) joins the only
// parent with room, far, and improves every improveFast.
type improveScene struct {
	srv        *testServer
	stream     string
	originAddr string
	far, near  *wireRelay
	a          *member
}

func newImproveScene(t *testing.T, farMs, nearMs float64) *improveScene {
	t.Helper()
	origin := startRTSP(t)
	sc := &improveScene{stream: streamOn(origin.Addr()), originAddr: origin.Addr()}
	sc.srv = startServer(t, tree.Repair, func(s *server.Server) { s.OriginCapacity = 2 })
	sc.far = startWireRelay(t, sc.srv.Addr(), "far", true)
	sc.far.join(sc.stream, wire.OriginID, farMs)
	sc.far.report(sc.stream, wire.OriginID, farMs, nil)
	sc.near = startWireRelay(t, sc.srv.Addr(), "near", false)
	sc.near.join(sc.stream, wire.OriginID, nearMs)
	sc.near.report(sc.stream, wire.OriginID, nearMs, nil)
	// The server's side of paths (internal/server: candidates carry
	// path_ms from the RTTs reported): without it nothing here moves.
	for _, c := range sc.near.candidatesFor(sc.stream) {
		if c.Node == "far" && c.PathMs != farMs {
			t.Fatalf("ocm-server offers far with path_ms %v, want the %v it reported: the server does not keep reported RTTs", c.PathMs, farMs)
		}
	}
	var up control.Upstream
	sc.a, up = join(t, "a", sc.srv.Addr(), sc.stream, func(r *Relay) { r.Willing, r.ImproveEvery = false, improveFast })
	if up.Node != "far" {
		t.Fatalf("a's first upstream %+v, want far (the origin is full)", up)
	}
	return sc
}

// TestImproveRealServer: near, the origin's other child, reports a path
// far shorter than far's and becomes willing; a's improvement round,
// with the candidates and paths of a real ocm-server, moves it under
// near, make-before-break (a switch to the mediator), and the server's
// tree has it there.
func TestImproveRealServer(t *testing.T) {
	sc := newImproveScene(t, 300, 1)
	a := sc.a
	yes := true
	sc.near.report(sc.stream, wire.OriginID, 1, &yes)
	sw := a.med.waitSwitch()
	if want := relayUpOf(sc.near.c, sc.originAddr); *sw.Upstream != want {
		t.Fatalf("switch to %+v, want %+v", *sw.Upstream, want)
	}
	t.Log(a.log.wait(t, "moved to a better parent", "from=far", "to=near"))
	deadline := time.Now().Add(guard)
	for {
		snap := sc.srv.tree(t, sc.stream)
		got := shape(snap)
		if got == "a<near@2 far<origin@1 near<origin@1" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("tree %s, want a under near", got)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestImproveRealServerStays: near's path is shorter than far's by less
// than a move needs (probe.ImproveShare): a's rounds leave it under far.
func TestImproveRealServerStays(t *testing.T) {
	sc := newImproveScene(t, 200, 170)
	a := sc.a
	yes := true
	sc.near.report(sc.stream, wire.OriginID, 170, &yes)
	a.log.waitCount(t, 3, "improvement round: staying", "parent=far")
	a.med.noSwitch()
	if got, want := shape(sc.srv.tree(t, sc.stream)), "a<far@2 far<origin@1 near<origin@1"; got != want {
		t.Errorf("tree %s, want %s", got, want)
	}
}

// TestJoinedRTTRealServer: a relay that joins the origin by probing
// tells a real ocm-server its RTT in the joined (no report comes within
// the test: the interval is an hour), so the server offers it to others
// with that RTT as its path.
func TestJoinedRTTRealServer(t *testing.T) {
	origin := startRTSP(t)
	stream := streamOn(origin.Addr())
	srv := startServer(t, tree.Repair, func(s *server.Server) { s.ReportInterval = time.Hour })
	_, up := join(t, "a", srv.Addr(), stream, nil)
	if up.Node != wire.OriginID {
		t.Fatalf("a's upstream %+v, want the origin", up)
	}
	asker := startWireRelay(t, srv.Addr(), "asker", false)
	var path float64
	for _, c := range asker.candidatesFor(stream) {
		if c.Node == "a" {
			path = c.PathMs
		}
	}
	t.Logf("a's path as ocm-server offers it: %.3f ms", path)
	if !(path > 0) {
		t.Errorf("a offered with path_ms %v: its joined carried no RTT", path)
	}
}
