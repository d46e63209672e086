package systest

import (
	"path/filepath"
	"testing"
)

// TestPublish has ffmpeg publish a file into a mediator (the origin) and a
// player read it through a relay mediator with the enhanced URL.
func TestPublish(t *testing.T) {
	systemTest(t)
	require(t, "ffmpeg", "libx264", "ffprobe")
	t.Parallel()

	mp4 := filepath.Join(t.TempDir(), "f.mp4")
	if _, errOut, err := run(t, "ffmpeg", "-nostdin", "-v", "error", "-f", "lavfi", "-i", "testsrc=size=320x240:rate=25",
		"-t", "12", "-c:v", "libx264", "-g", "25", "-pix_fmt", "yuv420p", mp4); err != nil {
		t.Fatalf("making %s: %v\n%s", mp4, err, errOut)
	}

	origin := startMediator(t, "origin", "--publish")
	relay := startMediator(t, "relay")
	// The command line a user would type.
	start(t, "publisher", "ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "warning",
		"-re", "-i", mp4, "-c", "copy", "-f", "rtsp", "rtsp://"+origin.addr+"/live")
	origin.waitEvent(t, "the publisher announced on /live", 0, func(e event) bool {
		return e.str("event") == "publisher" && e.str("path") == "/live" && e.str("state") == "announced"
	})

	ffprobe(t, enhanced(relay.addr, "live", origin.addr), "tcp").check(t, "ffprobe through the relay", 320, 240)
	relay.waitEvent(t, "an upstream playing from the origin", 0, upstreamEvent("playing", "rtsp://"+origin.addr+"/live"))
}
