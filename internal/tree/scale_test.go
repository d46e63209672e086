package tree

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"reflect"
	"sort"
	"testing"
	"time"
)

// bigForest returns a forest of n relays of capacity 1..4 joined one by
// one under a random candidate, as relays asking in turn would.
func bigForest(tb testing.TB, n int, seed uint64) *Forest {
	tb.Helper()
	rng := rand.New(rand.NewPCG(seed, 1))
	f := New(4)
	for i := range n {
		id := fmt.Sprintf("r%05d", i)
		if _, err := f.Hello(NodeInfo{ID: id, RTSP: rtspOf(id), Willing: true, Capacity: 1 + rng.IntN(4)}, nil, Repair, t0); err != nil {
			tb.Fatal(err)
		}
		cs := f.Candidates(S, id, nil, 5)
		if len(cs) == 0 {
			tb.Fatalf("%s: no candidates", id)
		}
		if _, err := f.Join(S, id, cs[rng.IntN(len(cs))].ID); err != nil {
			tb.Fatal(err)
		}
	}
	return f
}

// topK is what Candidates(k) must answer, from the whole ranking
// (Candidates with no limit): the origin if offered, the first k relays,
// and the requester's home after them when it ranks lower.
func topK(f *Forest, req string, exclude []string, k int) []Candidate {
	var want, rel []Candidate
	for _, c := range f.Candidates(S, req, exclude, 0) {
		if c.ID == Origin {
			want = append(want, c)
		} else {
			rel = append(rel, c)
		}
	}
	home := f.home(S, req, f.streams[S].members[req])
	for i, c := range rel {
		if i < k || c.ID == home {
			want = append(want, c)
		}
	}
	return want
}

// The best k candidates (from the cache of best members, or kept while
// scanning) are the first k of the whole ranking, plus the requester's
// home after them when it ranks lower: what the full sort returned.
func TestCandidatesTopKIsTheFullRanking(t *testing.T) {
	f := bigForest(t, 600, 7)
	if err := f.Validate(); err != nil {
		t.Fatal(err)
	}
	for _, req := range []string{"r00000", "r00042", "r00333", "r00599", "newcomer"} {
		for _, k := range []int{1, 3, 5, 20} {
			got, want := f.Candidates(S, req, nil, k), topK(f, req, nil, k)
			if !reflect.DeepEqual(got, want) {
				t.Errorf("%s k=%d: got %s\nwant %s", req, k, ids(got), ids(want))
			}
		}
	}
}

// Under churn (joins, moves, failures, leaves, handovers, quarantines,
// promises, capacity and willingness changes) the candidates stay what
// the whole ranking says, and the cache of best members what a rebuild
// gives (Validate).
func TestCandidatesUnderChurn(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 3))
	f := bigForest(t, 300, 5)
	ids := func() []string {
		var out []string
		for id := range f.nodes {
			out = append(out, id)
		}
		sort.Strings(out)
		return out
	}
	joinAny := func(id string, k int) {
		if cs := f.Candidates(S, id, nil, k); len(cs) > 0 {
			_, _ = f.Join(S, id, cs[rng.IntN(len(cs))].ID)
		}
	}
	now, cached := t0, 0
	for step := range 1500 {
		all := ids()
		id := all[rng.IntN(len(all))]
		var op string
		switch r := rng.IntN(100); {
		case r < 40:
			op = "join"
			joinAny(id, 5)
		case r < 50:
			op = "remove"
			_, _ = f.RemoveNode(id, Repair, now)
			fresh := fmt.Sprintf("n%05d", step)
			_, _ = f.Hello(NodeInfo{ID: fresh, RTSP: rtspOf(fresh), Willing: true, Capacity: 1 + rng.IntN(4)}, nil, Repair, now)
		case r < 55:
			op = "leave"
			_, _ = f.Leave(S, id, Repair, now)
		case r < 60:
			op = "handover"
			_, _ = f.Handover(S, id)
			if err := f.Validate(); err != nil {
				t.Fatalf("step %d (handover %s): %v", step, id, err)
			}
			checkTopK(t, f, all[rng.IntN(len(all))], nil, step)
			// It leaves: the slow path's conditions (a leaving member,
			// reservations) end with it.
			f.EndHandover(S, id)
			_, _ = f.Leave(S, id, Repair, now)
		case r < 65:
			op = "move" // anywhere it may go, not only among the best
			joinAny(id, 0)
		case r < 70:
			op = "quarantine"
			reason := ""
			if rng.IntN(2) == 0 {
				reason = "test"
			}
			_ = f.Quarantine(id, reason)
		case r < 80:
			op = "promise"
			if cs := f.Candidates(S, id, nil, 5); len(cs) > 0 {
				f.Promise(S, id, cs[0].ID, now.Add(time.Second))
			}
		case r < 85:
			op = "expire"
			now = now.Add(500 * time.Millisecond)
			f.ExpirePromises(now)
		case r < 92:
			op = "capacity"
			n := f.nodes[id]
			_, _ = f.Hello(NodeInfo{ID: id, RTSP: n.RTSP, Willing: n.Willing, Capacity: 1 + rng.IntN(4)}, nil, Repair, now)
		default:
			op = "willing"
			w := rng.IntN(4) > 0
			_ = f.Report(id, Report{Willing: &w}, now)
		}
		if err := f.Validate(); err != nil {
			t.Fatalf("step %d (%s %s): %v", step, op, id, err)
		}
		if f.nleaving == 0 && len(f.reserved) == 0 && len(f.expected) == 0 {
			cached++
		}
		var exclude []string
		if rng.IntN(4) == 0 {
			exclude = []string{all[rng.IntN(len(all))]}
		}
		checkTopK(t, f, all[rng.IntN(len(all))], exclude, step)
	}
	t.Logf("%d of 1500 steps could answer from the cache", cached)
	if cached < 750 {
		t.Errorf("only %d of 1500 steps exercised the cache", cached)
	}
}

