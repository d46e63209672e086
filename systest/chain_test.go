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

	t.Run("players", func(t *testing.T) {
		t.Run("go-reader", func(t *testing.T) {
			t.Parallel()
			goRead(t, url)
		})
		t.Run("ffprobe-tcp", func(t *testing.T) {
			require(t, "ffprobe")
			t.Parallel()
			ffprobe(t, url, "tcp").check(t, "ffprobe over TCP", 640, 360)
		})
		t.Run("ffmpeg-udp", func(t *testing.T) {
			require(t, "ffmpeg")
			t.Parallel()
			ffmpeg(t, url, "udp").check(t, "ffmpeg over UDP", 640, 360)
		})
		t.Run("gst-tcp", func(t *testing.T) {
			require(t, "gstreamer")
			t.Parallel()
			gstLaunch(t, url, "tcp", 75).check(t, "gst-launch over TCP", 640, 360)
		})
		t.Run("gst-udp", func(t *testing.T) {
			require(t, "gstreamer")
			t.Parallel()
			gstLaunch(t, url, "udp", 75).check(t, "gst-launch over UDP", 640, 360)
		})
	})

	// The video went through A: B pulled from A with the enhanced URL, A
	// from the origin itself.
	b.WaitEvent(t, "an upstream playing from A", 0, upstreamEvent("playing", enhanced(a.Addr, "test", origin.Addr)))
	a.WaitEvent(t, "an upstream playing from the origin", 0, upstreamEvent("playing", "rtsp://"+origin.Addr+"/test"))
}
