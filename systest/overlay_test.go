package systest

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"syscall"
	"testing"
	"time"

	"github.com/ocm-overlay/ocm/internal/event"
)

// ocmServer is a running ocm-server.
type ocmServer struct {
	*proc
	ocm, http string
}

func startServer(t *testing.T, name string, args ...string) *ocmServer {
	t.Helper()
	args = append([]string{"--listen", "127.0.0.1:0", "--http", "127.0.0.1:0", "--heartbeat", "500ms",
		"--report-interval", "1s"}, args...)
	p := start(t, name, tool("ocm-server"), args...)
	e, _ := waitEvent(t, p, "its ready line", 0, func(event.ServerReady) bool { return true })
	return &ocmServer{proc: p, ocm: e.OCM, http: e.HTTP}
}

// tree fetches a stream's tree from the server's API.
func (s *ocmServer) tree(t *testing.T, stream string) (treeView, error) {
	t.Helper()
	var tv treeView
	res, err := http.Get("http://" + s.http + "/api/v1/tree?stream=" + url.QueryEscape(stream))
	if err != nil {
		return tv, err
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		return tv, fmt.Errorf("GET tree: %s", res.Status)
	}
	return tv, json.NewDecoder(res.Body).Decode(&tv)
}

type treeView struct {
	Stream string `json:"stream"`
	Origin struct {
		Children []string `json:"children"`
		Capacity int      `json:"capacity"`
	} `json:"origin"`
	Nodes []struct {
		Node     string   `json:"node"`
		Parent   string   `json:"parent"`
		Level    int      `json:"level"`
		Children []string `json:"children"`
		Capacity int      `json:"capacity"`
		Attached bool     `json:"attached"`
	} `json:"nodes"`
	Depth int `json:"depth"`
}

// check says what is wrong with the tree, if anything: every node in want
// present and attached, none over capacity, levels consistent.
func (tv treeView) check(want []string) error {
	if len(tv.Origin.Children) > tv.Origin.Capacity {
		return fmt.Errorf("origin has %d children, capacity %d", len(tv.Origin.Children), tv.Origin.Capacity)
	}
	level := map[string]int{"origin": 0}
	for _, n := range tv.Nodes {
		level[n.Node] = n.Level
	}
	seen := map[string]bool{}
	for _, n := range tv.Nodes {
		seen[n.Node] = true
		if !n.Attached {
			return fmt.Errorf("%s is detached", n.Node)
		}
		if len(n.Children) > n.Capacity {
			return fmt.Errorf("%s has %d children, capacity %d", n.Node, len(n.Children), n.Capacity)
		}
		if pl, ok := level[n.Parent]; !ok || n.Level != pl+1 {
			return fmt.Errorf("%s at level %d under %s (level %d, known %v)", n.Node, n.Level, n.Parent, pl, ok)
		}
	}
	if len(tv.Nodes) != len(want) {
		return fmt.Errorf("tree has %d nodes, want %d", len(tv.Nodes), len(want))
	}
	for _, w := range want {
		if !seen[w] {
			return fmt.Errorf("%s missing from the tree", w)
		}
	}
	return nil
}

