package sim

import (
	"math"
	"slices"
)

// Quality is a tree's shape on the latency map.
type Quality struct {
	Relays   int     `json:"relays"`
	Attached int     `json:"attached"`
	AvgDepth float64 `json:"avg_depth"`
	MaxDepth int     `json:"max_depth"`
	// Log2N is the depth target: log2 of the relays.
	Log2N     float64 `json:"log2_n"`
	OriginFan int     `json:"origin_fanout"`
	// Stretch is the RTT along the tree from the origin over the direct
	// RTT to the origin, per relay.
	AvgStretch float64 `json:"avg_stretch"`
	P50Stretch float64 `json:"p50_stretch"`
	P95Stretch float64 `json:"p95_stretch"`
	// AvgStretchAway is the average over the relays outside the origin's
	// region: a relay a few ms from the origin has a stretch of about its
	// depth whatever the tree.
	AvgStretchAway float64 `json:"avg_stretch_outside_origin_region"`
	// AvgStretchNear is the average over the relays in the origin's
	// region, NearShare their share of the attached relays.
	AvgStretchNear float64 `json:"avg_stretch_in_origin_region"`
	NearShare      float64 `json:"origin_region_share"`
	// CrossRegion is the share of parent-child edges (all of them, the
	// origin's included) joining two regions.
	CrossRegion float64 `json:"cross_region_edges"`
	// Crossings is the average number of cross-region edges on a path
	// from the origin.
	Crossings float64 `json:"avg_region_crossings_per_path"`
	// Load balance over the relays that relay (capacity > 0): the Jain
	// index of children/capacity, the share full, the share with no
	// child, and the mean children/capacity.
	JainLoad   float64 `json:"load_jain"`
	FullShare  float64 `json:"relays_full"`
	IdleShare  float64 `json:"relays_idle"`
	MeanLoad   float64 `json:"mean_load"`
	AvgPathRTT float64 `json:"avg_path_rtt_ms"`
}

// Measure reads the server's tree.
func (s *Sim) Measure() Quality {
	n := len(s.ids)
	q := Quality{Relays: n - 1, Log2N: math.Log2(float64(n - 1))}
	tr := s.trace()
	parent, kids, path, depth, crossings := tr.parent, tr.kids, tr.path, tr.depth, tr.crossings
	var stretch []float64
	cross, away := 0, 0
	for i := 1; i < n; i++ {
		if parent[i] < 0 {
			continue
		}
		q.Attached++
		q.AvgDepth += float64(depth[i])
		q.MaxDepth = max(q.MaxDepth, depth[i])
		q.AvgPathRTT += path[i]
		q.Crossings += float64(crossings[i])
		st := path[i] / s.W.RTT(0, i)
		stretch = append(stretch, st)
		if s.W.Hosts[i].Region != s.W.Hosts[0].Region {
			q.AvgStretchAway += st
			away++
		} else {
			q.AvgStretchNear += st
		}
		if s.W.Hosts[i].Region != s.W.Hosts[parent[i]].Region {
			cross++
		}
	}
	q.OriginFan = kids[0]
	if q.Attached > 0 {
		a := float64(q.Attached)
		q.AvgDepth /= a
		q.AvgPathRTT /= a
		q.Crossings /= a
		q.CrossRegion = float64(cross) / a
		for _, x := range stretch {
			q.AvgStretch += x
		}
		q.AvgStretch /= a
		if away > 0 {
			q.AvgStretchAway /= float64(away)
		}
		if near := q.Attached - away; near > 0 {
			q.AvgStretchNear /= float64(near)
			q.NearShare = float64(near) / a
		}
		slices.Sort(stretch)
		q.P50Stretch = stretch[len(stretch)/2]
		q.P95Stretch = stretch[int(0.95*float64(len(stretch)-1))]
	}
	var sum, sum2 float64
	relaying := 0
	for i := 1; i < n; i++ {
		c := s.W.Hosts[i].Capacity
		if c == 0 || parent[i] < 0 {
			continue
		}
		relaying++
		u := float64(kids[i]) / float64(c)
		sum += u
		sum2 += u * u
		if kids[i] >= c {
			q.FullShare++
		}
		if kids[i] == 0 {
			q.IdleShare++
		}
	}
	if relaying > 0 {
		r := float64(relaying)
		q.MeanLoad, q.FullShare, q.IdleShare = sum/r, q.FullShare/r, q.IdleShare/r
		if sum2 > 0 {
			q.JainLoad = sum * sum / (r * sum2)
		}
	}
	return q
}

// traced is the server's tree with each relay's path from the origin.
type traced struct {
	parent, kids, depth, crossings []int
	path                           []float64 // RTT along the tree from the origin, ms
}

// trace reads the tree: parent -1 for a relay not attached.
func (s *Sim) trace() traced {
	n := len(s.ids)
	tr := traced{parent: make([]int, n), kids: make([]int, n), depth: make([]int, n), crossings: make([]int, n),
		path: make([]float64, n)}
	for i := 1; i < n; i++ {
		tr.parent[i] = -1
		if s.dead[i] || !s.F.Attached(Stream, s.ids[i]) {
			continue
		}
		tr.parent[i] = s.parentOf(i)
		tr.kids[tr.parent[i]]++
	}
	done := make([]bool, n)
	done[0] = true
	var walk func(i int)
	walk = func(i int) {
		if done[i] {
			return
		}
		p := tr.parent[i]
		walk(p)
		tr.path[i], tr.depth[i], done[i] = tr.path[p]+s.W.RTT(p, i), tr.depth[p]+1, true
		tr.crossings[i] = tr.crossings[p]
		if s.W.Hosts[i].Region != s.W.Hosts[p].Region {
			tr.crossings[i]++
		}
	}
	for i := 1; i < n; i++ {
		if tr.parent[i] >= 0 {
			walk(i)
		}
	}
	return tr
}
