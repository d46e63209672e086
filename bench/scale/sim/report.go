package sim

import (
	"github.com/ocm-overlay/ocm/internal/tree"
)

// Report is the simulator's part of bench/scale.json.
type Report struct {
	SimRelays int    `json:"sim_relays"`
	SimSeed   uint64 `json:"sim_seed"`
	// Default is the selection as shipped (server: k best plus near
	// candidates and displacement; relay: probe.DefaultWeights and its
	// improvement rounds) AdaptMinutes after the crowd arrived;
	// DefaultAtJoin the same tree right after the crowd arrived, before
	// any improvement round; Random the baseline (a relay takes a random
	// eligible candidate, nothing adapts); NoAdapt the selection before
	// the tree learned latency (no paths, no displacement, no
	// improvement rounds); NoNear that one without the server's near
	// candidates as well.
	Default       Variant `json:"default"`
	DefaultAtJoin Variant `json:"default_at_join"`
	Random        Variant `json:"random"`
	NoAdapt       Variant `json:"default_without_adaptation"`
	NoNear        Variant `json:"default_without_near_candidates"`
	AdaptMinutes  float64 `json:"adapt_minutes"`
	// OriginCaps is the default selection with larger origin capacities:
	// how many networks' subtrees can enter right under the origin.
	OriginCaps []OriginCap `json:"origin_capacity"`
	// Recovery is every policy's answer to KillShare of the relays
	// killed at once, on the default tree.
	KillShare float64    `json:"kill_share"`
	Recovery  []Recovery `json:"recovery"`
	// Sweep is depth and stretch against the number of relays.
	Sweep []SweepPoint `json:"sweep"`
	// Islands is the million-viewer model (islands.go), if run.
	Islands *Islands `json:"islands,omitempty"`
}

// Variant is one selection's tree and what building it took.
type Variant struct {
	Quality
	Counts
	// RefusalsPerJoin is join refusals (a candidate full by the time the
	// relay joined) per accepted join.
	RefusalsPerJoin float64 `json:"refusals_per_join"`
	// Timeline is the tree while it adapts (Default only).
	Timeline []AdaptPoint `json:"timeline,omitempty"`
}

// AdaptPoint is the tree some minutes after the crowd arrived.
type AdaptPoint struct {
	Minutes     float64 `json:"minutes"`
	AvgStretch  float64 `json:"avg_stretch"`
	AvgDepth    float64 `json:"avg_depth"`
	CrossRegion float64 `json:"cross_region_edges"`
}

// OriginCap is the default tree with one origin capacity.
type OriginCap struct {
	Capacity   int     `json:"capacity"`
	AvgDepth   float64 `json:"avg_depth"`
	AvgStretch float64 `json:"avg_stretch"`
	P95Stretch float64 `json:"p95_stretch"`
	Cross      float64 `json:"cross_region_edges"`
}

// SweepPoint is the default and random trees at one size.
type SweepPoint struct {
	Relays       int     `json:"relays"`
	Log2N        float64 `json:"log2_n"`
	DefaultDepth float64 `json:"default_avg_depth"`
	DefaultMax   int     `json:"default_max_depth"`
	DefaultStr   float64 `json:"default_avg_stretch"`
	DefaultCross float64 `json:"default_cross_region_edges"`
	RandomDepth  float64 `json:"random_avg_depth"`
	RandomMax    int     `json:"random_max_depth"`
	RandomStr    float64 `json:"random_avg_stretch"`
	RandomCross  float64 `json:"random_cross_region_edges"`
}

// Options say what to run.
type Options struct {
	Relays    int
	Seed      uint64
	Sweep     []int   // sizes for the plot; nil: none
	KillShare float64 // 0: 0.05
	Islands   *IslandOptions
	// AdaptMinutes is how long the relays' improvement rounds run after
	// the crowd arrived before the default tree is measured (0:
	// DefaultAdaptMinutes).
	AdaptMinutes float64
}

// DefaultAdaptMinutes is how long the default tree adapts before it is
// measured: the first minutes of an event.
const DefaultAdaptMinutes = 10

