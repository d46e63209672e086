package sim

import (
	"math"
	"math/rand/v2"
	"net/netip"
)

// Region is one area of the latency map.
type Region struct {
	Name  string
	Share float64 // of the audience
}

// Regions are the map's regions: the world's main hosting areas, with
// their shares of a global audience.
var Regions = []Region{
	{"na-east", 0.20}, {"na-west", 0.12}, {"sa-east", 0.07}, {"eu-west", 0.18},
	{"eu-central", 0.14}, {"asia-south", 0.10}, {"asia-east", 0.13}, {"oceania", 0.06},
}

// regionRTT is the RTT in ms between the centres of two regions: round
// figures of public inter-region measurements, capped at 250 ms.
var regionRTT = [8][8]float64{
	//  nae  naw   sa  euw  euc  as   ae   oc
	{0, 65, 120, 75, 90, 200, 160, 200},    // na-east
	{65, 0, 170, 140, 150, 220, 105, 140},  // na-west
	{120, 170, 0, 190, 200, 250, 250, 250}, // sa-east
	{75, 140, 190, 0, 20, 120, 220, 250},   // eu-west
	{90, 150, 200, 20, 0, 110, 210, 240},   // eu-central
	{200, 220, 250, 120, 110, 0, 70, 140},  // asia-south
	{160, 105, 250, 220, 210, 70, 0, 110},  // asia-east
	{200, 140, 250, 250, 240, 140, 110, 0}, // oceania
}

// OriginRegion is where the origin (and its ocm-server) is.
const OriginRegion = 3 // eu-west

// regionRadius is the radius, in ms of RTT, of the disc a region's hosts
// are placed in: two hosts of one region are 0-15 ms apart, plus their
// access delays.
const regionRadius = 7.5

// Host is one synthetic viewer host (or the origin).
type Host struct {
	Region   int
	X, Y     float64 // position in its region's disc, ms of RTT from its centre
	Access   float64 // last-mile delay added to every RTT, ms
	Addr     netip.Addr
	Capacity int // 0: passive
	CPU      float64
}

// World is the latency map and the hosts on it; hosts[0] is the origin.
type World struct {
	Hosts []Host
	// prefixes[r] are region r's ISPs' /16s.
	prefixes [][]netip.Prefix
}

// ispsPerRegion is how many /16s a region's addresses come from.
const ispsPerRegion = 6

// strayShare is the part of hosts whose address says nothing true of
// their place (mobile carriers' and VPNs' exits, anycast): they get an
// address of another region's ISP.
const strayShare = 0.05

// NewWorld places the origin and n relays. Capacities: 15% passive, 75%
// 2-4 children, 10% 8-16.
func NewWorld(n int, rng *rand.Rand) *World {
	return newWorld(n, rng, Place{Region: -1})
}

// Place says where a world's hosts are.
type Place struct {
	// Region, if >= 0, holds every relay (an island's audience); -1:
	// the relays follow Regions' shares.
	Region int
	// Origin, if set, is the origin host (an island's root, a relay of
	// the upper tree); nil: placed in OriginRegion.
	Origin *Host
	// Capacity, if > 0, is every relay's (all relay).
	Capacity int
}

func newWorld(n int, rng *rand.Rand, pl Place) *World {
	w := &World{}
	used := map[[2]byte]bool{}
	for range Regions {
		var ps []netip.Prefix
		for len(ps) < ispsPerRegion {
			ab := [2]byte{byte(11 + rng.IntN(200)), byte(rng.IntN(256))}
			if used[ab] || ab[0] == 127 {
				continue
			}
			used[ab] = true
			ps = append(ps, netip.PrefixFrom(netip.AddrFrom4([4]byte{ab[0], ab[1], 0, 0}), 16))
		}
		w.prefixes = append(w.prefixes, ps)
	}
	origin := w.place(OriginRegion, rng)
	if pl.Origin != nil {
		origin = *pl.Origin
	}
	origin.Capacity = 0
	w.Hosts = append(w.Hosts, origin)
	for range n {
		r := pl.Region
		if r < 0 {
			r = pickRegion(rng)
		}
		h := w.place(r, rng)
		switch p := rng.Float64(); {
		case pl.Capacity > 0:
			h.Capacity = pl.Capacity
		case p < 0.15:
			h.Capacity = 0
		case p < 0.90:
			h.Capacity = 2 + rng.IntN(3)
		default:
			h.Capacity = []int{8, 12, 16}[rng.IntN(3)]
		}
		h.CPU = 0.05 + 0.45*rng.Float64()
		w.Hosts = append(w.Hosts, h)
	}
	return w
}

func pickRegion(rng *rand.Rand) int {
	x := rng.Float64()
	for i, r := range Regions {
		if x -= r.Share; x < 0 {
			return i
		}
	}
	return len(Regions) - 1
}

// place puts a host at a random point of region r. Its address is in one
// of the region's ISPs (or, for a stray, another region's), the third
// byte the cell of a 16x16 grid over the disc it sits in: hosts sharing
// a /24 are within about 1 ms of each other.
func (w *World) place(r int, rng *rand.Rand) Host {
	a := 2 * math.Pi * rng.Float64()
	d := regionRadius * math.Sqrt(rng.Float64())
	h := Host{Region: r, X: d * math.Cos(a), Y: d * math.Sin(a), Access: 0.5 + 2.5*rng.Float64()*rng.Float64()}
	ar := r
	if rng.Float64() < strayShare {
		ar = rng.IntN(len(Regions))
	}
	p := w.prefixes[ar][rng.IntN(ispsPerRegion)].Addr().As4()
	cell := func(v float64) int { return min(15, int((v+regionRadius)/(2*regionRadius)*16)) }
	p[2] = byte(cell(h.X)*16 + cell(h.Y))
	p[3] = byte(1 + rng.IntN(254))
	h.Addr = netip.AddrFrom4(p)
	return h
}

// RTT is the round-trip time in ms between hosts i and j: their access
// delays plus, in one region, their distance, across regions the
// regions' RTT plus each one's distance from its region's centre.
func (w *World) RTT(i, j int) float64 {
	if i == j {
		return 0
	}
	return HostRTT(&w.Hosts[i], &w.Hosts[j])
}

// HostRTT is the RTT in ms between two hosts, of one world or two.
func HostRTT(a, b *Host) float64 {
	if a.Region == b.Region {
		return a.Access + b.Access + math.Hypot(a.X-b.X, a.Y-b.Y)
	}
	return a.Access + b.Access + regionRTT[a.Region][b.Region] + (math.Hypot(a.X, a.Y)+math.Hypot(b.X, b.Y))/2
}
