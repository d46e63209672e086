package main

import (
	"testing"
	"time"

	"github.com/ocm-overlay/ocm/internal/lab"
)

func TestSeqAfterWraps(t *testing.T) {
	for _, tc := range []struct {
		a, b uint16
		want bool
	}{{2, 1, true}, {1, 2, false}, {1, 1, false}, {0, 65535, true}, {65535, 0, false}, {100, 65500, true}} {
		if got := seqAfter(tc.a, tc.b); got != tc.want {
			t.Errorf("seqAfter(%d, %d) = %v, want %v", tc.a, tc.b, got, tc.want)
		}
	}
}

// A player below the dead relay: frames every 40 ms, the kill between
// two frames, one frame lost, then the stream again from a new parent.
func TestAnalyseRecovery(t *testing.T) {
	t0 := time.Unix(1000, 0)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	var arr []lab.Arrival
	seq := uint16(65530)                  // wraps inside the window
	for _, ms := range []int{0, 40, 80} { // before the kill: 3 packets per frame
		for range 3 {
			arr = append(arr, lab.Arrival{At: at(ms), Seq: seq})
			seq++
		}
	}
	killSeq := seq - 1
	kill := at(95)
	seq += 3 // the frame at 120 ms is lost
	for _, ms := range []int{163, 200} {
		for range 3 {
			arr = append(arr, lab.Arrival{At: at(ms), Seq: seq})
			seq++
		}
	}
	r := analyseRecovery(arr, kill, killSeq, at(-1), at(300))
	if !r.ok || r.recovery != 68*time.Millisecond {
		t.Errorf("recovery %v (ok %v), want 68ms", r.recovery, r.ok)
	}
	if r.gap != 83*time.Millisecond {
		t.Errorf("gap %v, want 83ms", r.gap)
	}
	if r.lost != 3 || r.dups != 0 {
		t.Errorf("lost %d dups %d, want 3 and 0", r.lost, r.dups)
	}

	// Packets of the frame before the kill that arrive after it (still in
	// flight through the dead relay) are not a recovery.
	late := append([]lab.Arrival{}, arr[:9]...)
	late[8].At = at(97)
	r = analyseRecovery(late, kill, killSeq, at(-1), at(300))
	if r.ok {
		t.Errorf("a packet sent before the kill counted as recovery at %v", r.recovery)
	}
	if r.gap != 203*time.Millisecond {
		t.Errorf("gap without recovery %v, want until the end (203ms)", r.gap)
	}
}

func TestOverlayPolicies(t *testing.T) {
	t.Setenv("OCM_BENCH_POLICIES", "")
	if p, err := ovlPolicies(); err != nil || len(p) != 1 || p[0] != "repair" {
		t.Errorf("default %v %v", p, err)
	}
	t.Setenv("OCM_BENCH_POLICIES", "repair, drop,gradual")
	if p, err := ovlPolicies(); err != nil || len(p) != 3 {
		t.Errorf("list %v %v", p, err)
	}
	t.Setenv("OCM_BENCH_POLICIES", "repiar")
	if _, err := ovlPolicies(); err == nil {
		t.Error("a misspelt policy was accepted")
	}
}
