package systest

import "testing"

// TestStats checks the stats lines a relay prints while a player reads
// through it: origin -> A -> B, the player on B.
func TestStats(t *testing.T) {
	systemTest(t)
	t.Parallel()
	origin := startMediator(t, "origin", "--test-source", "test")
	a := startMediator(t, "A")
	b := startMediator(t, "B", "--resolver", "parent:"+a.addr)
	stream := "rtsp://" + origin.addr + "/test"
	r := startReader(t, "reader", enhanced(b.addr, "test", origin.addr))
	r.waitEvent(t, "50 packets", 0, progressAtLeast(50))

	ev, _ := b.waitEvent(t, "stats with a reader, packets in and out and a bitrate", 0, func(e event) bool {
		return e.str("event") == "stats" && e.str("stream") == stream && e.num("readers") >= 1 &&
			e.num("packets_in") > 0 && e.num("packets_out") > 0 && e.num("bitrate_bps") > 0
	})
	t.Logf("B: %v", ev)
	if up, want := ev.str("upstream"), enhanced(a.addr, "test", origin.addr); up != want {
		t.Errorf("B's stats say upstream %q, want %q", up, want)
	}
	for _, e := range b.events("stats") {
		for _, key := range []string{"stream", "readers", "upstream", "packets_in", "packets_out", "lost", "bitrate_bps"} {
			if _, ok := e[key]; !ok {
				t.Errorf("B's stats line has no %q: %v", key, e)
			}
		}
		if e.str("stream") != stream {
			t.Errorf("B's stats line is about stream %q, want %q", e.str("stream"), stream)
		}
		if _, ok := e["lost"].(float64); !ok || e.num("lost") > e.num("packets_in") {
			t.Errorf("B's stats line has lost %v for %v packets in", e["lost"], e["packets_in"])
		}
	}
	// A counts B as its reader.
	a.waitEvent(t, "stats with B as a reader", 0, func(e event) bool {
		return e.str("event") == "stats" && e.str("stream") == stream && e.num("readers") >= 1 && e.num("packets_out") > 0
	})
	stopReader(t, r)
}
