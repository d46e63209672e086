package tree

import (
	"errors"
	"fmt"
	"math/rand/v2"
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

// The best k candidates (kept while scanning) are the first k of the whole
// ranked list, plus the requester's home after them when it ranks lower:
// the bounded scan returns what the full sort did.
func TestCandidatesTopKIsTheFullRanking(t *testing.T) {
	f := bigForest(t, 600, 7)
	if err := f.Validate(); err != nil {
		t.Fatal(err)
	}
	for _, req := range []string{"r00000", "r00042", "r00333", "r00599", "newcomer"} {
		for _, k := range []int{1, 3, 5, 20} {
			all := f.Candidates(S, req, nil, 0)
			got := f.Candidates(S, req, nil, k)
			var want, rel []Candidate
			for _, c := range all {
				if c.ID == Origin {
					want = append(want, c)
				} else {
					rel = append(rel, c)
				}
			}
			home, _ := f.Parent(S, req)
			for i, c := range rel {
				if i < k || c.ID == home {
					want = append(want, c)
				}
			}
			if ids(got) != ids(want) {
				t.Errorf("%s k=%d: got %s\nwant %s", req, k, ids(got), ids(want))
			}
		}
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
