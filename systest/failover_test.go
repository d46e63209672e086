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
		b := startMediator(t, "B", "--resolver", "parent:"+a.addr+","+a2.addr)
		viaA := enhanced(a.addr, "test", origin.addr)
		viaA2 := enhanced(a2.addr, "test", origin.addr)

		r := startReader(t, "reader", enhanced(b.addr, "test", origin.addr))
		waitEvent(t, r, "50 packets", 0, progressAtLeast(50))
		waitEvent(t, b, "an upstream playing from A", 0, upstreamEvent("playing", viaA))

		a.kill()
		_, lost := waitEvent(t, b, "A's upstream lost", 0, upstreamEvent("lost", viaA))
		atKill := packetsSoFar(r)
		waitEvent(t, b, "an upstream playing from A2 after losing A", lost, upstreamEvent("playing", viaA2))
		waitEvent(t, r, "150 packets more after the kill", 0, progressAtLeast(atKill+150))

		sum := stopReader(t, r)
		t.Logf("reader: %v packets, %v lost in the failover", sum.Packets, sum.Lost)
	})

	t.Run("parent-restarted", func(t *testing.T) {
		t.Parallel()
		origin := startMediator(t, "origin", "--test-source", "test")
		a := startMediator(t, "A")
		b := startMediator(t, "B", "--resolver", "parent:"+a.addr)
		viaA := enhanced(a.addr, "test", origin.addr)

		r := startReader(t, "reader", enhanced(b.addr, "test", origin.addr))
		waitEvent(t, r, "50 packets", 0, progressAtLeast(50))
		waitEvent(t, b, "an upstream playing from A", 0, upstreamEvent("playing", viaA))

		a.kill()
		_, lost := waitEvent(t, b, "A's upstream lost", 0, upstreamEvent("lost", viaA))
		atKill := packetsSoFar(r)
		startMediatorAt(t, "A (restarted)", a.addr)
		waitEvent(t, b, "an upstream playing from the restarted A", lost, upstreamEvent("playing", viaA))
		waitEvent(t, r, "150 packets more after the restart", 0, progressAtLeast(atKill+150))

		sum := stopReader(t, r)
		t.Logf("reader: %v packets, %v lost in the outage", sum.Packets, sum.Lost)
	})
}
