package systest

import (
	"context"
	"io"
	"net/http"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ocm-overlay/ocm/internal/api"
)

// nodes returns GET /api/v1/nodes.
func (s *ocmServer) nodes(t *testing.T) []api.Node {
	t.Helper()
	out, _, err := s.API.Nodes(context.Background())
	if err != nil {
		t.Fatalf("GET nodes: %v", err)
	}
	return out
}

// TestBlackHolePassedOver: a relay whose mediator is frozen (SIGSTOP)
// while its ocm-relay keeps the server session is a black hole: its
// children's players get nothing. Once two of them have lost the stream
// under it the server stops offering it (and what is below it), and says
// why in its API entry; a host joining afterwards is not placed there.
func TestBlackHolePassedOver(t *testing.T) {
	systemTest(t)
	// One origin slot and one candidate per request (the shallowest):
	// every host joins below bh, the way a liar would attract them.
	o := newOverlay(t, "--origin-capacity", "1", "--max-candidates", "1", "--stall-confirm", "1s")
	bh := o.join(t, "bh")
	o.join(t, "v1")
	o.join(t, "v2")
	tv := o.srv.waitTree(t, o.stream, []string{"bh", "v1", "v2"})
	if kids := tv.Below("bh"); len(kids) != 2 {
		t.Fatalf("tree before the freeze: %s", tv)
	}

	if err := bh.Med.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	frozen := time.Now()
	t.Cleanup(func() { _ = bh.Med.Signal(syscall.SIGCONT) })

	var reason string
	deadline := time.Now().Add(patience)
	for reason == "" {
		for _, n := range o.srv.nodes(t) {
			if n.ID == "bh" && n.Quarantined {
				reason = n.QuarantineReason
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("bh not quarantined within %v of the freeze; nodes: %+v", patience, o.srv.nodes(t))
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("bh quarantined %v after its mediator froze: %s", time.Since(frozen).Round(time.Millisecond), reason)
	if !strings.Contains(reason, "v1") || !strings.Contains(reason, "v2") {
		t.Errorf("reason %q does not name its children", reason)
	}
	if i := slices.IndexFunc(o.srv.nodes(t), func(n api.Node) bool { return n.ID == "bh" }); i < 0 {
		t.Fatal("bh left the overlay: the test froze the wrong process")
	}

	// A host joining now is offered nothing below bh.
	v3 := startHost(t, "v3", o.srv.OCM)
	startPlayer(t, "v3/player", enhanced(v3.Med.Addr, "test", o.origin.Addr))
	if !v3.Relay.WaitStderr(func(s string) bool { return strings.Contains(s, "offers no parent") }) {
		t.Fatalf("v3's relay never said it was offered no parent:\n%s", tail(v3.Relay.Stderr(), 20))
	}
	tv, err := o.srv.tree(t, o.stream)
	if err != nil {
		t.Fatal(err)
	}
	if slices.Contains(tv.Below("bh"), "v3") {
		t.Errorf("v3 placed below the black hole: %s", tv)
	}
	if got := o.srv.metric(t, "ocm_nodes_quarantined"); got != "1" {
		t.Errorf("ocm_nodes_quarantined = %q, want 1", got)
	}
}

// metric returns the value of an unlabelled series from /metrics, "" if
// absent.
func (s *ocmServer) metric(t *testing.T, name string) string {
	t.Helper()
	res, err := http.Get("http://" + s.HTTP + "/metrics")
	if err != nil {
		t.Fatalf("GET metrics: %v", err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatalf("GET metrics: %v", err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, name+" "); ok {
			return v
		}
	}
	return ""
}
