package systest

import (
	"strings"
	"testing"

	"github.com/ocm-overlay/ocm/internal/event"
)

// TestLightClientAndPassive: a host running rtsp-mediator --resolver
// redirect answers players with a 302 to the relay ocm-relay picks, and
// ffprobe and GStreamer follow it; a passive host (--willing=false) is
// never offered as a parent and its mediator refuses downstream relays.
func TestLightClientAndPassive(t *testing.T) {
	systemTest(t)
	require(t, "ffprobe", "gstreamer")
	origin := startMediator(t, "origin", "--test-source", "test")
	stream := "rtsp://" + origin.Addr + "/test"
	srv := startServer(t, "server", "--origin-capacity", "1")

	a := startHost(t, "a", srv.OCM, "--capacity", "3")
	a.player = startReader(t, "a/player", enhanced(a.Med.Addr, "test", origin.Addr))
	waitEvent(t, a.player, "packets", 0, progressAtLeast(20))

	// The passive host joins under a (the origin is full) and plays.
	p := startHost(t, "p", srv.OCM, "--willing=false")
	p.player = startReader(t, "p/player", enhanced(p.Med.Addr, "test", origin.Addr))
	waitEvent(t, p.player, "packets", 0, progressAtLeast(20))

	// Another relay is never placed under the passive host.
	b := startHost(t, "b", srv.OCM, "--capacity", "2")
	b.player = startReader(t, "b/player", enhanced(b.Med.Addr, "test", origin.Addr))
	waitEvent(t, b.player, "packets", 0, progressAtLeast(20))
	tv := srv.waitTree(t, stream, []string{"a", "p", "b"})
	for _, n := range tv.Nodes {
		if n.Parent == "p" {
			t.Fatalf("%s was placed under the passive host p", n.Node)
		}
	}

	// The passive host's mediator refuses a downstream relay.
	down := startMediator(t, "through-p", "--resolver", "parent:"+p.Med.Addr)
	res := statusLine(t, down.Addr, enhanced(down.Addr, "test", origin.Addr))
	if !strings.Contains(res, "502") {
		t.Fatalf("a relay pulling through the passive host got %q, want a 502 (p answered 403)", res)
	}
	if !down.WaitStderr(func(s string) bool { return strings.Contains(s, "403") }) {
		t.Fatalf("the downstream relay's log does not show p's 403:\n%s", tail(down.Stderr(), 20))
	}

	// A light client: no relay of its own, players are redirected.
	_, control := startOCMRelay(t, "light", srv.OCM, "--willing=false")
	light := startMediator(t, "light/mediator", "--resolver", "redirect", "--control", control)
	url := enhanced(light.Addr, "test", origin.Addr)
	ffprobe(t, url, "tcp").check(t, "ffprobe via a 302", 640, 360)
	gstLaunch(t, url, "tcp", 50).check(t, "gst-launch via a 302", 640, 360)
	ev, _ := waitEvent(t, light, "a redirect event", 0, func(event.Redirect) bool { return true })
	if to := ev.To; !strings.Contains(to, "?"+origin.Addr) {
		t.Fatalf("redirected to %q, want a relay's enhanced URL", to)
	}
	t.Logf("light client redirected players to %s", ev.To)
}
