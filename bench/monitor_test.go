package main

import (
	"testing"

	"github.com/ocm-overlay/ocm/internal/wire"
)

// The monitor bench's tree: every parent joins before its children (a
// lower index), and nobody has more than monCapacity children.
func TestMonitorTreeShape(t *testing.T) {
	children := map[string]int{}
	index := map[string]int{}
	for i := range 1000 {
		index[relayID(i)] = i
		p := treeParent(i)
		children[p]++
		if p != wire.OriginID && index[p] >= i {
			t.Fatalf("relay %d under %s, which joins later", i, p)
		}
	}
	for p, n := range children {
		if n > monCapacity {
			t.Errorf("%s has %d children, capacity %d", p, n, monCapacity)
		}
	}
	if children[wire.OriginID] != monCapacity {
		t.Errorf("origin has %d children", children[wire.OriginID])
	}
	if _, err := envInts("X_UNSET_FOR_TEST", []int{7}); err != nil {
		t.Error(err)
	}
	t.Setenv("OCM_BENCH_MONITOR_SIZES", "10,x")
	if _, err := envInts("OCM_BENCH_MONITOR_SIZES", nil); err == nil {
		t.Error("a bad size list accepted")
	}
}