// Build builds one tree and measures it.
func Build(cfg Config) (*Sim, Variant) {
	s := New(cfg)
	s.Build()
	v := Variant{Quality: s.Measure(), Counts: s.st}
	if v.Joins > 0 {
		v.RefusalsPerJoin = float64(v.Refused) / float64(v.Joins)
	}
	return s, v
}

// Adapted builds a tree as Build does, then runs the relays' improvement
// rounds for minutes and measures it again; the timeline has the tree
// at the join, after 1, 2 and 5 minutes, and at the end.
func Adapted(cfg Config, minutes float64) (*Sim, Variant) {
	s, v := Build(cfg)
	if cfg.NoAdapt || cfg.Random {
		return s, v
	}
	v.Timeline = []AdaptPoint{{0, v.AvgStretch, v.AvgDepth, v.CrossRegion}}
	var marks []float64
	for _, m := range []float64{1, 2, 5} {
		if m < minutes {
			marks = append(marks, m)
		}
	}
	marks = append(marks, minutes)
	ms := make([]float64, len(marks))
	for i, m := range marks {
		ms[i] = m * 60e3
	}
	qs := s.Adapt(ms[len(ms)-1], ms)
	for i, q := range qs {
		v.Timeline = append(v.Timeline, AdaptPoint{marks[i], q.AvgStretch, q.AvgDepth, q.CrossRegion})
	}
	v.Quality, v.Counts = qs[len(qs)-1], s.st
	if v.Joins > 0 {
		v.RefusalsPerJoin = float64(v.Refused) / float64(v.Joins)
	}
	return s, v
}

// Run runs the simulator: the three variants at o.Relays, every policy's
// recovery, the sweep, and the islands if asked.
func Run(o Options) *Report {
	if o.KillShare == 0 {
		o.KillShare = 0.05
	}
	if o.AdaptMinutes <= 0 {
		o.AdaptMinutes = DefaultAdaptMinutes
	}
	rep := &Report{SimRelays: o.Relays, SimSeed: o.Seed, KillShare: o.KillShare, AdaptMinutes: o.AdaptMinutes}
	_, rep.DefaultAtJoin = Build(Config{Relays: o.Relays, Seed: o.Seed})
	def, dv := Adapted(Config{Relays: o.Relays, Seed: o.Seed}, o.AdaptMinutes)
	rep.Default = dv
	_, rep.Random = Build(Config{Relays: o.Relays, Seed: o.Seed, Random: true, NoAdapt: true})
	_, rep.NoAdapt = Build(Config{Relays: o.Relays, Seed: o.Seed, NoAdapt: true})
	_, rep.NoNear = Build(Config{Relays: o.Relays, Seed: o.Seed, Nearby: -1, NoAdapt: true})
	for _, c := range []int{16, 64} {
		_, v := Adapted(Config{Relays: o.Relays, Seed: o.Seed, OriginCapacity: c}, o.AdaptMinutes)
		rep.OriginCaps = append(rep.OriginCaps, OriginCap{Capacity: c, AvgDepth: v.AvgDepth, AvgStretch: v.AvgStretch,
			P95Stretch: v.P95Stretch, Cross: v.CrossRegion})
	}
	for i, pol := range tree.Policies {
		s := def // the adapted default tree, rebuilt for each policy but the first
		if i > 0 {
			s, _ = Adapted(Config{Relays: o.Relays, Seed: o.Seed}, o.AdaptMinutes)
		}
		rep.Recovery = append(rep.Recovery, s.Kill(pol, o.KillShare))
	}
	for _, n := range o.Sweep {
		_, d := Adapted(Config{Relays: n, Seed: o.Seed}, o.AdaptMinutes)
		_, r := Build(Config{Relays: n, Seed: o.Seed, Random: true, NoAdapt: true})
		rep.Sweep = append(rep.Sweep, SweepPoint{Relays: n, Log2N: d.Log2N,
			DefaultDepth: d.AvgDepth, DefaultMax: d.MaxDepth, DefaultStr: d.AvgStretch, DefaultCross: d.CrossRegion,
			RandomDepth: r.AvgDepth, RandomMax: r.MaxDepth, RandomStr: r.AvgStretch, RandomCross: r.CrossRegion})
	}
	if o.Islands != nil {
		rep.Islands = RunIslands(*o.Islands, o.Seed, o.KillShare)
	}
	return rep
}
