package tree

import (
	"encoding/json"
	"math/rand/v2"
	"testing"
)

// BenchmarkTreeSnapshot10k is GET /api/v1/tree's work on a stream of
// 10,000 relays, each with a measured RTT to its parent: the snapshot
// the state goroutine takes, and its JSON.
func BenchmarkTreeSnapshot10k(b *testing.B) {
	f := bigForest(b, 10000, 1)
	rng := rand.New(rand.NewPCG(2, 1))
	for _, m := range f.streams[S].members {
		m.rtt = 1 + rng.Float64()*200
	}
	b.Run("snapshot", func(b *testing.B) {
		for range b.N {
			if snap, ok := f.Tree(S); !ok || len(snap.Nodes) != 10000 {
				b.Fatal("no tree")
			}
		}
	})
	b.Run("json", func(b *testing.B) {
		snap, _ := f.Tree(S)
		b.ResetTimer()
		for range b.N {
			if _, err := json.Marshal(snap); err != nil {
				b.Fatal(err)
			}
		}
	})
}
