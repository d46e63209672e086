package systest

import (
	"testing"

	"github.com/ocm-overlay/ocm/internal/event"
	"github.com/ocm-overlay/ocm/internal/netnstest"
)

// TestMulticastAV: an audio and video stream relayed through an enhanced
// URL and served by RTSP multicast. On a LAN of three network namespaces,
// host a runs the origin (ffmpeg publishing H264 + AAC into a mediator on
// a's loopback) and a relay mediator with multicast on a's LAN address;
// ffprobe on hosts b and c opens rtsp://A:PORT/h264-aac?127.0.0.1:PORT
// asking for multicast, and each decodes both tracks. Every track's SETUP
// names the one path and query (the absolute control URLs of the DESCRIBE
// answer), so both tracks get their groups.
//
// GStreamer is not among the players here: its rtspsrc with
// protocols=udp-mcast plays nothing from a mediator's multicast, on a
// plain path and video only as well (README, "Streams and players
// tested"), which is another fault than the one this test guards.
func TestMulticastAV(t *testing.T) {
	systemTest(t)
	netnstest.Need(t)
	s := interopStreams()[0] // h264-aac
	require(t, append(append([]string{"ffmpeg"}, s.needs...), playerNeeds("ffprobe", s.tracks)...)...)
	l := netnstest.NewLAN(t, 3)
	a, b, c := l.Hosts[0], l.Hosts[1], l.Hosts[2]
	inA := []string{"ip", "netns", "exec", a.NS}

	origin := startMediatorVia(t, "origin", inA, "--publish")
	s.media, s.origin = s.name, origin.Addr
	start(t, "publisher", "ip", joinArgs(inA[1:], []string{"ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "warning"},
		s.publish, []string{"-f", "rtsp", "-rtsp_transport", "tcp", s.originURL()})...)
	waitEvent(t, origin, "the publisher announced", 0, func(e event.Publisher) bool {
		return e.State == "announced"
	})
	relay := startMediatorVia(t, "relay", inA, "--listen", a.IP.String()+":0",
		"--rtp", a.IP.String()+":8000", "--rtcp", a.IP.String()+":8001",
		"--multicast-range", "239.255.42.0/24", "--multicast-rtp", "8002", "--allow-origin", "loopback")
	url := enhanced(relay.Addr, s.media, s.origin)

	for name, h := range map[string]netnstest.Host{"b": b, "c": c} {
		t.Run("ffprobe-on-"+name, func(t *testing.T) {
			t.Parallel()
			probeTracksIn(t, h.NS, url, "udp_multicast", s.tracks)
		})
	}
	t.Cleanup(func() {
		if !t.Failed() {
			st := eventsOf[event.StreamStats](relay)
			t.Logf("relay stats: %+v %+v", st[len(st)-1], st[len(st)-1].RelayCounters)
		}
	})
}
