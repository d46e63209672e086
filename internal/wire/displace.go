package wire

// Displacement: the one rule both sides apply. A parent's slots go to the
// first relays that ask, wherever they are, so in a crowd arriving from
// everywhere the origin's few slots are taken by relays on other
// continents and the relays next to the origin reach it through them. A
// relay that relays and is much closer to a full parent than that
// parent's farthest child may take that child's slot: the child moves
// under the newcomer (make-before-break, ReasonDisplaced), whose RTT to
// the parent is small, so the child's path grows by about that RTT while
// the newcomer's shrinks by much more. Every displacement at a parent
// lowers the RTT of one of its children to at most half, so a parent's
// children cannot displace each other back and forth.

// Displacement thresholds: the newcomer's RTT to the parent must be at
// most DisplaceRatio of the farthest child's and smaller by at least
// DisplaceMinGainMs.
const (
	DisplaceRatio     = 0.5
	DisplaceMinGainMs = 10
)

// Displaces reports whether a relay at rttMs from a full parent may take
// the slot of its farthest child, at worstMs (both measured by the
// relays, 0 when unknown: then never).
func Displaces(rttMs, worstMs float64) bool {
	return rttMs > 0 && worstMs > 0 && rttMs <= DisplaceRatio*worstMs && worstMs-rttMs >= DisplaceMinGainMs
}
