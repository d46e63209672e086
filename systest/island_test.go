package systest

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ocm-overlay/ocm/internal/api"
	"github.com/ocm-overlay/ocm/internal/event"
)

// TestIsland is one of the paper's distribution islands, as an operator
// builds it with today's tools: a regional ocm-server whose origin is a
// relay of the upper tree.
//
//   - The upper tree: the origin (a test stream at /live) and its
//     ocm-server U, which lets one relay pull from the origin; u1 is that
//     relay, with a player.
//   - The island's root host: a viewer host of the upper tree (ocm-relay
//     --server U and rtsp-mediator --resolver ocm), which joins below u1,
//     and a second mediator with --publish. ffmpeg reads the stream from
//     the first mediator (the enhanced URL, ?ORIGIN) and publishes it, as
//     is, to the second under the plain path /live: a mediator answers a
//     plain path only for a local stream, and this makes the relayed
//     stream one. That second mediator is the island's origin.
//   - The island's server R, and three viewer hosts whose relays know only
//     R and whose players open rtsp://VIEWER/live?ROOT_PUBLISH.
//
// Every island player receives; R's tree holds the three island relays
// under the root's plain stream, U's holds u1 and the root's relay under
// the origin, and U knows nothing of the island. Then the upper tree
// repairs under the root (u1 killed with SIGKILL: the root's mediator
// switches upstream, ffmpeg only reads and goes on), and the island
// repairs itself (the island relay with children killed): the island's
// players that are left keep their sessions and receive again. The
// command line of every process is logged at the end: the operator's
// recipe.
func TestIsland(t *testing.T) {
	systemTest(t)
	require(t, "ffmpeg")

	// The upper tree. One origin slot: the root joins below u1.
	origin := startMediator(t, "origin", "--test-source", "live")
	upper := "rtsp://" + origin.Addr + "/live"
	srvU := startServer(t, "server-U", "--origin-capacity", "1")
	u1 := startViewer(t, "u1", srvU.OCM, "live", origin.Addr, "--capacity", "2")

	// The island's root host.
	root := startHost(t, "root", srvU.OCM, "--capacity", "2")
	pub := startMediator(t, "root/publish", "--publish")
	island := "rtsp://" + pub.Addr + "/live" // the island's origin URL, R's tree key
	glueArgs := []string{"-nostdin", "-hide_banner", "-loglevel", "warning",
		"-rtsp_transport", "tcp", "-i", enhanced(root.Med.Addr, "live", origin.Addr),
		"-c", "copy", "-f", "rtsp", "-rtsp_transport", "tcp", island}
	announced := func(e event.Publisher) bool { return e.Path == "/live" && e.State == "announced" }
	glue := start(t, "root/ffmpeg", "ffmpeg", glueArgs...)
	waitEvent(t, pub, "ffmpeg announced /live", 0, announced)
	tvU := srvU.waitTree(t, upper, []string{"u1", "root"})
	if p := tvU.Parents()["root"]; p != "u1" {
		t.Fatalf("the root's relay is under %q in U's tree, want u1:\n%s", p, tvU)
	}

	// The island.
	srvR := startServer(t, "server-R", "--origin-capacity", "1")
	var hosts []*host
	var names []string
	for i := 1; i <= 3; i++ {
		h := startViewer(t, fmt.Sprintf("i%d", i), srvR.OCM, "live", pub.Addr, "--capacity", "2")
		hosts = append(hosts, h)
		names = append(names, h.Name)
	}
	tvR := srvR.waitTree(t, island, names)
	t.Logf("U's tree of %s:\n%s", upper, tvU)
	t.Logf("R's tree of %s:\n%s", island, tvR)

	// Nothing global: U has the upper relays only, R the island's only.
	if ids := nodeIDs(srvU.nodes(t)); !slices.Equal(ids, []string{"root", "u1"}) {
		t.Errorf("U's nodes: %v, want [root u1] (no island relay)", ids)
	}
	if ids := nodeIDs(srvR.nodes(t)); !slices.Equal(ids, names) {
		t.Errorf("R's nodes: %v, want %v", ids, names)
	}
	if _, err := srvU.tree(t, island); err == nil {
		t.Errorf("U has a tree of the island's stream %s", island)
	}

	// The upper tree repairs under the root: u1 dies.
	from := len(root.Med.Lines())
	islandFault(t, "u1's kill", hosts, u1.Kill)
	waitEvent(t, root.Med, "the root's mediator playing from the origin", from, upstreamEvent("playing", upper))
	srvU.waitTree(t, upper, []string{"root"})
	if glue.Exited() {
		t.Fatalf("ffmpeg exited after the root's upstream switch (%v):\n%s", glue.Err(), tail(glue.Stderr(), 10))
	}

	// The island repairs itself: its relay with children dies.
	victim := tvR.Origin.Children[0]
	var survivors []*host
	var left []string
	for _, h := range hosts {
		if h.Name != victim {
			survivors = append(survivors, h)
			left = append(left, h.Name)
		}
	}
	islandFault(t, victim+"'s kill", survivors, func() { hosts[slices.Index(names, victim)].Kill() })
	t.Logf("R's tree after %s's kill:\n%s", victim, srvR.waitTree(t, island, left))

	// The glue dies and is started again, as a supervisor would: the
	// island's origin comes back, and its players keep their sessions.
	islandFault(t, "ffmpeg's restart", survivors, func() {
		mark := len(pub.Lines())
		glue.Kill()
		glue = start(t, "root/ffmpeg#2", "ffmpeg", glueArgs...)
		waitEvent(t, pub, "ffmpeg announced /live again", mark, announced)
	})
	srvR.waitTree(t, island, left)
	if ids := nodeIDs(srvU.nodes(t)); !slices.Equal(ids, []string{"root"}) {
		t.Errorf("U's nodes after the kills: %v, want [root]", ids)
	}
	for _, h := range survivors {
		sum := stopReader(t, h.player)
		t.Logf("%s's player: %d packets, %d lost", h.Name, sum.Packets, sum.Lost)
	}
	if s := glue.Stderr(); s != "" {
		t.Logf("ffmpeg's warnings:\n%s", tail(s, 10))
	}

	// The recipe: every process's command line.
	var lines []string
	for _, p := range []*proc{origin.Proc, srvU.Proc, u1.Relay, u1.Med.Proc, root.Relay, root.Med.Proc, pub.Proc, glue,
		srvR.Proc, hosts[0].Relay, hosts[0].Med.Proc, hosts[0].player} {
		lines = append(lines, fmt.Sprintf("%-16s %s %s", p.Name, p.Path, strings.Join(p.Args, " ")))
	}
	t.Logf("command lines:\n%s", strings.Join(lines, "\n"))
}

