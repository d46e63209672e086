package sim

import (
	"bytes"
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	"github.com/ocm-overlay/ocm/internal/tree"
)

// The simulator at a few hundred relays, so it cannot rot: every relay
// joins, the figures are sane, the forest is valid, every survivor of each
// recovery policy has a parent again, and the default selection keeps
// more edges inside their region than a relay picking at random. Figures
// are logged, not asserted beyond that.
func TestSimSmall(t *testing.T) {
	rep := Run(Options{Relays: 300, Seed: 7, Sweep: []int{50, 150}})
	js, _ := json.MarshalIndent(rep, "", "  ")
	t.Logf("%s", js)
	for name, v := range map[string]Variant{"default": rep.Default, "at join": rep.DefaultAtJoin, "random": rep.Random,
		"no adaptation": rep.NoAdapt, "no near": rep.NoNear} {
		if v.Attached != 300 || v.Failed != 0 {
			t.Errorf("%s: %d of 300 attached, %d failed", name, v.Attached, v.Failed)
		}
		if v.AvgDepth < 1 || v.MaxDepth < 1 || float64(v.MaxDepth) < v.AvgDepth {
			t.Errorf("%s: depth avg %v max %d", name, v.AvgDepth, v.MaxDepth)
		}
		if v.AvgStretch < 1 || v.P95Stretch < 1 {
			t.Errorf("%s: stretch avg %v p95 %v, below 1", name, v.AvgStretch, v.P95Stretch)
		}
		for what, f := range map[string]float64{"cross": v.CrossRegion, "jain": v.JainLoad, "full": v.FullShare,
			"idle": v.IdleShare, "load": v.MeanLoad} {
			if f < 0 || f > 1 {
				t.Errorf("%s: %s %v outside [0,1]", name, what, f)
			}
		}
		if v.OriginFan < 1 || v.OriginFan > 4 {
			t.Errorf("%s: origin fan-out %d", name, v.OriginFan)
		}
	}
	if rep.Default.CrossRegion >= rep.Random.CrossRegion {
		t.Errorf("default cross-region edges %v, not below random's %v", rep.Default.CrossRegion, rep.Random.CrossRegion)
	}
	if len(rep.Recovery) != len(tree.Policies) {
		t.Fatalf("%d recoveries", len(rep.Recovery))
	}
	for _, r := range rep.Recovery {
		if r.Killed != 15 || r.Affected == 0 || r.Unattached != 0 || r.AllAttachedMs <= 0 || r.AllMediaMs < r.AllAttachedMs {
			t.Errorf("%s: %d killed, %d affected, %d unattached, attached after %v ms, media after %v ms",
				r.Policy, r.Killed, r.Affected, r.Unattached, r.AllAttachedMs, r.AllMediaMs)
		}
		if r.EdgesKept < 0 || r.EdgesKept > 1 || r.AvgDepthAfter < 1 {
			t.Errorf("%s: edges kept %v, depth after %v", r.Policy, r.EdgesKept, r.AvgDepthAfter)
		}
	}
	if len(rep.Sweep) != 2 || rep.Sweep[1].Relays != 150 || rep.Sweep[1].DefaultDepth <= 0 {
		t.Errorf("sweep %+v", rep.Sweep)
	}
	var svg bytes.Buffer
	if err := WriteSVG(&svg, rep.Sweep); err != nil || strings.Count(svg.String(), "<polyline") != 6 {
		t.Errorf("svg: %v\n%s", err, svg.String())
	}
	// Same seed, same figures.
	if again := Run(Options{Relays: 300, Seed: 7, Sweep: []int{50, 150}}); !reflect.DeepEqual(again.Default, rep.Default) ||
		again.Recovery[0] != rep.Recovery[0] {
		t.Errorf("not deterministic: %+v\nthen %+v", rep.Default, again.Default)
	}
}

