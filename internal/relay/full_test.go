package relay

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ocm-overlay/ocm/internal/control"
	"github.com/ocm-overlay/ocm/internal/lab"
	"github.com/ocm-overlay/ocm/internal/mediator"
	"github.com/ocm-overlay/ocm/internal/probe"
	"github.com/ocm-overlay/ocm/internal/server"
	"github.com/ocm-overlay/ocm/internal/testutil"
	"github.com/ocm-overlay/ocm/internal/tree"
	"github.com/ocm-overlay/ocm/internal/wire"
)

// joinHold is a TCP proxy between a relay and ocm-server that holds the
// relay's first "joined" line until the test releases it: the window
// between the candidate list and the join, in which a parent can fill up.
type joinHold struct {
	ln          net.Listener
	target      string
	held        chan struct{} // closed when the first joined line is held
	release     chan struct{} // closed by the test to let it through
	once        sync.Once
	releaseOnce sync.Once
}

func startJoinHold(t *testing.T, target string) *joinHold {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	h := &joinHold{ln: ln, target: target, held: make(chan struct{}), release: make(chan struct{})}
	testutil.Serve(t, ln, 0, h.pass)
	// Before Serve's cleanup, which waits for pass.
	t.Cleanup(h.open)
	return h
}

func (h *joinHold) Addr() string { return h.ln.Addr().String() }

// open lets the held join through (once).
func (h *joinHold) open() { h.releaseOnce.Do(func() { close(h.release) }) }

func (h *joinHold) pass(nc net.Conn) {
	up, err := net.Dial("tcp", h.target)
	if err != nil {
		nc.Close()
		return
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		_, _ = io.Copy(nc, up)
		nc.Close()
	}()
	br := bufio.NewReader(nc)
	for {
		line, err := br.ReadBytes('\n')
		if len(line) > 0 && bytes.Contains(line, []byte(`"type":"joined"`)) {
			first := false
			h.once.Do(func() { first = true })
			if first {
				close(h.held)
				<-h.release
			}
		}
		if len(line) > 0 {
			if _, werr := up.Write(line); werr != nil {
				break
			}
		}
		if err != nil {
			break
		}
	}
	up.Close()
	nc.Close()
	<-done
}

// TestJoinRefusedFullAsksAgain: relay a is offered the origin (its only
// slot free), and before a's join reaches the server, relay b takes that
// slot. The server refuses a's join ("full"). The viewer's first DESCRIBE
// through a's mediator still succeeds: a asks for candidates again
// without the full origin, and joins under b.
func TestJoinRefusedFullAsksAgain(t *testing.T) {
	origin := startOrigin(t)
	srv := startServer(t, tree.Repair, func(s *server.Server) { s.OriginCapacity = 1 })
	hold := startJoinHold(t, srv.Addr())
	a := startRelay(t, "a", hold.Addr(), nil)
	b := startRelay(t, "b", srv.Addr(), nil)
	viewerA := startViewer(t, a.ControlAddr())
	viewerB := startViewer(t, b.ControlAddr())
	stream := "rtsp://" + origin.Addr() + "/test"

	status := make(chan int, 1)
	go func() {
		st := describeAll(t, viewerA.Addr(), []string{"rtsp://" + viewerA.Addr() + "/test?" + origin.Addr()}, 1)
		for code := range st {
			status <- code
		}
	}()
	select {
	case <-hold.held:
	case <-time.After(guard):
		t.Fatal("relay a never sent its join")
	}
	// The slot a was offered goes to b meanwhile: once the server's
	// promise of it to a has run out (a loaded host, or a relay that
	// picked another candidate than the server expected), b is offered
	// it and plays.
	var fill *lab.Reader
	waitUntil(t, "b plays from the origin", func() bool {
		var err error
		fill, err = lab.Dial("rtsp://"+viewerB.Addr()+"/test?"+origin.Addr(), lab.ReaderOptions{})
		if err != nil {
			time.Sleep(100 * time.Millisecond)
		}
		return err == nil
	})
	t.Cleanup(fill.Close)
	waitUntil(t, "b joins under the origin", func() bool {
		return shape(srv.tree(t, stream)) == "b<origin@1"
	})
	hold.open()

	if got := <-status; got != 200 {
		t.Fatalf("viewer's first DESCRIBE through a: status %d, want 200 (a's log is above)", got)
	}
	waitUntil(t, "a joins under b", func() bool {
		return shape(srv.tree(t, stream)) == "a<b@2 b<origin@1"
	})
	if !a.log.has("parent refused", "full") {
		t.Errorf("a's log never says its first parent was full")
	}
}

