package systest

import "testing"

// TestFailover kills a relay with SIGKILL under a reading player: the
// player's session stays open and packets keep coming, through the other
// parent or through the same one restarted.
func TestFailover(t *testing.T) {
	systemTest(t)
	t.Parallel()

	t.Run("second-parent", func(t *testing.T) {
		t.Parallel()
		origin := startMediator(t, "origin", "--test-source", "test")
		a := startMediator(t, "A")
		a2 := startMediator(t, "A2")
		b := startMediator(t, "B", "--resolver", "parent:"+a.Addr+","+a2.Addr)
		viaA := enhanced(a.Addr, "test", origin.Addr)
		viaA2 := enhanced(a2.Addr, "test", origin.Addr)

		r := startReader(t, "reader", enhanced(b.Addr, "test", origin.Addr))
		r.WaitEvent(t, "50 packets", 0, progressAtLeast(50))
		b.WaitEvent(t, "an upstream playing from A", 0, upstreamEvent("playing", viaA))

		a.Kill()
		_, lost := b.WaitEvent(t, "A's upstream lost", 0, upstreamEvent("lost", viaA))
		atKill := packetsSoFar(r)
		b.WaitEvent(t, "an upstream playing from A2 after losing A", lost, upstreamEvent("playing", viaA2))
		r.WaitEvent(t, "150 packets more after the kill", 0, progressAtLeast(atKill+150))

		sum := stopReader(t, r)
		t.Logf("reader: %v packets, %v lost in the failover", sum.Num("packets"), sum.Num("lost"))
	})

	t.Run("parent-restarted", func(t *testing.T) {
		t.Parallel()
		origin := startMediator(t, "origin", "--test-source", "test")
		a := startMediator(t, "A")
		b := startMediator(t, "B", "--resolver", "parent:"+a.Addr)
		viaA := enhanced(a.Addr, "test", origin.Addr)

		r := startReader(t, "reader", enhanced(b.Addr, "test", origin.Addr))
		r.WaitEvent(t, "50 packets", 0, progressAtLeast(50))
		b.WaitEvent(t, "an upstream playing from A", 0, upstreamEvent("playing", viaA))

		a.Kill()
		_, lost := b.WaitEvent(t, "A's upstream lost", 0, upstreamEvent("lost", viaA))
		atKill := packetsSoFar(r)
		startMediatorAt(t, "A (restarted)", a.Addr)
		b.WaitEvent(t, "an upstream playing from the restarted A", lost, upstreamEvent("playing", viaA))
		r.WaitEvent(t, "150 packets more after the restart", 0, progressAtLeast(atKill+150))

		sum := stopReader(t, r)
		t.Logf("reader: %v packets, %v lost in the outage", sum.Num("packets"), sum.Num("lost"))
	})
}
