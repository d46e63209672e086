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
// builds it: a regional ocm-server whose origin is a relay of the upper
// tree. Two ways to make the root's relayed stream a plain path, which is
// what an origin serves (a mediator answers a plain path only for a local
// stream or one it was told to serve), one subtest each:
//
//   - serve-relayed: the root's mediator itself, with --serve-relayed
//     live=live?ORIGIN; the island's origin is rtsp://ROOT/live. The
//     root's relay is passive (--willing=false): no upper-tree viewer is
//     placed below it, and the island's relays are served all the same.
//   - ffmpeg: a second mediator on the root with --publish, and ffmpeg
//     reading the stream from the root's mediator (the enhanced URL,
//     ?ORIGIN) and publishing it as is to the second under /live; the
//     island's origin is rtsp://ROOT_PUBLISH/live.
//
// The rest is the same:
//
//   - The upper tree: the origin (a test stream at /live) and its
//     ocm-server U, which lets one relay pull from the origin; u1 is that
//     relay, with a player.
//   - The island's root host: a viewer host of the upper tree (ocm-relay
//     --server U and rtsp-mediator --resolver ocm), which joins below u1.
//   - The island's server R, and three viewer hosts whose relays know only
//     R and whose players open rtsp://VIEWER/live?ISLAND_ORIGIN.
//
// Every island player receives; R's tree holds the three island relays
// under the island's origin, U's holds u1 and the root's relay under the
// origin, and U knows nothing of the island. Then the upper tree repairs
// under the root (u1 killed with SIGKILL: the root's mediator switches
// upstream; ffmpeg, a reader, goes on), and the island repairs itself (the
// island relay with children killed); under ffmpeg the glue is also killed
// and started again. The island's players that are left keep their
// sessions and receive again after each. The command line of every
// process is logged at the end: the operator's recipe.
func TestIsland(t *testing.T) {
	systemTest(t)
	t.Run("serve-relayed", func(t *testing.T) { island(t, false) })
	t.Run("ffmpeg", func(t *testing.T) {
		require(t, "ffmpeg")
		island(t, true)
	})
}

func island(t *testing.T, viaFFmpeg bool) {
	// The upper tree. One origin slot: the root joins below u1.
	origin := startMediator(t, "origin", "--test-source", "live")
	upper := "rtsp://" + origin.Addr + "/live"
	srvU := startServer(t, "server-U", "--origin-capacity", "1")
	u1 := startViewer(t, "u1", srvU.OCM, "live", origin.Addr, "--capacity", "2")
	recipe := []*proc{origin.Proc, srvU.Proc, u1.Relay, u1.Med.Proc}

	// The island's root host, and the island's origin: ISLAND_HOST:PORT/live.
	var islandAddr string
	var glue, pub *proc
	var glueArgs []string
	announced := func(e event.Publisher) bool { return e.Path == "/live" && e.State == "announced" }
	var root *host
	if viaFFmpeg {
		root = startHost(t, "root", srvU.OCM, "--capacity", "2")
		m := startMediator(t, "root/publish", "--publish")
		islandAddr, pub = m.Addr, m.Proc
		glueArgs = []string{"-nostdin", "-hide_banner", "-loglevel", "warning",
			"-rtsp_transport", "tcp", "-i", enhanced(root.Med.Addr, "live", origin.Addr),
			"-c", "copy", "-f", "rtsp", "-rtsp_transport", "tcp", "rtsp://" + islandAddr + "/live"}
		glue = start(t, "root/ffmpeg", "ffmpeg", glueArgs...)
		waitEvent(t, pub, "ffmpeg announced /live", 0, announced)
		recipe = append(recipe, root.Relay, root.Med.Proc, pub, glue)
	} else {
		// Passive in the upper tree (its uplink is the island's), and
		// still the origin of the island's relays.
		root = startHostWith(t, "root", srvU.OCM, []string{"--serve-relayed", "live=live?" + origin.Addr}, "--willing=false")
		islandAddr = root.Med.Addr
		recipe = append(recipe, root.Relay, root.Med.Proc)
	}
	island := "rtsp://" + islandAddr + "/live" // R's tree key

	// The island.
	srvR := startServer(t, "server-R", "--origin-capacity", "1")
	var hosts []*host
	var names []string
	for i := 1; i <= 3; i++ {
		h := startViewer(t, fmt.Sprintf("i%d", i), srvR.OCM, "live", islandAddr, "--capacity", "2")
		hosts = append(hosts, h)
		names = append(names, h.Name)
	}
	tvR := srvR.waitTree(t, island, names)
	// With --serve-relayed the root pulls on demand: it joins the upper
	// tree with the island's first viewer.
	tvU := srvU.waitTree(t, upper, []string{"u1", "root"})
	if p := tvU.Parents()["root"]; p != "u1" {
		t.Fatalf("the root's relay is under %q in U's tree, want u1:\n%s", p, tvU)
	}
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
	if !viaFFmpeg {
		// One upstream on the root: the island reads the relayed stream.
		for _, e := range eventsOf[event.StreamStats](root.Med) {
			if e.Stream != upper {
				t.Fatalf("the root's mediator has a stream %s besides %s", e.Stream, upper)
			}
		}
	}

	// The upper tree repairs under the root: u1 dies.
	from := len(root.Med.Lines())
	islandFault(t, "u1's kill", hosts, u1.Kill)
	waitEvent(t, root.Med, "the root's mediator playing from the origin", from, upstreamEvent("playing", upper))
	srvU.waitTree(t, upper, []string{"root"})
	if glue != nil && glue.Exited() {
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

	if viaFFmpeg {
		// The glue dies and is started again, as a supervisor would: the
		// island's origin comes back, and its players keep their sessions.
		islandFault(t, "ffmpeg's restart", survivors, func() {
			mark := len(pub.Lines())
			glue.Kill()
			glue = start(t, "root/ffmpeg#2", "ffmpeg", glueArgs...)
			waitEvent(t, pub, "ffmpeg announced /live again", mark, announced)
		})
	}
	srvR.waitTree(t, island, left)
	if ids := nodeIDs(srvU.nodes(t)); !slices.Equal(ids, []string{"root"}) {
		t.Errorf("U's nodes after the kills: %v, want [root]", ids)
	}
	for _, h := range survivors {
		sum := stopReader(t, h.player)
		t.Logf("%s's player: %d packets, %d lost", h.Name, sum.Packets, sum.Lost)
	}
	if glue != nil && glue.Stderr() != "" {
		t.Logf("ffmpeg's warnings:\n%s", tail(glue.Stderr(), 10))
	}

	// The recipe: every process's command line.
	var lines []string
	if glue != nil {
		recipe[len(recipe)-1] = glue // the one running now: the same command line
	}
	for _, p := range append(recipe, srvR.Proc, hosts[0].Relay, hosts[0].Med.Proc, hosts[0].player) {
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
