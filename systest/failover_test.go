package systest

import (
	"strings"
	"testing"
)

// TestFailover kills a relay with SIGKILL under a reading player: the
// player's session stays open and packets keep coming, through the other
// parent or through the same one restarted.
func TestFailover(t *testing.T) {
	systemTest(t)
	t.Parallel()

	t.Run("second-parent", func(t *testing.T) {
		t.Parallel()
		f := killFirstParent(t, "A2")
		viaA2 := enhanced(f.parents[1].Addr, "test", f.origin.Addr)
		waitEvent(t, f.b, "an upstream playing from A2 after losing A", f.lost, upstreamEvent("playing", viaA2))
		waitEvent(t, f.r, "150 packets more after the kill", 0, progressAtLeast(f.atKill+150))

		sum := stopReader(t, f.r)
		t.Logf("reader: %v packets, %v lost in the failover", sum.Packets, sum.Lost)
	})

	t.Run("parent-restarted", func(t *testing.T) {
		t.Parallel()
		f := killFirstParent(t)
		startMediatorAt(t, "A (restarted)", f.parents[0].Addr)
		waitEvent(t, f.b, "an upstream playing from the restarted A", f.lost, upstreamEvent("playing", f.viaA))
		waitEvent(t, f.r, "150 packets more after the restart", 0, progressAtLeast(f.atKill+150))

		sum := stopReader(t, f.r)
		t.Logf("reader: %v packets, %v lost in the outage", sum.Packets, sum.Lost)
	})
}

// failover is origin -> A (and more parents) -> B with a reader on B, after
// A was killed.
type failover struct {
	origin, b *mediator
	parents   []*mediator // A first
	viaA      string      // B's upstream URL through A
	r         *proc
	lost      int     // the line of B's event saying it lost A
	atKill    float64 // the reader's packets when B lost A
}

// killFirstParent starts the origin, A, the parents named more and B
// (--resolver parent:A,more...), a reader on B; once the reader has packets
// and B plays from A, it kills A and waits for B to say it lost A.
func killFirstParent(t *testing.T, more ...string) *failover {
	t.Helper()
	f := &failover{origin: startMediator(t, "origin", "--test-source", "test")}
	var addrs []string
	for _, name := range append([]string{"A"}, more...) {
		p := startMediator(t, name)
		f.parents = append(f.parents, p)
		addrs = append(addrs, p.Addr)
	}
	f.b = startMediator(t, "B", "--resolver", "parent:"+strings.Join(addrs, ","))
	f.viaA = enhanced(addrs[0], "test", f.origin.Addr)

	f.r = startReader(t, "reader", enhanced(f.b.Addr, "test", f.origin.Addr))
	waitEvent(t, f.r, "50 packets", 0, progressAtLeast(50))
	waitEvent(t, f.b, "an upstream playing from A", 0, upstreamEvent("playing", f.viaA))

	f.parents[0].Kill()
	_, f.lost = waitEvent(t, f.b, "A's upstream lost", 0, upstreamEvent("lost", f.viaA))
	f.atKill = packetsSoFar(f.r)
	return f
}