// waitTree polls the tree until check passes.
func (s *ocmServer) waitTree(t *testing.T, stream string, want []string) treeView {
	t.Helper()
	deadline := time.Now().Add(patience)
	var last error
	for time.Now().Before(deadline) {
		tv, err := s.tree(t, stream)
		if err == nil {
			if err = tv.check(want); err == nil {
				return tv
			}
		}
		last = err
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("tree of %s not as expected within %s: %v", stream, patience, last)
	return treeView{}
}

// host is one viewer host: an ocm-relay, its mediator and a player.
type host struct {
	name   string
	relay  *proc
	med    *mediator
	player *proc
}

// startHost starts ocm-relay and rtsp-mediator --resolver ocm for one host.
func startHost(t *testing.T, name, server string, relayArgs ...string) *host {
	t.Helper()
	return startHostWith(t, name, server, nil, relayArgs...)
}

// startHostWith is startHost with more flags for the mediator.
func startHostWith(t *testing.T, name, server string, medArgs []string, relayArgs ...string) *host {
	t.Helper()
	r, control := startOCMRelay(t, name, server, relayArgs...)
	m := startMediator(t, name+"/mediator", append([]string{"--resolver", "ocm", "--control", control}, medArgs...)...)
	return &host{name: name, relay: r, med: m}
}

// startOCMRelay starts the ocm-relay of node name, and returns it and its
// control address, for a mediator's --control. All the hosts share this
// machine's CPUs, which other tests may keep busy, so the CPU ceiling is
// off (--max-cpu 1): the machine's load is no one host's, and filtering on
// it would make the tree's shape random.
func startOCMRelay(t *testing.T, name, server string, args ...string) (*proc, string) {
	t.Helper()
	args = append([]string{"--server", server, "--control", "127.0.0.1:0", "--probe", "127.0.0.1:0",
		"--node-id", name, "--max-cpu", "1"}, args...)
	r := start(t, name+"/relay", tool("ocm-relay"), args...)
	e, _ := waitEvent(t, r, "its ready line", 0, func(event.RelayReady) bool { return true })
	return r, e.Control
}

// signal sends sig to the host's relay and mediator (SIGSTOP freezes
// them, SIGCONT thaws them); its player is left alone.
func (h *host) signal(sig syscall.Signal) {
	for _, p := range []*proc{h.relay, h.med.proc} {
		if !p.exited() {
			_ = p.cmd.Process.Signal(sig)
		}
	}
}

// kill kills the whole host with SIGKILL: relay, mediator and player.
func (h *host) kill() {
	h.relay.kill()
	h.med.kill()
	if h.player != nil {
		h.player.kill()
	}
}

// TestOverlayTree: six viewer hosts join one after another through
// ocm-relay; the server builds a tree by measurement within capacities.
// Then a relay with children dies (SIGKILL) and the server restarts: no
// other player's session closes, and packets resume.
func TestOverlayTree(t *testing.T) {
	systemTest(t)
	origin := startMediator(t, "origin", "--test-source", "test")
	stream := "rtsp://" + origin.addr + "/test"
	srv := startServer(t, "server", "--origin-capacity", "2")

	var hosts []*host
	var names []string
	for i := 1; i <= 6; i++ {
		h := startHost(t, fmt.Sprintf("v%d", i), srv.ocm, "--capacity", "2")
		h.player = startReader(t, h.name+"/player", enhanced(h.med.addr, "test", origin.addr))
		waitEvent(t, h.player, "its first packets", 0, progressAtLeast(20))
		hosts = append(hosts, h)
		names = append(names, h.name)
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
				if h.name == n.Node {
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
			left = append(left, h.name)
		}
	}
	atKill := map[*host]float64{}
	for _, h := range survivors {
		atKill[h] = packetsSoFar(h.player)
	}
	t.Logf("killing %s", victim.name)
	victim.kill()
	for _, h := range survivors {
		waitEvent(t, h.player, "packets after the kill", 0, progressAtLeast(atKill[h]+100))
	}
	srv.waitTree(t, stream, left)

	// Restart the server on the same addresses: relays say hello again
	// with their parents and the tree comes back; no player notices.
	for _, h := range survivors {
		atKill[h] = packetsSoFar(h.player)
	}
	srv.kill()
	srv2 := startServer(t, "server (restarted)", "--origin-capacity", "2", "--listen", srv.ocm, "--http", srv.http)
	srv2.waitTree(t, stream, left)
	for _, h := range survivors {
		waitEvent(t, h.player, "packets after the server restart", 0, progressAtLeast(atKill[h]+100))
		if h.relay.exited() || h.med.exited() {
			t.Fatalf("%s died", h.name)
		}
	}
	for _, h := range survivors {
		sum := stopReader(t, h.player)
		t.Logf("%s: %v packets, %v lost", h.name, sum.Packets, sum.Lost)
	}
}
