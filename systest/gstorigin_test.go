package systest

import (
	"strings"
	"testing"
)

// TestThirdPartyOrigin relays a stream from an origin that is not ours:
// GStreamer's RTSP server (testdata/gst-rtsp-origin.py).
func TestThirdPartyOrigin(t *testing.T) {
	systemTest(t)
	require(t, "gst-rtsp-server")
	t.Parallel()

	originAddr := startGstOrigin(t)
	m := startMediator(t, "mediator")
	url := enhanced(m.Addr, "test", originAddr)

	playAll(t, url, 320, 240, goReader, ffprobeTCP, gstTCP)
	waitEvent(t, m, "an upstream playing from the origin", 0, upstreamEvent("playing", "rtsp://"+originAddr+"/test"))
}

// startGstOrigin starts GStreamer's RTSP server (testdata/gst-rtsp-origin.py)
// and returns its HOST:PORT: /test serves H264, /av H264 and Opus.
func startGstOrigin(t *testing.T) string {
	t.Helper()
	gst := start(t, "gst-rtsp-server", pythonPath, "testdata/gst-rtsp-origin.py", "0")
	line, _ := gst.WaitLine(t, "its ready line", 0, func(s string) bool { return strings.HasPrefix(s, "ready ") })
	return strings.TrimPrefix(line, "ready ")
}
