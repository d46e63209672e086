package sim

import (
	"slices"

	"github.com/ocm-overlay/ocm/internal/tree"
)

// The paper's distribution islands: a million viewers of one stream are
// served by regional servers, each with its own tree, whose origin is a
// relay of an upper tree held by the origin's server. Nothing is global:
// each server holds its own relays only. Here the upper tree's relays are
// the islands' roots, placed over the map's regions by their shares, each
// with capacity UpperCapacity; each island's relays are all in its root's
// region and join its tree with the island's root as their origin (origin
// capacity ocm-server's default). Both levels run the same simulator on
// the same latency map, so end-to-end figures add the root's path in the
// upper tree to the relay's in its island.

// IslandOptions size the model.
type IslandOptions struct {
	Islands   int // regional servers (each one a root in the upper tree)
	PerIsland int // relays per island
	// Sample is how many islands are simulated (0 or >= Islands: all);
	// the others are taken to be like the simulated ones (they differ
	// only in their seed and their root's place).
	Sample int
}

// UpperCapacity is an island root's capacity in the upper tree: a root
// also serves its island's first level, so it is taken to be a well
// connected host.
const UpperCapacity = 4

// Islands is the model's report.
type Islands struct {
	Islands   int `json:"islands"`
	PerIsland int `json:"relays_per_island"`
	Simulated int `json:"islands_simulated"` // the rest assumed alike
	Viewers   int `json:"viewers"`           // Islands * PerIsland
	// Upper is the upper tree (the roots under the origin).
	Upper Quality `json:"upper"`
	// End to end over the simulated islands' relays: depth from the
	// origin, stretch (RTT along the upper and the island's tree over the
	// direct RTT to the origin), cross-region edges (upper and island).
	AvgDepth    float64 `json:"avg_depth"`
	MaxDepth    int     `json:"max_depth"`
	AvgStretch  float64 `json:"avg_stretch"`
	P50Stretch  float64 `json:"p50_stretch"`
	P95Stretch  float64 `json:"p95_stretch"`
	CrossRegion float64 `json:"cross_region_edges"`
	// Island is the first simulated island's own tree (root as origin).
	Island Quality `json:"island"`
	// Recovery: 5% of one island's relays killed at once, per policy
	// (islands recover independently: their servers share nothing), and
	// 5% of the roots killed in the upper tree (repair) - the islands
	// under a killed root are without stream until their regional origin
	// is replaced, which is the regional server's failover, not modelled.
	IslandRecovery []Recovery `json:"island_recovery"`
	UpperRecovery  Recovery   `json:"upper_recovery"`
}

// RunIslands runs the model.
func RunIslands(o IslandOptions, seed uint64, killShare float64) *Islands {
	if o.Sample <= 0 || o.Sample > o.Islands {
		o.Sample = o.Islands
	}
	out := &Islands{Islands: o.Islands, PerIsland: o.PerIsland, Simulated: o.Sample, Viewers: o.Islands * o.PerIsland}
	upCfg := Config{Relays: o.Islands, Seed: seed, Place: &Place{Region: -1, Capacity: UpperCapacity}}
	up, _ := Build(upCfg)
	out.Upper = up.Measure()
	utr := up.trace()
	origin := up.W.Hosts[0]

	var stretch []float64
	edges, cross := 0, 0
	for k := 0; k < o.Sample; k++ {
		// Spread the sample over the roots.
		r := 1 + k*o.Islands/o.Sample
		if utr.parent[r] < 0 {
			continue // a root that did not join: no island
		}
		root := up.W.Hosts[r]
		s, q := Build(Config{Relays: o.PerIsland, Seed: seed + uint64(r)*7919,
			Place: &Place{Region: root.Region, Origin: &root}})
		if k == 0 {
			out.Island = q.Quality
		}
		tr := s.trace()
		for i := 1; i < len(s.ids); i++ {
			if tr.parent[i] < 0 {
				continue
			}
			d := utr.depth[r] + tr.depth[i]
			out.AvgDepth += float64(d)
			out.MaxDepth = max(out.MaxDepth, d)
			st := (utr.path[r] + tr.path[i]) / HostRTT(&origin, &s.W.Hosts[i])
			stretch = append(stretch, st)
			edges++
			if s.W.Hosts[i].Region != s.W.Hosts[tr.parent[i]].Region {
				cross++
			}
		}
	}
	// Cross-region edges: the upper tree's and the islands', counted as
	// edges (each island's relays are in its root's region, so its edges
	// cross only where a stray address does not matter: never).
	upEdges := out.Upper.Attached
	upCross := int(out.Upper.CrossRegion*float64(upEdges) + 0.5)
	if n := len(stretch); n > 0 {
		out.AvgDepth /= float64(n)
		for _, x := range stretch {
			out.AvgStretch += x
		}
		out.AvgStretch /= float64(n)
		slices.Sort(stretch)
		out.P50Stretch = stretch[n/2]
		out.P95Stretch = stretch[int(0.95*float64(n-1))]
		// Scale the simulated islands' edges to all islands.
		scale := float64(o.Islands) / float64(o.Sample)
		out.CrossRegion = (float64(upCross) + float64(cross)*scale) / (float64(upEdges) + float64(edges)*scale)
	}
	for _, pol := range tree.Policies {
		r := 1
		root := up.W.Hosts[r]
		s, _ := Build(Config{Relays: o.PerIsland, Seed: seed + uint64(r)*7919,
			Place: &Place{Region: root.Region, Origin: &root}})
		out.IslandRecovery = append(out.IslandRecovery, s.Kill(pol, killShare))
	}
	up2, _ := Build(upCfg)
	out.UpperRecovery = up2.Kill(tree.Repair, killShare)
	return out
}
