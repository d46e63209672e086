package relay

import (
	"testing"

	"github.com/ocm-overlay/ocm/internal/probe"
	"github.com/ocm-overlay/ocm/internal/wire"
)

// TestPickIsExplained: every candidate over the CPU ceiling; the relay
// joins the best of them as a last resort, and the ranking ocm-probe
// --explain prints (probe.Select) names the same winner, where it used to
// say a relay would find no parent.
func TestPickIsExplained(t *testing.T) {
	origin := startRTSP(t)
	stream := streamOn(origin.Addr())
	hotRTSP, hotterRTSP := startRTSP(t).Addr(), startRTSP(t).Addr()
	hot := startProbeResponder(t, probe.Info{Node: "hot", Level: 1, CPU: 0.95, Willing: true, FreeCapacity: 4})
	hotter := startProbeResponder(t, probe.Info{Node: "hotter", Level: 1, CPU: 0.97, Willing: true, FreeCapacity: 4})
	// hotter sits deeper, so the order does not hang on loopback RTTs.
	cands := []wire.Candidate{
		{Node: "hotter", RTSP: hotterRTSP, Probe: hotter.Addr(), Level: 3, Capacity: 4},
		{Node: "hot", RTSP: hotRTSP, Probe: hot.Addr(), Level: 1, Capacity: 4},
	}
	fs := startFakeServer(t, func(*wire.GetCandidates) []wire.Candidate { return cands })
	a, up := join(t, "a", fs.Addr(), stream, nil)
	a.log.wait(t, "every candidate is over the CPU ceiling", "best=hot")

	sel := probe.Select(ctxGuard(t), cands, stream, testWeights(), "")
	w, ok := sel.Winner()
	if !ok || !sel.LastResort {
		t.Fatalf("explanation: no winner (last resort %v): %+v", sel.LastResort, sel.Choices)
	}
	if up.Node != "hot" || w.Candidate.Node != up.Node || w.Waived == "" {
		t.Errorf("relay joined %s, explanation's winner %s (waived %q); want hot for both", up.Node, w.Candidate.Node, w.Waived)
	}
}
