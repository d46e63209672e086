package relay

import (
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ocm-overlay/ocm/internal/control"
	"github.com/ocm-overlay/ocm/internal/event"
	"github.com/ocm-overlay/ocm/internal/wire"
)

// improveFast is the improvement interval of these tests: rounds come
// one after the other (a round is a candidate request and a probe).
const improveFast = 20 * time.Millisecond

func improvingEvery(d time.Duration) func(*Relay) {
	return func(r *Relay) { r.ImproveEvery = d }
}

// lastJoined is the last joined the fake server received for parent.
func lastJoined(t *testing.T, fs *fakeServer, parent string) *wire.Joined {
	t.Helper()
	js := waitReceived(t, fs, "joined to "+parent, func(js []*wire.Joined) bool {
		return len(js) > 0 && js[len(js)-1].Parent == parent
	})
	return js[len(js)-1]
}

// TestJoinedCarriesRTT: the joined for a parent chosen by probing
// carries the probe's RTT, and every report then carries it as the RTT
// to the parent; a parent with room is joined without asking to
// displace.
func TestJoinedCarriesRTT(t *testing.T) {
	origin := startRTSP(t)
	stream := streamOn(origin.Addr())
	p1 := startParent(t, "p1")
	fs := startFakeServer(t, func(*wire.GetCandidates) []wire.Candidate { return []wire.Candidate{p1} })
	fs.reportMs = 20
	hellos := make(chan *wire.Hello, 4)
	fs.beforeWelcome = func(h *wire.Hello) { hellos <- h }
	join(t, "a", fs.Addr(), stream, nil)
	j := lastJoined(t, fs, "p1")
	t.Logf("joined %+v", *j)
	if !(j.RTTMs > 0) || j.Displace {
		t.Fatalf("joined %+v: want the probe's RTT (> 0) and no displacement", *j)
	}
	reps := waitReceived(t, fs, "report of the stream", func(rs []*wire.Report) bool {
		return len(rs) > 0 && len(rs[len(rs)-1].Streams) == 1
	})
	if s := reps[len(reps)-1].Streams[0]; s.Stream != stream || s.Parent != "p1" || s.RTTMs != j.RTTMs {
		t.Errorf("report %+v: want parent p1 with rtt_ms %v, the joined's", s, j.RTTMs)
	}
	// The server restarts: the hello that rebuilds the tree carries it too.
	<-hellos
	fs.mu.Lock()
	fs.conn.Close()
	fs.mu.Unlock()
	select {
	case h := <-hellos:
		if len(h.Streams) != 1 || h.Streams[0].Parent != "p1" || h.Streams[0].RTTMs != j.RTTMs {
			t.Errorf("hello after the server's restart %+v: want p1 with rtt_ms %v", h.Streams, j.RTTMs)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("no hello after the server closed the connection")
	}
}

// TestJoinedAsksToDisplace: a full candidate offered for displacement,
// whose farthest child is much farther than this relay, is joined with
// the ask to displace by a relay that relays; a passive relay, which
// could not take the displaced child, finds it full.
func TestJoinedAsksToDisplace(t *testing.T) {
	origin := startRTSP(t)
	stream := streamOn(origin.Addr())
	p1 := startParent(t, "p1")
	p1.Clients, p1.DisplaceMs = p1.Capacity, 1000
	fs := startFakeServer(t, func(*wire.GetCandidates) []wire.Candidate { return []wire.Candidate{p1} })
	join(t, "a", fs.Addr(), stream, nil)
	if j := lastJoined(t, fs, "p1"); !j.Displace || !(j.RTTMs > 0) {
		t.Fatalf("joined %+v: want displace with the probe's RTT", *j)
	}

	passive := startFakeServer(t, func(*wire.GetCandidates) []wire.Candidate { return []wire.Candidate{p1} })
	b := startRelay(t, "b", passive.Addr(), func(r *Relay) {
		r.Willing, r.JoinAttempts, r.JoinWait = false, 1, time.Millisecond
	})
	med := dialMediator(t, b.ControlAddr())
	med.hello(startRTSP(t).Addr())
	if r := med.call(&control.Resolve{Stream: stream, Mode: control.ModeJoin}); !strings.Contains(r.Error, "no free capacity") {
		t.Errorf("passive relay's resolve: %+v, want p1 refused for no free capacity", r)
	}
	if js := received[*wire.Joined](passive); len(js) != 0 {
		t.Errorf("passive relay joined %+v", js)
	}
}

// TestHandoverTargetProbed: a RECONNECT naming a target (a displaced
// child's new parent) is joined with the RTT to the target, probed once
// first; a target that does not answer its probe is joined anyway, its
// RTT unknown.
func TestHandoverTargetProbed(t *testing.T) {
	for _, answers := range []bool{true, false} {
		t.Run(map[bool]string{true: "answers", false: "silent"}[answers], func(t *testing.T) {
			origin := startRTSP(t)
			stream := streamOn(origin.Addr())
			p1 := startParent(t, "p1")
			target := startRTSP(t).Addr()
			if !answers {
				target = refusingAddr(t)
			}
			fs := startFakeServer(t, func(*wire.GetCandidates) []wire.Candidate { return []wire.Candidate{p1} })
			a, _ := join(t, "a", fs.Addr(), stream, nil)
			fs.push(&wire.Reconnect{Stream: stream, Reason: wire.ReasonDisplaced, Parent: "p1", Target: "n", TargetRTSP: target})
			sw := a.med.waitSwitch()
			if want := (control.Upstream{URL: enhanced(target, origin.Addr()), Addr: target, Node: "n"}); *sw.Upstream != want {
				t.Fatalf("switch to %+v, want %+v", *sw.Upstream, want)
			}
			j := lastJoined(t, fs, "n")
			t.Logf("joined %+v", *j)
			if answers != (j.RTTMs > 0) || j.Displace {
				t.Errorf("joined %+v: want rtt_ms > 0 %v, no displacement", *j, answers)
			}
			if !answers {
				a.log.wait(t, "handover target did not answer its probe: joining it anyway")
			}
		})
	}
}

// TestImproveMoves: a relay under a parent whose path from the origin
// is long moves, in an improvement round, to one that brings the stream
// much sooner: it joins it with the RTT it probed, pushes a switch to
// the mediator, says so (event, log, metric), and stays there.
func TestImproveMoves(t *testing.T) {
	sc := newFarNear(t, 500, 0)
	stream, near, fs, nearUp := sc.stream, sc.near, sc.fs, sc.nearUp
	fs.reportMs = 20
	a, up := join(t, "a", fs.Addr(), stream, improvingEvery(improveFast))
	if up.Node != "far" {
		t.Fatalf("first upstream %+v, want far", up)
	}
	a.log.wait(t, "improvement round: staying", "parent=far")
	nearUp.Store(true)
	sw := a.med.waitSwitch()
	if want := relayUpOf(near, sc.origin); *sw.Upstream != want {
		t.Fatalf("switch to %+v, want %+v", *sw.Upstream, want)
	}
	j := lastJoined(t, fs, "near")
	if !(j.RTTMs > 0) || j.Displace {
		t.Errorf("joined %+v: want near's probed RTT, no displacement", *j)
	}
	line := a.log.wait(t, "moved to a better parent", "from=far", "to=near")
	t.Log(line)
	var ev *event.Improved
	for _, e := range a.events.Events(t) {
		if im, ok := e.(event.Improved); ok {
			ev = &im
		}
	}
	if ev == nil || ev.Stream != stream || ev.From != "far" || ev.To != "near" || !(ev.FromMs >= 500) || !(ev.ToMs < 500) || ev.Level != 2 {
		t.Errorf("improved event %+v, want far (>= 500 ms) to near at level 2", ev)
	}
	// The next reports name near with the RTT the join carried; later
	// rounds keep it (a Relay reaches near through nothing better).
	waitReceived(t, fs, "report under near", func(rs []*wire.Report) bool {
		if len(rs) == 0 || len(rs[len(rs)-1].Streams) != 1 {
			return false
		}
		s := rs[len(rs)-1].Streams[0]
		return s.Parent == "near" && s.RTTMs > 0
	})
	a.log.wait(t, "improvement round: staying", "parent=near")
	a.med.noSwitch()
	if v, _ := serveMetrics(t, a.Relay)().Value("ocm_relay_improvements_total", "result", "moved"); v != 1 {
		t.Errorf("ocm_relay_improvements_total{result=moved} = %v, want 1", v)
	}
}

// farNear is a stream from a real origin and two parents, far and near
// (with their paths from the origin, ms), offered by a fake server: far
// alone until nearUp, then both.
type farNear struct {
	origin, stream string
	far, near      wire.Candidate
	fs             *fakeServer
	nearUp         *atomic.Bool
}

func newFarNear(t *testing.T, farPath, nearPath float64) *farNear {
	sc := &farNear{origin: startRTSP(t).Addr(), far: startParent(t, "far"), near: startParent(t, "near"),
		nearUp: new(atomic.Bool)}
	sc.stream = streamOn(sc.origin)
	sc.far.PathMs, sc.near.PathMs = farPath, nearPath
	sc.fs = startFakeServer(t, func(*wire.GetCandidates) []wire.Candidate {
		if sc.nearUp.Load() {
			return []wire.Candidate{sc.far, sc.near}
		}
		return []wire.Candidate{sc.far}
	})
	return sc
}

// relayUpOf is the upstream of the stream pulled from candidate c.
func relayUpOf(c wire.Candidate, originAddr string) control.Upstream {
	return control.Upstream{URL: enhanced(c.RTSP, originAddr), Addr: c.RTSP, Node: c.Node}
}

// TestImproveRefusedStays: a better parent that refuses the join
// changes nothing: no switch, the parent kept, and later rounds try
// again.
func TestImproveRefusedStays(t *testing.T) {
	sc := newFarNear(t, 500, 0)
	stream, fs, nearUp := sc.stream, sc.fs, sc.nearUp
	fs.refuse = func(j *wire.Joined) *wire.Error {
		if j.Parent == "near" {
			return &wire.Error{Code: wire.CodeFull, Message: "near is full"}
		}
		return nil
	}
	a, _ := join(t, "a", fs.Addr(), stream, improvingEvery(improveFast))
	nearUp.Store(true)
	a.log.waitCount(t, 2, "the better parent refused, staying", "better=near")
	a.med.noSwitch()
	if a.log.has("moved to a better parent") {
		t.Error("moved although the join was refused")
	}
}

// TestImproveStaysUnderThreshold: a parent that brings the stream only a
// little sooner (less than probe.ImproveShare of the latency) is not
// worth a switch: rounds run and nothing moves.
func TestImproveStaysUnderThreshold(t *testing.T) {
	// 30 ms sooner of 200: under the 20% (40 ms) a move needs, by more
	// than loopback RTTs vary.
	sc := newFarNear(t, 200, 170)
	stream, fs, nearUp := sc.stream, sc.fs, sc.nearUp
	a, up := join(t, "a", fs.Addr(), stream, improvingEvery(improveFast))
	if up.Node != "far" {
		t.Fatalf("first upstream %+v, want far", up)
	}
	nearUp.Store(true)
	before := len(received[*wire.GetCandidates](fs))
	waitReceived(t, fs, "three more candidate requests", func(gs []*wire.GetCandidates) bool { return len(gs) >= before+3 })
	a.log.wait(t, "improvement round: staying", "parent=far")
	a.med.noSwitch()
	if js := received[*wire.Joined](fs); len(js) != 1 {
		t.Errorf("joined %d times, want once (no move)", len(js))
	}
}

// TestImproveOff: with the rounds off (ocm-relay --improve-every 0) a
// relay never asks for candidates again, while one with them on does.
func TestImproveOff(t *testing.T) {
	origin := startRTSP(t)
	stream := streamOn(origin.Addr())
	p1 := startParent(t, "p1")
	cands := func(*wire.GetCandidates) []wire.Candidate { return []wire.Candidate{p1} }
	onFS, offFS := startFakeServer(t, cands), startFakeServer(t, cands)
	join(t, "off", offFS.Addr(), stream, func(r *Relay) { r.ImproveEvery, r.NoImprove = improveFast, true })
	join(t, "on", onFS.Addr(), stream, improvingEvery(improveFast))
	waitReceived(t, onFS, "three improvement rounds", func(gs []*wire.GetCandidates) bool { return len(gs) >= 4 })
	if n := len(received[*wire.GetCandidates](offFS)); n != 1 {
		t.Errorf("the relay with the rounds off asked for candidates %d times, want once (its resolve)", n)
	}
}

// TestImproveEveryNegative: a negative interval is refused at Start.
func TestImproveEveryNegative(t *testing.T) {
	r := &Relay{Control: "127.0.0.1:0", Probe: "127.0.0.1:0", ImproveEvery: -time.Second}
	err := r.Start()
	if err == nil {
		r.Close()
		t.Fatal("started with a negative improve interval")
	}
	if !strings.Contains(err.Error(), "improve interval -1s is negative") {
		t.Errorf("error %q does not name the improve interval", err)
	}
}

// TestReportedRTTFollowsParent: when the mediator says it plays from
// another parent than the one the relay measured, the relay tells the
// server without an RTT and its reports stop carrying the old parent's.
func TestReportedRTTFollowsParent(t *testing.T) {
	origin := startRTSP(t)
	stream := streamOn(origin.Addr())
	p1, p2 := startParent(t, "p1"), startParent(t, "p2")
	fs := startFakeServer(t, func(*wire.GetCandidates) []wire.Candidate { return []wire.Candidate{p1} })
	fs.reportMs = 20
	a, _ := join(t, "a", fs.Addr(), stream, nil)
	if j := lastJoined(t, fs, "p1"); !(j.RTTMs > 0) {
		t.Fatalf("joined %+v: want the probe's RTT", *j)
	}
	a.med.send(&control.Active{Stream: stream, Upstream: relayUpOf(p2, origin.Addr())})
	if j := lastJoined(t, fs, "p2"); j.RTTMs != 0 {
		t.Errorf("joined %+v: p2 was never probed, want rtt_ms 0", *j)
	}
	waitReceived(t, fs, "a report under p2", func(rs []*wire.Report) bool {
		if len(rs) == 0 || len(rs[len(rs)-1].Streams) != 1 {
			return false
		}
		s := rs[len(rs)-1].Streams[0]
		if s.Parent == "p2" && s.RTTMs != 0 {
			t.Errorf("report %+v: p1's RTT reported for p2", s)
		}
		return s.Parent == "p2"
	})
}
