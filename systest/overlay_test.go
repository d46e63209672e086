package systest

import (
	"context"
	"fmt"
	"testing"

	"github.com/ocm-overlay/ocm/internal/lab"
)

// ocmServer is a running ocm-server.
type ocmServer struct{ *lab.Server }

func startServer(t *testing.T, name string, args ...string) *ocmServer {
	t.Helper()
	s, err := lab.StartServer(t, tools, name, args...)
	if err != nil {
		t.Fatal(err)
	}
	return &ocmServer{s}
}

// tree fetches a stream's tree from the server's API.
func (s *ocmServer) tree(t *testing.T, stream string) (treeView, error) {
	t.Helper()
	return s.Tree(context.Background(), stream)
}

// treeView is a tree as the server's API shows it.
type treeView = lab.Tree

// waitTree polls the tree until check passes.
func (s *ocmServer) waitTree(t *testing.T, stream string, want []string) treeView {
	t.Helper()
	tv, err := s.WaitTree(context.Background(), stream, patience, func(tv treeView) error { return tv.Check(want) })
	if err != nil {
		t.Fatal(err)
	}
	return tv
}

// host is one viewer host: an ocm-relay, its mediator and a player.
type host struct {
	*lab.Host
	player *proc
}

// startHost starts ocm-relay and rtsp-mediator --resolver ocm for one host.
func startHost(t *testing.T, name, server string, relayArgs ...string) *host {
	t.Helper()
	return startHostWith(t, name, server, nil, relayArgs...)
}

// startHostWith is startHost with more flags for the mediator. All the
// hosts share this machine's CPUs, which other tests may keep busy, so the
// relay's CPU ceiling is off (--max-cpu 1): the machine's load is no one
// host's, and filtering on it would make the tree's shape random.
func startHostWith(t *testing.T, name, server string, medArgs []string, relayArgs ...string) *host {
	t.Helper()
	h, err := lab.StartHost(t, tools, name, server, append(append([]string(nil), mediatorArgs...), medArgs...),
		append([]string{"--max-cpu", "1"}, relayArgs...))
	if err != nil {
		t.Fatal(err)
	}
	return &host{Host: h}
}

// startOCMRelay starts the ocm-relay of node name, and returns it and its
// control address, for a mediator's --control; its CPU ceiling is off, as
// a host's (startHostWith).
func startOCMRelay(t *testing.T, name, server string, args ...string) (*proc, string) {
	t.Helper()
	r, control, err := lab.StartRelay(t, tools, name, server, append([]string{"--max-cpu", "1"}, args...)...)
	if err != nil {
		t.Fatal(err)
	}
	return r, control
}

// Kill kills the whole host with SIGKILL: relay, mediator and player.
func (h *host) Kill() {
	h.Host.Kill()
	if h.player != nil {
		h.player.Kill()
	}
}

// TestOverlayTree: six viewer hosts join one after another through
// ocm-relay; the server builds a tree by measurement within capacities.
// Then a relay with children dies (SIGKILL) and the server restarts: no
// other player's session closes, and packets resume.
func TestOverlayTree(t *testing.T) {
	systemTest(t)
	origin := startMediator(t, "origin", "--test-source", "test")
	stream := "rtsp://" + origin.Addr + "/test"
	srv := startServer(t, "server", "--origin-capacity", "2")

	var hosts []*host
	var names []string
	for i := 1; i <= 6; i++ {
		h := startHost(t, fmt.Sprintf("v%d", i), srv.OCM, "--capacity", "2")
		h.player = startReader(t, h.Name+"/player", enhanced(h.Med.Addr, "test", origin.Addr))
		waitEvent(t, h.player, "its first packets", 0, progressAtLeast(20))
		hosts = append(hosts, h)
		names = append(names, h.Name)
	}
	tv := srv.waitTree(t, stream, names)
	if tv.Depth < 2 {
		t.Fatalf("tree depth %d, want at least 2 with origin capacity 2 and 6 hosts", tv.Depth)
	}
	t.Logf("tree: origin -> %v, depth %d", tv.Origin.Children, tv.Depth)
	for _, n := range tv.Nodes {
		t.Logf("  %s (level %d) under %s, children %v", n.Node, n.Level, n.Parent, n.Children)
	}

	// SIGKILL a host whose relay has children.
	var victim *host
	for _, n := range tv.Nodes {
		if len(n.Children) > 0 {
			for _, h := range hosts {
				if h.Name == n.Node {
					victim = h
				}
			}
			break
		}
	}
	if victim == nil {
		t.Fatal("no relay has children")
	}
	var survivors []*host
	var left []string
	for _, h := range hosts {
		if h != victim {
			survivors = append(survivors, h)
			left = append(left, h.Name)
		}
	}
	atKill := map[*host]float64{}
	for _, h := range survivors {
		atKill[h] = packetsSoFar(h.player)
	}
	t.Logf("killing %s", victim.Name)
	victim.Kill()
	for _, h := range survivors {
		waitEvent(t, h.player, "packets after the kill", 0, progressAtLeast(atKill[h]+100))
	}
	srv.waitTree(t, stream, left)

	// Restart the server on the same addresses: relays say hello again
	// with their parents and the tree comes back; no player notices.
	for _, h := range survivors {
		atKill[h] = packetsSoFar(h.player)
	}
	srv.Kill()
	srv2 := startServer(t, "server (restarted)", "--origin-capacity", "2", "--listen", srv.OCM, "--http", srv.HTTP)
	srv2.waitTree(t, stream, left)
	for _, h := range survivors {
		waitEvent(t, h.player, "packets after the server restart", 0, progressAtLeast(atKill[h]+100))
		if h.Relay.Exited() || h.Med.Exited() {
			t.Fatalf("%s died", h.Name)
		}
	}
	for _, h := range survivors {
		sum := stopReader(t, h.player)
		t.Logf("%s: %v packets, %v lost", h.Name, sum.Packets, sum.Lost)
	}
}
