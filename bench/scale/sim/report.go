package sim

import (
	"github.com/ocm-overlay/ocm/internal/tree"
)

// Report is the simulator's part of bench/scale.json.
type Report struct {
	SimRelays int    `json:"sim_relays"`
	SimSeed   uint64 `json:"sim_seed"`
	// Default is the selection as shipped (server: k best plus near
	// candidates; relay: probe.DefaultWeights), Random the baseline (a
	// relay takes a random eligible candidate), NoNear the default
	// without the server's near candidates (the selection before them).
	Default Variant `json:"default"`
	Random  Variant `json:"random"`
	NoNear  Variant `json:"default_without_near_candidates"`
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
}

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

// Run runs the simulator: the three variants at o.Relays, every policy's
// recovery, the sweep, and the islands if asked.
func Run(o Options) *Report {
	if o.KillShare == 0 {
		o.KillShare = 0.05
	}
	rep := &Report{SimRelays: o.Relays, SimSeed: o.Seed, KillShare: o.KillShare}
	_, rep.Default = Build(Config{Relays: o.Relays, Seed: o.Seed})
	_, rep.Random = Build(Config{Relays: o.Relays, Seed: o.Seed, Random: true})
	_, rep.NoNear = Build(Config{Relays: o.Relays, Seed: o.Seed, Nearby: -1})
	for _, c := range []int{16, 64} {
		_, v := Build(Config{Relays: o.Relays, Seed: o.Seed, OriginCapacity: c})
		rep.OriginCaps = append(rep.OriginCaps, OriginCap{Capacity: c, AvgDepth: v.AvgDepth, AvgStretch: v.AvgStretch,
			P95Stretch: v.P95Stretch, Cross: v.CrossRegion})
	}
	for _, pol := range tree.Policies {
		s, _ := Build(Config{Relays: o.Relays, Seed: o.Seed})
		rep.Recovery = append(rep.Recovery, s.Kill(pol, o.KillShare))
	}
	for _, n := range o.Sweep {
		_, d := Build(Config{Relays: n, Seed: o.Seed})
		_, r := Build(Config{Relays: n, Seed: o.Seed, Random: true})
		rep.Sweep = append(rep.Sweep, SweepPoint{Relays: n, Log2N: d.Log2N,
			DefaultDepth: d.AvgDepth, DefaultMax: d.MaxDepth, DefaultStr: d.AvgStretch, DefaultCross: d.CrossRegion,
			RandomDepth: r.AvgDepth, RandomMax: r.MaxDepth, RandomStr: r.AvgStretch, RandomCross: r.CrossRegion})
	}
	if o.Islands != nil {
		rep.Islands = RunIslands(*o.Islands, o.Seed, o.KillShare)
	}
	return rep
}
