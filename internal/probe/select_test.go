package probe

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ocm-overlay/ocm/internal/testutil"
	"github.com/ocm-overlay/ocm/internal/wire"
)

func ms(f float64) time.Duration { return time.Duration(f * float64(time.Millisecond)) }

func TestEvaluate(t *testing.T) {
	w := DefaultWeights()
	relay := wire.Candidate{Node: "r1", RTSP: "10.0.0.1:8554", Probe: "10.0.0.1:7072", Level: 2, Clients: 1, Capacity: 4}
	origin := wire.Candidate{Node: wire.OriginID, RTSP: "ms:554", Level: 0, Clients: 1, Capacity: 4}
	answered := func(rtt float64, in Info) Result { return Result{Via: ViaUDP, RTT: ms(rtt), Info: in} }
	ok := Info{Node: "r1", Clients: 1, Level: 2, CPU: 0.5, Willing: true, FreeCapacity: 3}
	with := func(f func(*Info)) Info { in := ok; f(&in); return in }

	tests := []struct {
		name     string
		cand     wire.Candidate
		res      Result
		w        Weights
		terms    Terms
		rejected string // "" eligible; else a prefix of the reason
	}{
		{
			name:  "relay, all terms",
			cand:  relay,
			res:   answered(10, ok),
			terms: Terms{RTT: 10, Load: 20 * 1.0 / 4, Level: 5 * 2, CPU: 30 * 0.5},
		},
		{
			// Level and CPU come from the probe; capacity from the server,
			// which decides joins (the relay's own count still includes
			// children on their way out during a rebuild).
			name:  "probe is fresher than the server, capacity is the server's",
			cand:  relay, // server says level 2, 1 client of 4
			res:   answered(1, with(func(i *Info) { i.Level, i.Clients, i.FreeCapacity, i.CPU = 3, 3, 1, 0 })),
			terms: Terms{RTT: 1, Load: 20 * 1.0 / 4, Level: 15},
		},
		{
			name:  "origin: candidate's load, level 0, no cpu",
			cand:  origin,
			res:   Result{Via: ViaRTSP, RTT: ms(2), Info: CandidateInfo(origin)},
			terms: Terms{RTT: 2, Load: 20 * 1.0 / 4},
		},
		{
			name:     "no answer",
			cand:     relay,
			res:      Result{Err: fmt.Errorf("probe x: %w within 300ms", ErrNoAnswer)},
			rejected: "no answer within 300ms",
		},
		{
			name:     "refused",
			cand:     relay,
			res:      Result{Err: fmt.Errorf("x: %w", errors.Join(errors.New("read"), syscall.ECONNREFUSED))},
			rejected: "unreachable: connection refused",
		},
		{
			name:     "not willing",
			cand:     relay,
			res:      answered(1, with(func(i *Info) { i.Willing = false })),
			terms:    Terms{RTT: 1, Load: 5, Level: 10, CPU: 15},
			rejected: "not willing",
		},
		{
			name:     "full",
			cand:     wire.Candidate{Node: "r1", Probe: "x:1", Level: 2, Clients: 4, Capacity: 4},
			res:      answered(1, with(func(i *Info) { i.Clients, i.FreeCapacity = 4, 0 })),
			terms:    Terms{RTT: 1, Load: 20, Level: 10, CPU: 15},
			rejected: "no free capacity (4 clients of 4)",
		},
		{
			name:     "no capacity at all",
			cand:     wire.Candidate{Node: "r1", Probe: "x:1", Level: 1},
			res:      answered(1, with(func(i *Info) { i.Clients, i.FreeCapacity, i.Level = 0, 0, 1 })),
			terms:    Terms{RTT: 1, Load: 20, Level: 5, CPU: 15},
			rejected: "no free capacity",
		},
		{
			name:     "cpu at the ceiling",
			cand:     relay,
			res:      answered(1, with(func(i *Info) { i.CPU = 0.9 })),
			terms:    Terms{RTT: 1, Load: 5, Level: 10, CPU: 27},
			rejected: "CPU 90% busy, max 90%",
		},
		{
			name:  "cpu just below the ceiling",
			cand:  relay,
			res:   answered(1, with(func(i *Info) { i.CPU = 0.89 })),
			terms: Terms{RTT: 1, Load: 5, Level: 10, CPU: 30 * 0.89},
		},
		{
			name:     "too deep",
			cand:     relay,
			res:      answered(1, with(func(i *Info) { i.Level = 16 })),
			terms:    Terms{RTT: 1, Load: 5, Level: 80, CPU: 15},
			rejected: "level 16, max 16",
		},
		{
			name:  "one above the maximum depth",
			cand:  relay,
			res:   answered(1, with(func(i *Info) { i.Level = 15 })),
			terms: Terms{RTT: 1, Load: 5, Level: 75, CPU: 15},
		},
		{
			name:  "level unknown to the relay: the server's",
			cand:  relay,
			res:   answered(1, with(func(i *Info) { i.Level = -1 })),
			terms: Terms{RTT: 1, Load: 5, Level: 10, CPU: 15},
		},
		{
			name:     "level unknown to both",
			cand:     wire.Candidate{Node: "r1", Probe: "x:1"},
			res:      answered(1, with(func(i *Info) { i.Level = -1 })),
			terms:    Terms{RTT: 1, Load: 5, CPU: 15},
			rejected: "does not relay the stream",
		},
		{
			// A relay claiming the origin's level, room for a thousand
			// children and an idle CPU: the server's level and load stand.
			name:  "shallower level and more room than the server says: the server's",
			cand:  relay, // level 2, 1 client of 4
			res:   answered(1, with(func(i *Info) { i.Level, i.Clients, i.FreeCapacity, i.CPU = 0, 0, 1000, 0 })),
			terms: Terms{RTT: 1, Load: 20 * 1.0 / 4, Level: 10},
		},
		{
			name:     "answered by another node",
			cand:     relay,
			res:      answered(1, with(func(i *Info) { i.Node = "r2" })),
			rejected: `probe answered by node "r2", not "r1"`,
		},
		{
			name:  "custom weights",
			cand:  relay,
			res:   answered(4, ok),
			w:     Weights{Load: 1, Level: 2, CPU: 3, MaxCPU: 2, MaxLevel: 3},
			terms: Terms{RTT: 4, Load: 0.25, Level: 4, CPU: 1.5},
		},
		{
			name:     "custom max level",
			cand:     relay,
			res:      answered(4, ok),
			w:        Weights{MaxLevel: 2},
			terms:    Terms{RTT: 4},
			rejected: "level 2, max 2",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ww := w
			if tt.w != (Weights{}) {
				ww = tt.w
			}
			c := Evaluate(tt.cand, tt.res, ww)
			if !strings.HasPrefix(c.Rejected, tt.rejected) || (tt.rejected == "") != c.Eligible() {
				t.Errorf("rejected = %q, want %q", c.Rejected, tt.rejected)
			}
			if !near(c.Terms, tt.terms) {
				t.Errorf("terms = %+v, want %+v", c.Terms, tt.terms)
			}
			if math.Abs(c.Score-c.Terms.Sum()) > 1e-9 {
				t.Errorf("score %v != sum of terms %v", c.Score, c.Terms.Sum())
			}
		})
	}
}

