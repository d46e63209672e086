package relay

import (
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ocm-overlay/ocm/internal/api"
	"github.com/ocm-overlay/ocm/internal/event"
	"github.com/ocm-overlay/ocm/internal/server"
	"github.com/ocm-overlay/ocm/internal/testutil"
	"github.com/ocm-overlay/ocm/internal/tree"
	"github.com/ocm-overlay/ocm/internal/wire"
)

func TestParseServers(t *testing.T) {
	tests := []struct {
		in   string
		want string // the list joined by " ", or the error's substring after "!"
	}{
		{"", ""},
		{"a:7070", "a:7070"},
		{":0", ":0"}, // no host: the address the relay connects from
		{"a:1,b:2,c:3", "a:1 b:2 c:3"},
		{" a:1 , b:2 ", "a:1 b:2"},
		{"a:1,,b:2", "!entry 2 is empty"},
		{"a:1,", "!entry 2 is empty"},
		{"a:1,b", `!entry 2, "b"`},
		{"a:1,b:", `!entry 2, "b:": missing port`},
		{"a:1,a:1", "!entry 2, a:1, is listed twice"},
	}
	for _, tt := range tests {
		got, err := ParseServers(tt.in)
		if msg, bad := strings.CutPrefix(tt.want, "!"); bad {
			if err == nil || !strings.Contains(err.Error(), msg) || !strings.Contains(err.Error(), tt.in) {
				t.Errorf("ParseServers(%q) = %v, %v; want an error naming %q and the list", tt.in, got, err, msg)
			}
			continue
		}
		if err != nil || strings.Join(got, " ") != tt.want {
			t.Errorf("ParseServers(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
		}
	}
	if err := (&Relay{Server: "a:1,,b:2"}).Start(); err == nil || !strings.Contains(err.Error(), "entry 2 is empty") {
		t.Errorf("Start with a malformed list: %v", err)
	}
}

// TestServerFailover: relays given --server A,B move to B when A goes,
// declaring their streams with their parents, so B rebuilds the tree
// without a switch at any mediator; they stay on B when A is back, and
// wrap around to A when B goes in turn.
func TestServerFailover(t *testing.T) {
	origin := startRTSP(t)
	stream := streamOn(origin.Addr())
	oneSlot := func(s *server.Server) { s.OriginCapacity = 1 }
	srvA := startServer(t, tree.Repair, oneSlot)
	srvB := startServer(t, tree.Repair, oneSlot)
	addrA := srvA.Addr()
	list := addrA + "," + srvB.Addr()

	a, _ := join(t, "a", list, stream, nil)
	b, _ := join(t, "b", list, stream, nil)
	const want = "a<origin@1 b<a@2"
	if got := shape(srvA.tree(t, stream)); got != want {
		t.Fatalf("tree on A = %q, want %q", got, want)
	}

	lost := time.Now()
	srvA.Close()
	waitShape(t, srvB, stream, want)
	t.Logf("B rebuilt the tree %v after A closed", time.Since(lost))
	for _, m := range []*member{a, b} {
		waitLink(t, m, "connected", srvB.Addr())
		m.med.noSwitch() // the mediators never noticed
	}

	// A comes back on its address: nobody moves back to it.
	srvA2 := startServer(t, tree.Repair, func(s *server.Server) { oneSlot(s); s.Listen = addrA })
	// Stay on B while A is up: a report round trip through each relay's
	// mediator (sync) gives a relay drifting back time to show it.
	for _, m := range []*member{a, b} {
		m.med.sync()
	}
	if got := shapeOrNone(t, srvA2, stream); got != "" {
		t.Fatalf("relays went back to A while B was up: %q", got)
	}

	// B goes: the list wraps around to A.
	srvB.Close()
	waitShape(t, srvA2, stream, want)
	for _, m := range []*member{a, b} {
		waitLink(t, m, "connected", addrA)
		m.med.noSwitch()
	}
}

// TestNoFailoverOnDuplicateNode: a server that refuses the relay's node
// id (another connection holds it) is up: the relay keeps asking it, and
// never moves to the next server for that.
func TestNoFailoverOnDuplicateNode(t *testing.T) {
	origin := startRTSP(t)
	stream := streamOn(origin.Addr())
	srvA := startServer(t, tree.Repair, nil)
	srvB := startServer(t, tree.Repair, nil)
	join(t, "a", srvA.Addr(), stream, nil)
	startRelay(t, "a", srvA.Addr()+","+srvB.Addr(), func(r *Relay) { r.RTSP = "127.0.0.1:6554" })
	var onB []api.Node
	waitUntil(t, "a second refusal on A, or the relay on B", func() bool {
		if srvB.getJSON(t, "/api/v1/nodes", &onB); len(onB) > 0 {
			return true
		}
		n := 0
		for _, e := range testutil.Find[event.Rejected](t, srvA.events) {
			if e.Node == "a" && e.Code == wire.CodeDuplicateNode {
				n++
			}
		}
		return n >= 2
	})
	if len(onB) > 0 {
		t.Fatalf("the refused relay moved to B: %+v", onB)
	}
}

// TestServerFailoverUnanswered: a server that keeps the connection open
// but stops answering (frozen, or the path to it black-holed) is left
// after the heartbeats it does not answer, for the next in the list.
func TestServerFailoverUnanswered(t *testing.T) {
	origin := startRTSP(t)
	stream := streamOn(origin.Addr())
	mod := func(s *server.Server) { s.OriginCapacity, s.Heartbeat = 1, 250*time.Millisecond }
	srvA := startServer(t, tree.Repair, mod)
	srvB := startServer(t, tree.Repair, mod)
	path := startFreezer(t, srvA.Addr())
	list := path.addr() + "," + srvB.Addr()

	a, _ := join(t, "a", list, stream, nil)
	b, _ := join(t, "b", list, stream, nil)
	const want = "a<origin@1 b<a@2"
	if got := shape(srvA.tree(t, stream)); got != want {
		t.Fatalf("tree on A = %q, want %q", got, want)
	}
	path.freeze()
	frozen := time.Now()
	waitShape(t, srvB, stream, want)
	t.Logf("B rebuilt the tree %v after the path to A froze (heartbeat %v)", time.Since(frozen), srvA.Heartbeat)
	for _, m := range []*member{a, b} {
		m.log.wait(t, "does not answer heartbeats")
		waitLink(t, m, "connected", srvB.Addr())
		m.med.noSwitch()
	}
}

// freezer forwards TCP connections to a server until frozen; from then
// on it drops what either side sends and keeps the client's connection
// open even when the server closes its own: a server that hangs without
// closing anything.
type freezer struct {
	ln     net.Listener
	frozen atomic.Bool
}

func startFreezer(t *testing.T, target string) *freezer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &freezer{ln: ln}
	testutil.Serve(t, ln, 0, func(c net.Conn) {
		s, err := net.Dial("tcp", target)
		if err != nil {
			return
		}
		fromServer := make(chan struct{})
		go func() {
			defer close(fromServer)
			f.pipe(c, s)
			if !f.frozen.Load() { // a frozen server closes nothing
				c.Close()
			}
		}()
		f.pipe(s, c) // until the client closes (or the test ends)
		s.Close()
		<-fromServer
	})
	return f
}