// TestFlashCrowd: a few dozen viewer hosts ask for one stream at once,
// the origin taking 2 relays and each relay 2: nearly everyone is first
// offered a parent that is full by the time it joins. Every viewer's
// first DESCRIBE succeeds, and the tree holds every relay within the
// capacities.
func TestFlashCrowd(t *testing.T) {
	const hosts, originCap, relayCap = 24, 2, 2
	origin := startOrigin(t)
	srv := startServer(t, tree.Repair, func(s *server.Server) { s.OriginCapacity = originCap })
	stream := "rtsp://" + origin.Addr() + "/test"
	viewers := make([]*mediator.Mediator, hosts)
	relays := make([]*testRelay, hosts)
	for i := range hosts {
		relays[i] = startRelay(t, fmt.Sprintf("r%02d", i), srv.Addr(), func(r *Relay) { r.Capacity = relayCap })
		viewers[i] = startViewerWith(t, relays[i].ControlAddr(), func(m *mediator.Mediator) {
			// Generous on a loaded machine: the bound under test is the
			// relay's, not the player's patience.
			m.DescribeTimeout = guard
			m.ResolveTimeout = guard
			// Leaves with no readers stay until the test has checked
			// the tree.
			m.Linger = time.Minute
		})
	}
	var wg sync.WaitGroup
	statuses := make([]int, hosts)
	took := make([]time.Duration, hosts)
	start := make(chan struct{})
	for i, v := range viewers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			t0 := time.Now()
			st := describeAll(t, v.Addr(), []string{"rtsp://" + v.Addr() + "/test?" + origin.Addr()}, 1)
			took[i] = time.Since(t0)
			for code := range st {
				statuses[i] = code
			}
		}()
	}
	close(start)
	wg.Wait()
	var failed []string
	var slowest time.Duration
	for i, st := range statuses {
		slowest = max(slowest, took[i])
		if st != 200 {
			failed = append(failed, fmt.Sprintf("r%02d: %d", i, st))
		}
	}
	refused, again := 0, 0
	for _, r := range relays {
		refused += r.log.count("parent refused")
		again += r.log.count("no parent with room: asking again")
	}
	t.Logf("%d viewers at once: slowest first DESCRIBE %v, %d joins refused and %d candidate rounds asked again on the way",
		hosts, slowest.Round(time.Millisecond), refused, again)
	if len(failed) > 0 {
		t.Fatalf("%d of %d first DESCRIBEs failed: %v", len(failed), hosts, failed)
	}
	snap := srv.tree(t, stream)
	kids := map[string]int{}
	depth := 0
	for _, n := range snap.Nodes {
		if n.Parent == "" {
			t.Errorf("%s has no parent", n.Node)
		}
		kids[n.Parent]++
		depth = max(depth, n.Level)
	}
	if len(snap.Nodes) != hosts {
		t.Errorf("tree holds %d relays, want %d: %s", len(snap.Nodes), hosts, shape(snap))
	}
	for p, n := range kids {
		if c := relayCap; p == "origin" && n > originCap || p != "origin" && n > c {
			t.Errorf("%s has %d children: %s", p, n, shape(snap))
		}
	}
	t.Logf("tree depth %d: %s", depth, shape(snap))
}