func near(a, b Terms) bool {
	const eps = 1e-9
	return math.Abs(a.RTT-b.RTT) < eps && math.Abs(a.Load-b.Load) < eps &&
		math.Abs(a.Level-b.Level) < eps && math.Abs(a.CPU-b.CPU) < eps
}

func TestRank(t *testing.T) {
	mk := func(node string, score float64, level int, rejected string) Choice {
		return Choice{Candidate: wire.Candidate{Node: node}, Score: score, Level: level, Rejected: rejected}
	}
	cs := []Choice{
		mk("dead1", 0, 0, "no answer"),
		mk("b", 12, 2, ""),
		mk("a", 12, 2, ""),
		mk("dead2", 0, 0, "not willing"),
		mk("shallow", 12, 1, ""),
		mk("best", 3, 5, ""),
	}
	Rank(cs)
	var got []string
	for _, c := range cs {
		got = append(got, c.Candidate.Node)
	}
	if want := "best shallow a b dead1 dead2"; strings.Join(got, " ") != want {
		t.Errorf("order = %v, want %s", got, want)
	}
}

func TestSelect(t *testing.T) {
	near := startResponder(t, fixedInfo(Info{Node: "near", Clients: 0, Level: 1, Cores: 4, CPU: 0.1, Willing: true, FreeCapacity: 4}, stream))
	busy := startResponder(t, fixedInfo(Info{Node: "busy", Clients: 1, Level: 1, CPU: 0.95, Willing: true, FreeCapacity: 3}, stream))
	deep := startResponder(t, fixedInfo(Info{Node: "deep", Clients: 3, Level: 4, CPU: 0.2, Willing: true, FreeCapacity: 1}, stream))
	passive := startResponder(t, fixedInfo(Info{Node: "passive", Level: 1}, stream))
	ms := startRTSP(t, "RTSP/1.0 404 Not Found\r\nCSeq: 1\r\n\r\n")
	cands := []wire.Candidate{
		{Node: wire.OriginID, RTSP: ms.addr, Level: 0, Clients: 4, Capacity: 4}, // full
		{Node: "dead", RTSP: "127.0.0.1:1", Probe: testutil.SilentUDP(t), Level: 1, Clients: 0, Capacity: 4},
		{Node: "deep", RTSP: "127.0.0.1:2", Probe: deep.Addr(), Level: 2, Capacity: 4},
		{Node: "busy", RTSP: "127.0.0.1:3", Probe: busy.Addr(), Level: 1, Capacity: 4},
		{Node: "near", RTSP: "127.0.0.1:4", Probe: near.Addr(), Level: 1, Capacity: 4},
		{Node: "passive", RTSP: "127.0.0.1:5", Probe: passive.Addr(), Level: 1, Capacity: 4},
	}
	// A heavy level weight keeps the order independent of loopback RTTs.
	w := DefaultWeights()
	w.Level = 1000
	got := Select(context.Background(), cands, stream, w, "").Choices
	if len(got) != len(cands) {
		t.Fatalf("%d choices for %d candidates", len(got), len(cands))
	}
	want := []struct{ node, rejected string }{
		{"near", ""}, // 1000 + 0.1*30 + rtt
		{"deep", ""}, // 3/4*20 + 4000 + 0.2*30 + rtt
		{wire.OriginID, "no free capacity (4 clients of 4)"},
		{"dead", "no answer within 300ms"},
		{"busy", "CPU 95% busy, max 90%"},
		{"passive", "not willing"},
	}
	for i, w := range want {
		c := got[i]
		if c.Candidate.Node != w.node || c.Rejected != w.rejected {
			t.Errorf("choice %d = %s %q, want %s %q", i, c.Candidate.Node, c.Rejected, w.node, w.rejected)
		}
	}
	if got[0].Level != 1 || got[0].Result.Via != ViaUDP || got[0].Result.Info.Cores != 4 {
		t.Errorf("winner = %+v", got[0])
	}
	if got[1].Level != 4 {
		t.Errorf("deep's level = %d, want the probe's 4 over the server's 2", got[1].Level)
	}
	if o := got[2]; o.Result.Via != ViaRTSP || o.Result.Err != nil || o.Result.RTT <= 0 || o.Level != 0 {
		t.Errorf("origin = %+v", o)
	}
	if reqs := ms.requests(); len(reqs) != 1 || !strings.HasPrefix(reqs[0], "OPTIONS ") {
		t.Errorf("origin got %q", reqs)
	}

	// With room at the origin, the origin (level 0) wins.
	cands[0].Clients = 1
	got = Select(context.Background(), cands, stream, w, "").Choices
	if got[0].Candidate.Node != wire.OriginID || !got[0].Eligible() {
		t.Errorf("winner = %s %q, want the origin", got[0].Candidate.Node, got[0].Rejected)
	}
}

