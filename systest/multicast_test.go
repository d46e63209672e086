package systest

import (
	"fmt"
	"net/netip"
	"testing"

	"github.com/ocm-overlay/ocm/internal/event"
	"github.com/ocm-overlay/ocm/internal/netnstest"
)

// TestMediatorMulticast: on a LAN of three network namespaces, a mediator
// serves RTSP multicast; players on the two other hosts ask for it and
// share one copy, which never leaves the LAN (TTL 1).
func TestMediatorMulticast(t *testing.T) {
	systemTest(t)
	netnstest.Need(t)
	require(t, "ffprobe")
	l := netnstest.NewLAN(t, 3)
	a, b, c := l.Hosts[0], l.Hosts[1], l.Hosts[2]
	group := netip.MustParseAddrPort("239.255.42.1:8002") // the range's first group, the RTP port

	ready, _ := waitEvent(t, start(t, "mediator", "ip", "netns", "exec", a.NS, tool("rtsp-mediator"),
		// The UDP pair cannot be port 0 (RTCP must be RTP + 1); the
		// namespace is the test's own, so nothing else holds them.
		"--listen", a.IP.String()+":0", "--rtp", a.IP.String()+":8000", "--rtcp", a.IP.String()+":8001",
		"--multicast-range", "239.255.42.0/24", "--multicast-rtp", "8002", "--test-source", "test",
		"--stats-interval", "500ms"),
		"its ready line", 0, func(event.MediatorReady) bool { return true })
	// A third listener on host c counts the group's packets and their TTL.
	rc := netnstest.JoinGroup(t, c, group, 1)

	url := fmt.Sprintf("rtsp://%s/test", ready.RTSP)
	type result struct {
		d   decoded
		err error
	}
	results := make(chan result, 2)
	for _, h := range []netnstest.Host{b, c} {
		go func() {
			d, err := probeFrames(t, h.NS, url, "udp_multicast")
			results <- result{d, err}
		}()
	}
	for range 2 {
		r := <-results
		if r.err != nil {
			t.Fatal(r.err)
		}
		r.d.check(t, "ffprobe over multicast", 640, 360)
	}
	if rc.Packets.Load() == 0 {
		t.Fatalf("no packet of %s reached host c", group)
	}
	if rc.BadTTL.Load() != 0 {
		t.Fatalf("%d of %d multicast packets arrived with a TTL above 1 (the last of them %d)",
			rc.BadTTL.Load(), rc.Packets.Load(), rc.WorstTTL.Load())
	}
	t.Logf("host c saw %d packets of %s, TTL %d", rc.Packets.Load(), group, rc.TTL.Load())
}