// islandFault runs fault and waits until every player of hosts has 100
// packets more than before it, with its session and its host alive; it
// logs each player's outage and losses.
func islandFault(t *testing.T, what string, hosts []*host, fault func()) {
	t.Helper()
	lost := map[*host]float64{}
	var players []*proc
	for _, h := range hosts {
		lost[h] = lostSoFar(h.player)
		players = append(players, h.player)
	}
	at := time.Now()
	fault()
	waitReceiving(t, "100 packets more after "+what, players, 100)
	var lines []string
	for _, h := range hosts {
		checkHost(t, h)
		o := outageAfter(progressSeries(h.player), at, time.Now())
		state := "no stall seen"
		if o.stalled {
			state = "receiving again after " + ms(o.resumed)
		}
		lines = append(lines, fmt.Sprintf("%s: %s, %.0f lost", h.Name, state, lostSoFar(h.player)-lost[h]))
	}
	t.Logf("after %s (player progress every %s):\n%s", what, playerInterval, strings.Join(lines, "\n"))
}

// nodeIDs are the sorted ids of a server's nodes.
func nodeIDs(nodes []api.Node) []string {
	var ids []string
	for _, n := range nodes {
		ids = append(ids, n.ID)
	}
	slices.Sort(ids)
	return ids
}
