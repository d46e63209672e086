package systest

import (
	"bufio"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ocm-overlay/ocm/internal/event"
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
		"-re", "-i", mp4, "-c", "copy", "-f", "rtsp", "rtsp://"+origin.Addr+"/live")
	waitEvent(t, origin, "the publisher announced on /live", 0, func(e event.Publisher) bool {
		return e.Path == "/live" && e.State == "announced"
	})

	ffprobe(t, enhanced(relay.Addr, "live", origin.Addr), "tcp").check(t, "ffprobe through the relay", 320, 240)
	waitEvent(t, relay, "an upstream playing from the origin", 0, upstreamEvent("playing", "rtsp://"+origin.Addr+"/live"))
}

// TestAnnounceWithoutRecord: a client that ANNOUNCEs a path and never
// RECORDs, while it keeps its connection busy, holds the path only for
// --record-timeout (default 5s); then ffmpeg publishes there and a player
// reads what it publishes.
func TestAnnounceWithoutRecord(t *testing.T) {
	systemTest(t)
	require(t, "ffmpeg", "libx264", "ffprobe")
	t.Parallel()
	origin := startMediator(t, "origin", "--publish")
	url := "rtsp://" + origin.Addr + "/live"
	holdPath(t, origin.Addr, url)
	held := time.Now()

	announced := func() int {
		n := 0
		for _, e := range eventsOf[event.Publisher](origin) {
			if e.Path == "/live" && e.State == "announced" {
				n++
			}
		}
		return n
	}
	for attempt := 1; announced() < 2; attempt++ {
		if time.Since(held) > patience {
			t.Fatalf("ffmpeg is still refused /live %s after an ANNOUNCE without RECORD (%d attempts)", patience, attempt-1)
		}
		pub := start(t, fmt.Sprintf("publisher#%d", attempt), "ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "warning",
			"-re", "-f", "lavfi", "-i", "testsrc=size=320x240:rate=25", "-c:v", "libx264", "-preset", "ultrafast",
			"-g", "25", "-pix_fmt", "yuv420p", "-f", "rtsp", "-rtsp_transport", "tcp", url)
		// It publishes (a second announced event), or it is refused and exits.
		for announced() < 2 && !pub.Exited() {
			time.Sleep(50 * time.Millisecond)
		}
		if announced() < 2 {
			t.Logf("attempt %d refused after %s: %s", attempt, time.Since(held).Round(time.Millisecond),
				tail(pub.Stderr(), 3))
			time.Sleep(500 * time.Millisecond)
		}
	}
	t.Logf("ffmpeg got /live %s after the ANNOUNCE that never recorded", time.Since(held).Round(time.Millisecond))
	ffprobe(t, url, "tcp").check(t, "ffprobe of what ffmpeg publishes", 320, 240)
}

// holdPath ANNOUNCEs url on addr and never RECORDs; it keeps the
// connection busy with OPTIONS until the test ends, so only a deadline on
// RECORD can free the path.
func holdPath(t *testing.T, addr, url string) {
	t.Helper()
	conn := dial(t, addr)
	sdp := "v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns=held\r\nc=IN IP4 0.0.0.0\r\nt=0 0\r\n" +
		"m=video 0 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\na=fmtp:96 packetization-mode=1\r\na=control:trackID=0\r\n"
	_ = conn.SetDeadline(time.Now().Add(patience))
	fmt.Fprintf(conn, "ANNOUNCE %s RTSP/1.0\r\nCSeq: 1\r\nContent-Type: application/sdp\r\nContent-Length: %d\r\n\r\n%s", url, len(sdp), sdp)
	br := bufio.NewReader(conn)
	status, err := br.ReadString('\n')
	if err != nil || !strings.HasPrefix(status, "RTSP/1.0 200 ") {
		t.Fatalf("ANNOUNCE %s: %q %v", url, status, err)
	}
	done := make(chan struct{})
	stop := make(chan struct{})
	go func() { // read whatever comes, so the mediator never blocks on us
		defer close(done)
		_ = conn.SetReadDeadline(time.Time{})
		_, _ = io.Copy(io.Discard, br)
	}()
	go func() {
		for cseq := 2; ; cseq++ {
			select {
			case <-stop:
				return
			case <-time.After(500 * time.Millisecond):
			}
			_ = conn.SetWriteDeadline(time.Now().Add(patience))
			if _, err := fmt.Fprintf(conn, "OPTIONS %s RTSP/1.0\r\nCSeq: %d\r\n\r\n", url, cseq); err != nil {
				return
			}
		}
	}()
	t.Cleanup(func() { close(stop); conn.Close(); <-done })
}