// TestSelectLiar: a relay that says it sits at level 0 with a thousand
// free slots is ranked at the level and load the server gave it, so an
// honest relay closer to the origin wins.
func TestSelectLiar(t *testing.T) {
	liar := startResponder(t, fixedInfo(Info{Node: "liar", Level: 0, Cores: 64, CPU: 0, Willing: true, FreeCapacity: 1000}, stream))
	honest := startResponder(t, fixedInfo(Info{Node: "honest", Clients: 1, Level: 1, Cores: 4, CPU: 0.3, Willing: true, FreeCapacity: 3}, stream))
	cands := []wire.Candidate{ // as the server sends them: by level
		{Node: "honest", RTSP: "127.0.0.1:2", Probe: honest.Addr(), Level: 1, Clients: 1, Capacity: 4},
		{Node: "liar", RTSP: "127.0.0.1:3", Probe: liar.Addr(), Level: 3, Clients: 2, Capacity: 4},
	}
	w := DefaultWeights()
	w.Timeout = 5 * time.Second // a slow answer on a loaded machine must not reject anyone
	got := Select(context.Background(), cands, stream, w, "").Choices
	for _, c := range got {
		t.Logf("%s: level %d, score %.2f, terms %+v, overridden %q, rejected %q",
			c.Candidate.Node, c.Level, c.Score, c.Terms, c.Overridden, c.Rejected)
	}
	if got[0].Candidate.Node != "honest" || !got[0].Eligible() {
		t.Fatalf("winner = %s %q, want honest", got[0].Candidate.Node, got[0].Rejected)
	}
	l := got[1]
	if l.Level != 3 || l.Clients != 2 || l.FreeCapacity != 2 {
		t.Errorf("liar scored at level %d, %d clients, %d free; want the server's 3, 2, 2", l.Level, l.Clients, l.FreeCapacity)
	}
	if !strings.Contains(l.Overridden, "level 0 (server: 3)") || !strings.Contains(l.Overridden, "free capacity 1000 (server: 2)") {
		t.Errorf("liar's overridden claims = %q", l.Overridden)
	}
	if got[0].Overridden != "" {
		t.Errorf("honest's overridden claims = %q, want none", got[0].Overridden)
	}
}

