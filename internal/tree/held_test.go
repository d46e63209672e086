package tree

import (
	"fmt"
	"testing"
)

// Candidates while a gradual rebuild keeps slots for a large subtree:
// counting a candidate's held slots must not walk every kept slot.
func BenchmarkCandidatesDuringGradual10k(b *testing.B) {
	f := bigForest(b, 10000, 1)
	// The level-1 relay with the largest subtree fails under gradual.
	var big string
	size := func(id string) int {
		n := 0
		for _, l := range f.Subtree(S, id) {
			n += len(l)
		}
		return n
	}
	for i := range 10000 {
		c := fmt.Sprintf("r%05d", i)
		if l, _ := f.Level(S, c); l == 1 && (big == "" || size(c) > size(big)) {
			big = c
		}
	}
	if _, err := f.RemoveNode(big, Gradual, t0); err != nil {
		b.Fatal(err)
	}
	if len(f.expected) < 100 {
		b.Fatalf("%d slots kept", len(f.expected))
	}
	if _, err := f.Hello(NodeInfo{ID: "x", RTSP: rtspOf("x"), Willing: true, Capacity: 4}, nil, Repair, t0); err != nil {
		b.Fatal(err)
	}
	b.Logf("%d slots kept", len(f.expected))
	b.ResetTimer()
	for range b.N {
		if len(f.Candidates(S, "x", nil, 5)) == 0 {
			b.Fatal("no candidates")
		}
	}
}
