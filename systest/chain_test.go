package systest

import "testing"

// TestChain plays the built-in test stream with unmodified players through
// two relays: origin -> A (direct) -> B (parent A), the player opening the
// enhanced URL rtsp://B/test?ORIGIN.
func TestChain(t *testing.T) {
	systemTest(t)
	t.Parallel()
	origin := startMediator(t, "origin", "--test-source", "test")
	a := startMediator(t, "A")
	b := startMediatorUDP(t, "B", "--resolver", "parent:"+a.Addr)
	url := enhanced(b.Addr, "test", origin.Addr)

	playAll(t, url, 640, 360, goReader, ffprobeTCP, ffmpegUDP, gstTCP, gstUDP)

	// The video went through A: B pulled from A with the enhanced URL, A
	// from the origin itself.
	waitEvent(t, b, "an upstream playing from A", 0, upstreamEvent("playing", enhanced(a.Addr, "test", origin.Addr)))
	waitEvent(t, a, "an upstream playing from the origin", 0, upstreamEvent("playing", "rtsp://"+origin.Addr+"/test"))
}