// The tree learns latency: after the crowd arrived, the relays'
// improvement rounds and displacements bring the average stretch well
// below that of the same crowd without them, and leave a valid forest in
// which no parent is over its capacity once the moves are done.
func TestAdaptLowersStretch(t *testing.T) {
	_, before := Build(Config{Relays: 1000, Seed: 2, NoAdapt: true})
	s, after := Adapted(Config{Relays: 1000, Seed: 2}, 5)
	t.Logf("without adaptation: stretch %.2f depth %.2f cross %.3f", before.AvgStretch, before.AvgDepth, before.CrossRegion)
	for _, p := range after.Timeline {
		t.Logf("after %g min: stretch %.2f depth %.2f cross %.3f", p.Minutes, p.AvgStretch, p.AvgDepth, p.CrossRegion)
	}
	t.Logf("counts %+v", after.Counts)
	if after.Attached != 1000 || after.Failed != 0 {
		t.Errorf("%d of 1000 attached, %d failed", after.Attached, after.Failed)
	}
	if after.Moves == 0 || after.Displaced == 0 {
		t.Errorf("%d moves and %d displacements: nothing adapted", after.Moves, after.Displaced)
	}
	if after.AvgStretch > 0.8*before.AvgStretch {
		t.Errorf("average stretch %.2f after adapting, %.2f without: not lowered by a fifth", after.AvgStretch, before.AvgStretch)
	}
	if err := s.F.Validate(); err != nil {
		t.Fatal(err)
	}
	for i := 1; i < len(s.ids); i++ {
		if c := s.W.Hosts[i].Capacity; len(s.F.Children(Stream, s.ids[i])) > c {
			t.Errorf("%s has %d children, capacity %d", s.ids[i], len(s.F.Children(Stream, s.ids[i])), c)
		}
	}
}

// Every recovery leaves a valid forest in which every survivor that was
// attached is attached again.
func TestSimRecoveryValid(t *testing.T) {
	for _, pol := range tree.Policies {
		s, _ := Build(Config{Relays: 200, Seed: 3})
		r := s.Kill(pol, 0.1)
		if err := s.F.Validate(); err != nil {
			t.Fatalf("%s: %v", pol, err)
		}
		for i := 1; i < len(s.ids); i++ {
			if !s.dead[i] && !s.F.Attached(Stream, s.ids[i]) {
				t.Errorf("%s: survivor %s not attached", pol, s.ids[i])
			}
		}
		t.Logf("%s: %+v", pol, r)
	}
}

// The islands model at a small size: end-to-end depth is deeper than an
// island's own, every simulated relay is counted, every island recovery
// leaves no survivor without a parent.
func TestIslandsSmall(t *testing.T) {
	is := RunIslands(IslandOptions{Islands: 8, PerIsland: 150, Sample: 4}, 5, 0.05)
	js, _ := json.MarshalIndent(is, "", "  ")
	t.Logf("%s", js)
	if is.Simulated != 4 || is.Viewers != 1200 || is.Upper.Attached != 8 {
		t.Errorf("simulated %d, viewers %d, upper attached %d", is.Simulated, is.Viewers, is.Upper.Attached)
	}
	if is.AvgDepth <= is.Island.AvgDepth || is.MaxDepth < is.Island.MaxDepth || is.AvgStretch < 1 || is.P95Stretch < 1 {
		t.Errorf("end to end depth %v/%d (island %v/%d), stretch %v p95 %v", is.AvgDepth, is.MaxDepth,
			is.Island.AvgDepth, is.Island.MaxDepth, is.AvgStretch, is.P95Stretch)
	}
	if is.CrossRegion < 0 || is.CrossRegion > 1 || is.Island.CrossRegion != 0 {
		t.Errorf("cross-region %v, island's %v", is.CrossRegion, is.Island.CrossRegion)
	}
	for _, r := range append(is.IslandRecovery, is.UpperRecovery) {
		if r.Unattached != 0 || r.Killed == 0 {
			t.Errorf("%s: %d killed, %d unattached", r.Policy, r.Killed, r.Unattached)
		}
	}
}