func checkTopK(t *testing.T, f *Forest, req string, exclude []string, step int) {
	t.Helper()
	if got, want := f.Candidates(S, req, exclude, 5), topK(f, req, exclude, 5); !reflect.DeepEqual(got, want) {
		t.Fatalf("step %d: candidates for %s (exclude %v): got %s\nwant %s", step, req, exclude, ids(got), ids(want))
	}
}

// A promised slot counts as taken for everyone but its requester until
// the requester joins (anywhere), asks again, leaves, or the promise
// expires; Validate checks the counts after each step.
func TestPromise(t *testing.T) {
	f := forest(t, 1, "a:2 b:1 c:0 x:1 y:1 z:1", "a<origin b<a c<b") // a has one free slot, b none
	until := t0.Add(2 * time.Second)
	step := func(what string) {
		t.Helper()
		if err := f.Validate(); err != nil {
			t.Fatalf("after %s: %v", what, err)
		}
	}
	if got := ids(f.Candidates(S, "x", nil, 5)); got != "a" {
		t.Fatalf("x offered %q, want a", got)
	}
	f.Promise(S, "x", "a", until)
	step("promise to x")
	if got := ids(f.Candidates(S, "y", nil, 5)); got != "" {
		t.Fatalf("y offered %q while a's slot is promised to x, want nothing", got)
	}
	if got := ids(f.Candidates(S, "x", nil, 5)); got != "a" {
		t.Fatalf("x offered %q, want a (its own promise)", got)
	}
	if _, err := f.Join(S, "y", "a"); !errors.Is(err, ErrFull) {
		t.Fatalf("y joined a's promised slot: %v", err)
	}
	if p, ok := f.Promised(S, "x"); !ok || p != "a" {
		t.Fatalf("x's promise: %q %v", p, ok)
	}
	// Asking again replaces the promise; joining ends it.
	f.Promise(S, "x", "a", until)
	step("promise renewed")
	if _, err := f.Join(S, "x", "a"); err != nil {
		t.Fatal(err)
	}
	step("x joined")
	if _, ok := f.Promised(S, "x"); ok {
		t.Fatal("x's promise outlived its join")
	}
	// Expiry.
	if _, err := f.Leave(S, "x", Repair, t0); err != nil {
		t.Fatal(err)
	}
	f.Promise(S, "y", "a", until)
	f.ExpirePromises(until.Add(-time.Millisecond))
	if got := ids(f.Candidates(S, "z", nil, 5)); got != "" {
		t.Fatalf("z offered %q before y's promise expired", got)
	}
	f.ExpirePromises(until)
	step("expired")
	if got := ids(f.Candidates(S, "z", nil, 5)); got != "a" {
		t.Fatalf("z offered %q after y's promise expired, want a", got)
	}
	// A requester that fails takes its promise with it, and so does a
	// parent: promises under it go.
	f.Promise(S, "z", "a", until)
	f.Promise(S, "y", "b", until)
	if _, err := f.RemoveNode("z", Repair, t0); err != nil {
		t.Fatal(err)
	}
	step("requester removed")
	if _, err := f.RemoveNode("b", Repair, t0); err != nil {
		t.Fatal(err)
	}
	step("parent removed")
	if _, ok := f.Promised(S, "y"); ok {
		t.Fatal("a promise under a removed parent was kept")
	}
}

// BenchmarkCandidates10k is one get_candidates on a stream of 10,000
// relays (the server's state goroutine answers these one at a time).
func BenchmarkCandidates10k(b *testing.B) {
	f := bigForest(b, 10000, 1)
	if _, err := f.Hello(NodeInfo{ID: "x", RTSP: rtspOf("x"), Willing: true, Capacity: 4}, nil, Repair, t0); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for range b.N {
		if len(f.Candidates(S, "x", nil, 5)) == 0 {
			b.Fatal("no candidates")
		}
	}
}

// BenchmarkFlashCrowd10k is 10,000 relays arriving one after another
// (hello, candidates, join), as the server's state goroutine takes a
// flash crowd; ns/join is what each costs it.
func BenchmarkFlashCrowd10k(b *testing.B) {
	for range b.N {
		bigForest(b, 10000, 1)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*10000), "ns/join")
}