func TestSelectOriginDown(t *testing.T) {
	cands := []wire.Candidate{{Node: wire.OriginID, RTSP: testutil.ClosedTCP(t), Capacity: 4}}
	got := Select(context.Background(), cands, stream, Weights{Timeout: 5 * time.Second}, "").Choices
	if len(got) != 1 || got[0].Eligible() {
		t.Fatalf("choices = %+v", got)
	}
	if r := got[0].Rejected; r != "unreachable: connection refused" {
		t.Errorf("rejected = %q", r)
	}
}

func TestSelectNone(t *testing.T) {
	if got := Select(context.Background(), nil, stream, DefaultWeights(), "").Choices; len(got) != 0 {
		t.Errorf("choices = %+v", got)
	}
}

func TestLastResort(t *testing.T) {
	busy := func(score float64) Choice { return Choice{Score: score, Rejected: "CPU 95% busy", OverCPU: true} }
	full := Choice{Score: 1, Rejected: "no free capacity"}
	if got := LastResort([]Choice{{Score: 9}, busy(1)}); got != nil {
		t.Fatalf("with an eligible choice: %v, want nil", got)
	}
	got := LastResort([]Choice{full, busy(7), busy(3)})
	if len(got) != 2 || got[0].Score != 3 || got[1].Score != 7 {
		t.Fatalf("got %+v, want the two busy choices, best first", got)
	}
	if got := LastResort([]Choice{full}); len(got) != 0 {
		t.Fatalf("full candidates are never a last resort: %v", got)
	}
}