// TestNoRoomGivesUpClearly: the origin's one slot is taken by a passive
// relay, so no parent has room and none will. The viewer's first
// DESCRIBE waits for --join-attempts candidate rounds, then fails with
// an answer that says why and names the bound.
func TestNoRoomGivesUpClearly(t *testing.T) {
	origin := startOrigin(t)
	srv := startServer(t, tree.Repair, func(s *server.Server) { s.OriginCapacity = 1 })
	passive := startRelay(t, "p", srv.Addr(), func(r *Relay) { r.Willing = false })
	a := startRelay(t, "a", srv.Addr(), func(r *Relay) { r.JoinAttempts, r.JoinWait = 3, guard })
	viewerP := startViewer(t, passive.ControlAddr())
	viewerA := startViewer(t, a.ControlAddr())
	stream := "rtsp://" + origin.Addr() + "/test"
	testutil.Play(t, "rtsp://"+viewerP.Addr()+"/test?"+origin.Addr(), nil)
	waitUntil(t, "p joins under the origin", func() bool { return shape(srv.tree(t, stream)) == "p<origin@1" })

	_, err := lab.Dial("rtsp://"+viewerA.Addr()+"/test?"+origin.Addr(), lab.ReaderOptions{})
	if err == nil {
		t.Fatal("a's viewer played with no parent having room")
	}
	for _, want := range []string{"503", "no room in the overlay", "3 candidate rounds", "--join-attempts 3"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("DESCRIBE error %q does not say %q", err, want)
		}
	}
	if n := a.log.count("no parent with room: asking again"); n != 2 {
		t.Errorf("a asked again %d times, want 2 (3 rounds)", n)
	}
}

// TestRefusedNotForRoomFailsFast: the only candidate is not willing
// (its probe says so): nothing will change by asking again, so the
// resolve fails after one candidate round.
func TestRefusedNotForRoomFailsFast(t *testing.T) {
	origin := startRTSP(t)
	stream := streamOn(origin.Addr())
	cold := startProbeResponder(t, probe.Info{Node: "cold", Level: 1, Willing: false, FreeCapacity: 4})
	fs := startFakeServer(t, func(*wire.GetCandidates) []wire.Candidate {
		return []wire.Candidate{{Node: "cold", RTSP: startRTSP(t).Addr(), Probe: cold.Addr(), Level: 1, Capacity: 4}}
	})
	a := startRelay(t, "a", fs.Addr(), nil)
	m := dialMediator(t, a.ControlAddr())
	m.hello(startRTSP(t).Addr())
	r := m.call(&control.Resolve{Stream: stream, Mode: control.ModeJoin})
	if r.Error == "" || !strings.Contains(r.Error, "not willing") {
		t.Fatalf("resolve = %+v, want an error saying the candidate is not willing", r)
	}
	if n := slices.Index(fs.types(), wire.TypeGetCandidates); n < 0 || slices.Contains(fs.types()[n+1:], wire.TypeGetCandidates) {
		t.Errorf("server was asked for candidates %v, want once", fs.types())
	}
}

// TestAfterLossNothingOfferedFailsFast: a resolve after a loss that
// excludes the only way (the origin, restarting) and is offered nothing
// fails at once, so the mediator asks again without the exclusion; it
// did not wait for room through --join-attempts rounds (an island's
// players waited --join-wait, 3 s, after its origin came back).
func TestAfterLossNothingOfferedFailsFast(t *testing.T) {
	origin := startRTSP(t)
	stream := streamOn(origin.Addr())
	fs := startFakeServer(t, func(*wire.GetCandidates) []wire.Candidate { return nil })
	a := startRelay(t, "a", fs.Addr(), func(r *Relay) { r.JoinAttempts, r.JoinWait = 1000, time.Hour })
	m := dialMediator(t, a.ControlAddr())
	m.hello(startRTSP(t).Addr())
	r := m.call(&control.Resolve{Stream: stream, Mode: control.ModeAfterLoss, Exclude: []string{origin.Addr()}})
	if r.Error == "" {
		t.Fatalf("resolve = %+v, want an error: nothing was offered", r)
	}
	if n := slices.Index(fs.types(), wire.TypeGetCandidates); n < 0 || slices.Contains(fs.types()[n+1:], wire.TypeGetCandidates) {
		t.Errorf("server was asked for candidates %v, want once", fs.types())
	}
}
