package systest

import (
	"fmt"
	"net/url"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ocm-overlay/ocm/internal/event"
)

// TestHandover: a relay H with children and grandchildren leaves the
// overlay gracefully, by SIGTERM to its ocm-relay or by a drain through the
// server's API. Its mediator keeps running (it still serves its readers
// while they move). The server finds H's children new parents, each
// child's mediator switches make-before-break, and H's relay exits by
// itself: no player below H sees a sequence gap (its lost count does not
// move), no player's session ends, and the tree no longer has H while
// every other node is attached.
func TestHandover(t *testing.T) {
	systemTest(t)
	for _, how := range []string{"sigterm", "drain"} {
		t.Run(how, func(t *testing.T) { handover(t, how) })
	}
}

func handover(t *testing.T, how string) {
	o := newOverlay(t, "--origin-capacity", "2", "--handover-timeout", "2s")
	for i := 1; i <= 8; i++ {
		o.join(t, fmt.Sprintf("h%d", i), "--capacity", "2")
	}
	tv := o.srv.waitTree(t, o.stream, o.names())

	// H: the relay with the most descendants among those with grandchildren
	// (with the origin taking 2 and 8 hosts of capacity 2 there is one).
	desc := tv.Descendants()
	leaving := ""
	for _, n := range tv.Nodes {
		if desc[n.Node] > len(n.Children) && (leaving == "" || desc[n.Node] > desc[leaving]) {
			leaving = n.Node
		}
	}
	if leaving == "" {
		t.Fatalf("no relay has grandchildren:\n%s", tv)
	}
	below := tv.Below(leaving)
	t.Logf("tree before, %s leaves (%s) with %d descendants %v:\n%s", leaving, how, len(below), below, tv)
	h := o.byName[leaving]
	lostBefore := map[string]float64{}
	for _, x := range o.hosts {
		lostBefore[x.Name] = lostSoFar(x.player)
	}
	srvFrom := len(o.srv.Lines())

	began := time.Now()
	switch how {
	case "sigterm":
		if err := h.Relay.Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
	case "drain":
		o.srv.post(t, "/api/v1/drain", url.Values{"node": {leaving}})
	}
	select {
	case <-h.Relay.Done():
	case <-time.After(patience):
		t.Fatalf("%s's ocm-relay still runs %s after the %s", leaving, patience, how)
	}
	exited := time.Since(began)
	if h.Relay.Err() != nil {
		t.Errorf("%s's ocm-relay exited with %v\n%s", leaving, h.Relay.Err(), tail(h.Relay.Stderr(), 20))
	}
	done, _ := waitEvent(t, o.srv, "handover_done for "+leaving, srvFrom, func(e event.HandoverDone) bool {
		return e.Node == leaving
	})
	t.Logf("%s's relay exited %s after the %s; the server's handover ended %q, remaining %v",
		leaving, exited.Round(time.Millisecond), how, done.Result, done.Remaining)
	if done.Result != "switched" {
		t.Errorf("handover of %s ended %q, want switched: %+v", leaving, done.Result, done)
	}

	others := o.names(leaving)
	after, err := o.srv.awaitTree(t, o.stream, others, patience)
	if err != nil {
		t.Fatalf("the tree without %s is not valid within %s: %v\nmissing: %v\n%s", leaving, patience, err,
			missing(after, others), after)
	}
	t.Logf("tree after:\n%s", after)

	// Every player goes on receiving, a second of video more; below H with
	// no sequence gap.
	waitReceiving(t, "packets after the handover", o.players(), 70)
	var lines []string
	for _, x := range o.hosts {
		checkPlayer(t, x.player)
		lost := lostSoFar(x.player) - lostBefore[x.Name]
		role := "elsewhere"
		switch {
		case x.Name == leaving:
			role = "on H"
		case contains(below, x.Name):
			role = "below H"
			if lost != 0 {
				t.Errorf("%s's player below %s lost %.0f packets in the handover", x.Name, leaving, lost)
			}
		}
		moved := eventsSince[event.Joined](x.Relay, began)
		lines = append(lines, fmt.Sprintf("%s (%s): %.0f lost, %d joins", x.Name, role, lost, moved))
	}
	t.Logf("players:\n%s", strings.Join(lines, "\n"))
	if h.Med.Exited() {
		t.Errorf("%s's mediator exited (%v)", leaving, h.Med.Err())
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