// TestDecide: the order a relay tries its candidates in, which is also
// what ocm-probe --explain prints: the old parent first whenever it is
// eligible, and when nobody is eligible the candidates over the CPU
// ceiling only, best first, as a last resort.
func TestDecide(t *testing.T) {
	mk := func(node string, score float64, rejected string) Choice {
		return Choice{Candidate: wire.Candidate{Node: node}, Score: score, Rejected: rejected}
	}
	hot := func(node string, score float64) Choice {
		c := mk(node, score, "CPU 95% busy, max 90%")
		c.OverCPU = true
		return c
	}
	cases := []struct {
		name       string
		in         []Choice
		prefer     string
		want       string // node:verdict in order; verdict ok, waived, preferred or rejected
		lastResort bool
	}{
		{"by score", []Choice{mk("b", 9, ""), mk("a", 3, ""), hot("h", 1)}, "",
			"a:ok b:ok h:rejected", false},
		{"old parent first", []Choice{mk("b", 9, ""), mk("a", 3, ""), mk("old", 30, "")}, "old",
			"old:preferred a:ok b:ok", false},
		{"old parent not eligible", []Choice{mk("a", 3, ""), mk("old", 1, "not willing")}, "old",
			"a:ok old:rejected", false},
		{"every candidate over the CPU ceiling", []Choice{mk("full", 1, "no free capacity"), hot("h7", 7), hot("h3", 3)}, "",
			"h3:waived h7:waived full:rejected", true},
		{"nobody", []Choice{mk("full", 1, "no free capacity"), mk("gone", 0, "no answer")}, "",
			"full:rejected gone:rejected", false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			sel := Decide(tc.in, tc.prefer)
			var got []string
			for _, c := range sel.Choices {
				v := "ok"
				switch {
				case !c.Eligible():
					v = "rejected"
				case c.Waived != "":
					v = "waived"
				case c.Preferred:
					v = "preferred"
				}
				got = append(got, c.Candidate.Node+":"+v)
			}
			if strings.Join(got, " ") != tc.want || sel.LastResort != tc.lastResort {
				t.Errorf("Decide = %v (last resort %v), want %s (last resort %v)", got, sel.LastResort, tc.want, tc.lastResort)
			}
			w, ok := sel.Winner()
			if ok != (len(sel.Choices) > 0 && sel.Choices[0].Eligible()) || (ok && w.Candidate.Node != sel.Choices[0].Candidate.Node) {
				t.Errorf("winner = %s %v", w.Candidate.Node, ok)
			}
		})
	}
	if c := Decide([]Choice{hot("h", 1)}, "").Choices[0]; c.Waived != "CPU 95% busy, max 90%" || !c.OverCPU {
		t.Errorf("last resort choice = %+v: want its rejection kept in Waived", c)
	}
}

// The last resort over the CPU ceiling waives only the CPU: a candidate
// that is also too deep stays rejected for its level. On a busy machine
// every candidate was over the ceiling and the demo's relay joined one at
// its --max-level, one level too deep.
func TestLastResortKeepsMaxLevel(t *testing.T) {
	w := Weights{MaxLevel: 2, MaxCPU: 0.9}
	busy := func(node string, level int) Choice {
		return Evaluate(wire.Candidate{Node: node, Level: level, Clients: 1, Capacity: 2},
			Result{Addr: node + ":1", RTT: time.Millisecond,
				Info: Info{Node: node, Level: level, CPU: 0.95, Clients: 1, FreeCapacity: 1, Willing: true}}, w)
	}
	deep, shallow := busy("deep", 2), busy("shallow", 1)
	if deep.OverCPU || !strings.Contains(deep.Rejected, "level 2") {
		t.Errorf("too deep and too busy: rejected %q, over CPU %v; want the level as the reason", deep.Rejected, deep.OverCPU)
	}
	// deep scores better (listed first), yet must not be taken.
	sel := Decide([]Choice{deep, shallow}, "")
	if w, ok := sel.Winner(); !ok || w.Candidate.Node != "shallow" || !sel.LastResort {
		t.Errorf("winner %q (ok %v, last resort %v), want shallow as the last resort", w.Candidate.Node, ok, sel.LastResort)
	}
}