func (f *freezer) addr() string { return f.ln.Addr().String() }
func (f *freezer) freeze()      { f.frozen.Store(true) }

// pipe copies from src to dst until either fails, dropping while frozen.
func (f *freezer) pipe(dst, src net.Conn) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if err != nil {
			return
		}
		if f.frozen.Load() {
			continue
		}
		if _, err := dst.Write(buf[:n]); err != nil {
			return
		}
	}
}

// waitShape polls ts's tree of stream until it has shape want.
func waitShape(t *testing.T, ts *testServer, stream, want string) {
	t.Helper()
	deadline := time.Now().Add(guard)
	for {
		got := shapeOrNone(t, ts, stream)
		if got == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("tree = %q, want %q within %v", got, want, guard)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// shapeOrNone is the shape of ts's tree of stream, "" if it has none.
func shapeOrNone(t *testing.T, ts *testServer, stream string) string {
	t.Helper()
	var snap api.Tree
	if ts.getJSON(t, "/api/v1/tree?stream="+stream, &snap) != http.StatusOK {
		return ""
	}
	return shape(snap)
}

// waitLink waits for m's server link event in state to server.
func waitLink(t *testing.T, m *member, state, server string) {
	t.Helper()
	deadline := time.Now().Add(guard)
	for {
		for _, e := range testutil.Find[event.ServerLink](t, m.events) {
			if e.State == state && e.Server == server {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: no server link %s to %s within %v: %v", m.NodeID, state, server, guard,
				testutil.Find[event.ServerLink](t, m.events))
		}
		time.Sleep(20 * time.Millisecond)
	}
}
