package systest

import "testing"

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
	r.WaitEvent(t, "50 packets", 0, progressAtLeast(50))

	ev, _ := b.WaitEvent(t, "stats with a reader, packets in and out and a bitrate", 0, func(e event) bool {
		return e.Str("event") == "stats" && e.Str("stream") == stream && e.Num("readers") >= 1 &&
			e.Num("packets_in") > 0 && e.Num("packets_out") > 0 && e.Num("bitrate_bps") > 0
	})
	t.Logf("B: %v", ev)
	if up, want := ev.Str("upstream"), enhanced(a.Addr, "test", origin.Addr); up != want {
		t.Errorf("B's stats say upstream %q, want %q", up, want)
	}
	for _, e := range b.Events("stats") {
		for _, key := range []string{"stream", "readers", "upstream", "packets_in", "packets_out", "lost", "bitrate_bps"} {
			if !e.Has(key) {
				t.Errorf("B's stats line has no %q: %v", key, e)
			}
		}
		if e.Str("stream") != stream {
			t.Errorf("B's stats line is about stream %q, want %q", e.Str("stream"), stream)
		}
		if _, ok := e.Field("lost").(float64); !ok || e.Num("lost") > e.Num("packets_in") {
			t.Errorf("B's stats line has lost %v for %v packets in", e.Field("lost"), e.Field("packets_in"))
		}
	}
	// A counts B as its reader.
	a.WaitEvent(t, "stats with B as a reader", 0, func(e event) bool {
		return e.Str("event") == "stats" && e.Str("stream") == stream && e.Num("readers") >= 1 && e.Num("packets_out") > 0
	})
	stopReader(t, r)
}
