package tree

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"
	"testing"
)

// A requester whose network already has relays in the tree is offered
// the nearest of them (longest shared address prefix) beside the k best,
// even when they rank below the k best; without an address hint, or with
// SetNearby(0), it is offered the k best only. The near ones must be
// offerable (free, attached, not its descendants), and the cost of a
// near candidate is one scan of the requester's /16.
func TestCandidatesNearby(t *testing.T) {
	hello := func(f *Forest, id, addr string, capacity int) {
		t.Helper()
		info := NodeInfo{ID: id, RTSP: rtspOf(id), Willing: capacity > 0, Capacity: capacity}
		if addr != "" {
			info.Addr = netip.MustParseAddr(addr)
		}
		if _, err := f.Hello(info, nil, Repair, t0); err != nil {
			t.Fatal(err)
		}
	}
	join := func(f *Forest, n, p string) {
		t.Helper()
		if _, err := f.Join(S, n, p); err != nil {
			t.Fatalf("join %s<%s: %v", n, p, err)
		}
	}
	build := func(nearby int) *Forest {
		f := New(1)
		f.SetNearby(nearby)
		// Region A (198.51.0.0/16) fills the top levels; region B
		// (203.0.0.0/16) has relays deeper down, and one full.
		hello(f, "a1", "198.51.1.1", 4)
		for _, id := range []string{"a2", "a3", "a4", "a5"} {
			hello(f, id, "198.51.1.2", 4)
		}
		hello(f, "b1", "203.0.113.5", 2)
		hello(f, "b2", "203.0.7.9", 2)
		hello(f, "b3", "203.0.113.77", 1)
		hello(f, "bfull", "203.0.113.6", 1)
		hello(f, "bkid", "203.0.113.8", 0) // passive: never a parent
		hello(f, "req", "203.0.113.9", 2)
		hello(f, "lab", "127.0.0.1", 2)
		join(f, "a1", Origin)
		for _, id := range []string{"a2", "a3", "a4", "a5"} {
			join(f, id, "a1")
		}
		join(f, "b1", "a2")
		join(f, "b2", "a3")
		join(f, "bfull", "a4")
		join(f, "bkid", "bfull")
		join(f, "b3", "b2")
		mustValid(t, f)
		return f
	}
	ids := func(cs []Candidate) []string {
		var out []string
		for _, c := range cs {
			out = append(out, c.ID)
		}
		return out
	}

	f := build(2)
	got := ids(f.Candidates(S, "req", nil, 4))
	// The 4 best are a5, a2..a4 (level 2, least loaded first); then the
	// two nearest of B: b1 and b3 share /24 and more with req (b1 .5 vs
	// .9: 28 bits, b3 .77: 25 bits), b2 only /16; bfull has no free slot,
	// bkid relays to no one.
	want := []string{"a5", "a2", "a3", "a4", "b1", "b3"}
	if !slices.Equal(got, want) {
		t.Errorf("nearby 2: candidates %v, want %v", got, want)
	}
	// Excluded and descendants are never near candidates.
	if got := ids(f.Candidates(S, "bfull", []string{"b1"}, 4)); slices.Contains(got, "b1") || slices.Contains(got, "bkid") {
		t.Errorf("bfull excluding b1: candidates %v", got)
	}
	// No hint, no near candidates: a lab on loopback sees the k best.
	if got := ids(f.Candidates(S, "lab", nil, 4)); !slices.Equal(got, want[:4]) {
		t.Errorf("loopback requester: candidates %v, want %v", got, want[:4])
	}
	// Removing a near member takes it out of the index.
	if _, err := f.RemoveNode("b1", Repair, t0); err != nil {
		t.Fatal(err)
	}
	if got := ids(f.Candidates(S, "req", nil, 4)); !slices.Equal(got, []string{"a2", "a5", "a3", "a4", "b3", "b2"}) {
		t.Errorf("after b1 failed: candidates %v", got)
	}
	mustValid(t, f)

	if got := ids(build(0).Candidates(S, "req", nil, 4)); !slices.Equal(got, want[:4]) {
		t.Errorf("nearby 0: candidates %v, want %v", got, want[:4])
	}
}

// The worst case of the near scan: 10,000 relays of one /16, every one a
// near candidate for the requester (compare BenchmarkCandidates10k).
func BenchmarkCandidatesNearby10k(b *testing.B) {
	rng := rand.New(rand.NewPCG(1, 1))
	f := New(4)
	f.SetNearby(3)
	addr := func() netip.Addr { return netip.AddrFrom4([4]byte{198, 51, byte(rng.IntN(256)), byte(rng.IntN(256))}) }
	for i := range 10000 {
		id := fmt.Sprintf("r%05d", i)
		if _, err := f.Hello(NodeInfo{ID: id, RTSP: rtspOf(id), Willing: true, Capacity: 1 + rng.IntN(4), Addr: addr()}, nil, Repair, t0); err != nil {
			b.Fatal(err)
		}
		cs := f.Candidates(S, id, nil, 5)
		if _, err := f.Join(S, id, cs[rng.IntN(len(cs))].ID); err != nil {
			b.Fatal(err)
		}
	}
	if _, err := f.Hello(NodeInfo{ID: "x", RTSP: rtspOf("x"), Willing: true, Capacity: 4, Addr: addr()}, nil, Repair, t0); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for range b.N {
		if len(f.Candidates(S, "x", nil, 5)) < 8 {
			b.Fatal("no near candidates")
		}
	}
}
