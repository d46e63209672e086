package systest

import (
	"testing"

	"github.com/ocm-overlay/ocm/internal/event"
)

// TestStats checks the stats lines a relay prints while a player reads
// through it: origin -> A -> B, the player on B.
func TestStats(t *testing.T) {
	systemTest(t)
	t.Parallel()
	origin := startMediator(t, "origin", "--test-source", "test")
	a := startMediator(t, "A")
	b := startMediator(t, "B", "--resolver", "parent:"+a.Addr)
	stream := "rtsp://" + origin.Addr + "/test"
	r := startReader(t, "reader", enhanced(b.Addr, "test", origin.Addr))
	waitEvent(t, r, "50 packets", 0, progressAtLeast(50))

	ev, _ := waitEvent(t, b, "stats with a reader, packets in and out and a bitrate", 0, func(e event.StreamStats) bool {
		return e.Stream == stream && e.Readers >= 1 && e.PacketsIn > 0 && e.PacketsOut > 0 && e.BitrateBPS > 0
	})
	t.Logf("B: %+v %+v", ev, ev.RelayCounters)
	if ev.RelayCounters == nil {
		t.Fatalf("B's stats line of a relayed stream has no relay counters: %+v", ev)
	}
	if up, want := ev.Upstream, enhanced(a.Addr, "test", origin.Addr); up != want {
		t.Errorf("B's stats say upstream %q, want %q", up, want)
	}
	// Every field is in each line by its type (Decode refuses unknown
	// ones); a relayed stream's lines carry the relay's counters and its
	// upstream.
	for _, e := range eventsOf[event.StreamStats](b) {
		if e.Kind != "relay" || e.RelayCounters == nil || e.Upstream == "" {
			t.Errorf("B's stats line has no relay counters or upstream: %+v", e)
		}
		if e.Stream != stream {
			t.Errorf("B's stats line is about stream %q, want %q", e.Stream, stream)
		}
		if e.Lost > e.PacketsIn {
			t.Errorf("B's stats line has lost %v for %v packets in", e.Lost, e.PacketsIn)
		}
	}
	// A counts B as its reader.
	waitEvent(t, a, "stats with B as a reader", 0, func(e event.StreamStats) bool {
		return e.Stream == stream && e.Readers >= 1 && e.PacketsOut > 0
	})
	stopReader(t, r)
}
