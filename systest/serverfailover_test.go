package systest

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/ocm-overlay/ocm/internal/event"
)

// TestServerFailover: ten viewer hosts, each relay given --server A,B,
// play through a tree on server A. A is killed with SIGKILL: every relay
// connects to the standby B within three heartbeat intervals, B rebuilds a
// valid tree from their hellos alone (every relay attached, no cycle), no
// player's session closes, and no packet is lost: the media never passed
// through a server.
func TestServerFailover(t *testing.T) {
	systemTest(t)
	const hb = time.Second // short, so the bound below is too
	serverArgs := []string{"--heartbeat", hb.String(), "--origin-capacity", "2"}
	origin := startMediator(t, "origin", "--test-source", "test")
	stream := "rtsp://" + origin.Addr + "/test"
	srvA := startServer(t, "server-A", serverArgs...)
	srvB := startServer(t, "server-B", serverArgs...)
	list := srvA.OCM + "," + srvB.OCM

	var hosts []*host
	var names []string
	for i := 1; i <= 10; i++ {
		h := startHost(t, fmt.Sprintf("v%d", i), list, "--capacity", "2")
		h.player = startPlayer(t, h.Name+"/player", enhanced(h.Med.Addr, "test", origin.Addr))
		waitEvent(t, h.player, "its first packets", 0, progressAtLeast(10))
		hosts = append(hosts, h)
		names = append(names, h.Name)
	}
	before := srvA.waitTree(t, stream, names)
	t.Logf("tree on A (depth %d):\n%s", before.Depth, before)

	players := make([]*proc, len(hosts))
	lostBefore := map[string]float64{}
	fromLine := map[string]int{} // each relay's and mediator's stdout so far
	for i, h := range hosts {
		players[i] = h.player
		lostBefore[h.Name] = lostSoFar(h.player)
		fromLine[h.Name+"/relay"] = len(h.Relay.Lines())
		fromLine[h.Name+"/mediator"] = len(h.Med.Lines())
	}

	killed := time.Now()
	srvA.Kill()

	// Every relay on B, by the time it says so itself.
	var slowest time.Duration
	for _, h := range hosts {
		waitEvent(t, h.Relay, "connected to B", fromLine[h.Name+"/relay"], func(e event.ServerLink) bool {
			return e.State == "connected" && e.Server == srvB.OCM
		})
		var took time.Duration
		for _, e := range timedEventsOf[event.ServerLink](h.Relay) {
			if e.E.State == "connected" && e.E.Server == srvB.OCM && e.At.After(killed) {
				took = e.At.Sub(killed)
				break
			}
		}
		slowest = max(slowest, took)
		if took > 3*hb {
			t.Errorf("%s connected to B %v after A's kill, over 3 heartbeat intervals (%v)", h.Name, took, 3*hb)
		}
	}
	after := srvB.waitTree(t, stream, names)
	rebuilt := time.Since(killed)
	if err := noCycle(after); err != nil {
		t.Fatalf("B's tree: %v\n%s", err, after)
	}
	kept := 0
	for c, p := range before.Parents() {
		if after.Parents()[c] == p {
			kept++
		}
	}
	t.Logf("switch-over: slowest relay on B %v after the kill, B's tree complete within %v (polled); edges kept %d/%d",
		ms(slowest), ms(rebuilt), kept, len(names))
	t.Logf("tree on B (depth %d):\n%s", after.Depth, after)

	// The media went on: every player receives, none lost a packet, none
	// of the mediators had to change upstream.
	waitReceiving(t, "100 packets more after the failover", players, 100)
	var lines []string
	for _, h := range hosts {
		checkHost(t, h)
		lost := lostSoFar(h.player) - lostBefore[h.Name]
		if lost != 0 {
			t.Errorf("%s's player lost %.0f packets across the failover", h.Name, lost)
		}
		switches := 0
		for _, line := range h.Med.Lines()[fromLine[h.Name+"/mediator"]:] {
			if e, _ := parseEvent(line); e != nil {
				if u, ok := e.(event.Upstream); ok && u.State != "playing" {
					switches++
				}
			}
		}
		lines = append(lines, fmt.Sprintf("%s: %.0f lost, %d upstream changes", h.Name, lost, switches))
	}
	t.Logf("players:\n%s", strings.Join(lines, "\n"))
}

// noCycle walks every node's parents up to the origin: each must get there
// through nodes of the tree, in at most as many steps as there are nodes.
func noCycle(tv treeView) error {
	parents := tv.Parents()
	for _, n := range tv.Nodes {
		at, steps := n.Node, 0
		for at != "origin" {
			p, ok := parents[at]
			if !ok {
				return fmt.Errorf("%s: %s on its way to the origin has no parent", n.Node, at)
			}
			if steps++; steps > len(tv.Nodes) {
				return fmt.Errorf("%s: a cycle on its way to the origin", n.Node)
			}
			at = p
		}
	}
	return nil
}
