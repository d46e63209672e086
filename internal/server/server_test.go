package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ocm-overlay/ocm/internal/api"
	"github.com/ocm-overlay/ocm/internal/event"
	"github.com/ocm-overlay/ocm/internal/testutil"

	"github.com/ocm-overlay/ocm/internal/tree"
	"github.com/ocm-overlay/ocm/internal/wire"
)

// The wire and tree packages spell the shared constants the same way;
// the server passes them through.
func TestSharedConstants(t *testing.T) {
	pairs := [][2]string{
		{wire.OriginID, tree.Origin},
		{wire.ReasonParentFailed, tree.ReasonParentFailed},
		{wire.ReasonParentLeft, tree.ReasonParentLeft},
		{wire.ReasonAncestorFailed, tree.ReasonAncestorFailed},
		{wire.ReasonParentMissing, tree.ReasonParentMissing},
		{wire.ReasonRejected, tree.ReasonRejected},
		{wire.ReasonCapacity, tree.ReasonCapacity},
		{wire.ReasonOrphaned, tree.ReasonOrphaned},
		{wire.RecoveryRepair, string(tree.Repair)},
		{wire.RecoveryDrop, string(tree.Drop)},
		{wire.RecoveryReconnect, string(tree.Reconnect)},
		{wire.RecoveryGradual, string(tree.Gradual)},
	}
	for _, p := range pairs {
		if p[0] != p[1] {
			t.Errorf("wire %q != tree %q", p[0], p[1])
		}
	}
}

func TestFillHost(t *testing.T) {
	tests := []struct{ addr, remote, want string }{
		{":0", "10.1.2.3:40000", "10.1.2.3:0"},
		{"0.0.0.0:0", "10.1.2.3:40000", "10.1.2.3:0"},
		{"[::]:0", "[fe80::1]:40000", "[fe80::1]:0"},
		{"192.168.1.5:0", "10.1.2.3:40000", "192.168.1.5:0"},
		{"viewer7:0", "10.1.2.3:40000", "viewer7:0"},
		{"", "10.1.2.3:40000", ""},
	}
	for _, tt := range tests {
		if got := fillHost(tt.addr, tt.remote); got != tt.want {
			t.Errorf("fillHost(%q, %q) = %q, want %q", tt.addr, tt.remote, got, tt.want)
		}
	}
}

func TestRelayAddressFromConnection(t *testing.T) {
	ts := startServer(t, nil)
	a := newRelay(t, "a", 2)
	a.rtsp = ":9554"
	a.dial(ts.Addr(), "")
	a.mustJoin(stream, "origin")
	b := newRelay(t, "b", 2).dial(ts.Addr(), "")
	cs := b.candidates(stream)
	if len(cs) != 2 || cs[1].Node != "a" || cs[1].RTSP != "127.0.0.1:9554" {
		t.Fatalf("candidates %+v", cs)
	}
}

// The relay side of the wire package works against the server.
func TestWireClient(t *testing.T) {
	ts := startServer(t, nil)
	ctx := context.Background()
	// The RTSP address a relay announces must name a port; this one is
	// bound, though the server never connects to it.
	mediator, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { mediator.Close() })
	dial := func(id string) *wire.Client {
		c, err := wire.Dial("tcp", ts.Addr(), guard)
		if err != nil {
			t.Fatal(err)
		}
		cl := wire.NewClient(c)
		t.Cleanup(func() { cl.Close() })
		if _, err := cl.Hello(ctx, &wire.Hello{Node: id, RTSP: mediator.Addr().String(), Willing: true, Capacity: 1}); err != nil {
			t.Fatal(err)
		}
		return cl
	}
	a, b := dial("a"), dial("b")
	cs, err := a.Candidates(ctx, stream, nil)
	if err != nil || len(cs) != 1 || cs[0].Node != wire.OriginID {
		t.Fatalf("candidates %+v %v", cs, err)
	}
	if lvl, err := a.Join(ctx, stream, wire.OriginID); err != nil || lvl != 1 {
		t.Fatalf("join %d %v", lvl, err)
	}
	if lvl, err := b.Join(ctx, stream, "a"); err != nil || lvl != 2 {
		t.Fatalf("join %d %v", lvl, err)
	}
	var werr *wire.Error
	if _, err := a.Join(ctx, stream, "b"); !errors.As(err, &werr) || werr.Code != wire.CodeCycle {
		t.Fatalf("cycle join: %v", err)
	}
	a.Close()
	m := <-b.Pushes()
	if rc, ok := m.Body.(*wire.Reconnect); !ok || rc.Reason != wire.ReasonParentFailed {
		t.Fatalf("push %+v", m)
	}
}

func TestWelcome(t *testing.T) {
	ts := startServer(t, func(s *Server) { s.Recovery = tree.Gradual; s.ReportInterval = 3 * time.Second })
	r := newRelay(t, "a", 2).dial(ts.Addr(), "")
	want := &wire.Welcome{Node: "a", Recovery: "gradual", ReportMs: 3000, HeartbeatMs: time.Hour.Milliseconds(), Server: "ocm-server",
		HandoverMs: DefaultHandoverTimeout.Milliseconds(), ReconnectStepMs: DefaultReconnectStep.Milliseconds()}
	if !reflect.DeepEqual(r.welcome, want) {
		t.Fatalf("welcome %+v, want %+v", r.welcome, want)
	}
}

// Relays join in turn by taking the first candidate: the origin fills up,
// then level 1 by load, then level 2; candidates never include a full
// node; a relay is never offered its own descendants.
func TestJoinInTurn(t *testing.T) {
	ts := startServer(t, func(s *Server) { s.OriginCapacity = 2 })
	var relays []*relay
	var chosen []string
	for i := 0; i < 8; i++ {
		r := newRelay(t, fmt.Sprintf("r%d", i), 2).dial(ts.Addr(), "")
		for _, c := range r.candidates(stream) {
			if c.Node != wire.OriginID && c.Clients >= c.Capacity {
				t.Fatalf("%s offered full %s (%d/%d)", r.id, c.Node, c.Clients, c.Capacity)
			}
			if c.Node == wire.OriginID && c.RTSP != "127.0.0.1:5554" {
				t.Fatalf("origin candidate address %q", c.RTSP)
			}
		}
		chosen = append(chosen, r.joinBest(stream))
		relays = append(relays, r)
		ts.validate(t)
	}
	if got, want := strings.Join(chosen, " "), "origin origin r0 r1 r0 r1 r2 r3"; got != want {
		t.Fatalf("parents %q, want %q", got, want)
	}
	if got, want := ts.shape(t, stream), "r0<origin@1 r1<origin@1 r2<r0@2 r3<r1@2 r4<r0@2 r5<r1@2 r6<r2@3 r7<r3@3"; got != want {
		t.Fatalf("shape %q\nwant  %q", got, want)
	}
	// r0's descendants (r2, r4, r6) are never offered to r0.
	for _, c := range relays[0].candidates(stream) {
		if c.Node == "r2" || c.Node == "r4" || c.Node == "r6" {
			t.Fatalf("r0 offered its descendant %s", c.Node)
		}
	}
	// Exclusions are honoured, including the origin.
	for _, c := range relays[7].candidates(stream, "origin", "r4") {
		if c.Node == "origin" || c.Node == "r4" {
			t.Fatalf("excluded %s offered", c.Node)
		}
	}
	for _, r := range relays {
		if got := r.reconnects(); len(got) != 0 {
			t.Fatalf("%s got reconnects %v", r.id, got)
		}
	}
}

func TestJoinRejectedConnectionKept(t *testing.T) {
	ts := startServer(t, func(s *Server) { s.OriginCapacity = 1 })
	a := newRelay(t, "a", 1).dial(ts.Addr(), "")
	b := newRelay(t, "b", 1).dial(ts.Addr(), "")
	c := newRelay(t, "c", 1).dial(ts.Addr(), "")
	p := newRelay(t, "p", 3)
	p.willing = false
	p.dial(ts.Addr(), "")
	a.mustJoin(stream, "origin")
	b.mustJoin(stream, "a")
	tests := []struct {
		name   string
		r      *relay
		s      string
		parent string
		code   string
	}{
		{"cycle", a, stream, "b", wire.CodeCycle},
		{"own parent", a, stream, "a", wire.CodeCycle},
		{"full relay", c, stream, "a", wire.CodeFull},
		{"full origin", c, stream, "origin", wire.CodeFull},
		{"unknown parent", c, stream, "nobody", wire.CodeUnknownParent},
		{"parent not on stream", c, stream, "p", wire.CodeNotActive},
		{"stream nobody has", c, "rtsp://127.0.0.1:5554/other", "a", wire.CodeNotActive},
		{"bad stream key to origin", c, "not-a-url", "origin", wire.CodeBadStream},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if code := tt.r.join(tt.s, tt.parent); code != tt.code {
				t.Fatalf("code %q, want %q", code, tt.code)
			}
			tt.r.sync() // still served
			ts.validate(t)
		})
	}
	if got, want := ts.shape(t, stream), "a<origin@1 b<a@2"; got != want {
		t.Fatalf("shape %q, want %q", got, want)
	}
	// left: ack, then an error for a stream it is not in.
	if m := b.request(&wire.Left{Stream: stream}); m.Type != wire.TypeAck {
		t.Fatalf("left answered %s", m.Type)
	}
	if m := b.request(&wire.Left{Stream: stream}); m.Type != wire.TypeError || m.Body.(*wire.Error).Code != wire.CodeNotInStream {
		t.Fatalf("second left answered %+v", m.Body)
	}
	if m := b.request(&wire.GetCandidates{Stream: "nope"}); m.Body.(*wire.Error).Code != wire.CodeBadStream {
		t.Fatalf("candidates for a bad key answered %+v", m.Body)
	}
}

// A relay whose connection drops in the middle of a message fails at
// once: under repair its children are told to reconnect, its grandchildren
// are not, and the subtree comes back whole when the child rejoins.
func TestDroppedMidMessageRepairs(t *testing.T) {
	ts := startServer(t, nil)
	a := newRelay(t, "a", 2).dial(ts.Addr(), "")
	b := newRelay(t, "b", 2).dial(ts.Addr(), "")
	c := newRelay(t, "c", 2).dial(ts.Addr(), "")
	d := newRelay(t, "d", 2).dial(ts.Addr(), "")
	e := newRelay(t, "e", 2).dial(ts.Addr(), "")
	a.mustJoin(stream, "origin")
	b.mustJoin(stream, "a")
	c.mustJoin(stream, "a")
	d.mustJoin(stream, "b")
	e.mustJoin(stream, "origin")

	// Half a joined line, then the connection dies.
	if _, err := io.WriteString(a.nc, `{"v":1,"type":"joined","stream":"`); err != nil {
		t.Fatal(err)
	}
	a.c.Close()

	for _, r := range []*relay{b, c} {
		rc := r.waitReconnect()
		if rc.Stream != stream || rc.Reason != wire.ReasonParentFailed || rc.Target != "" {
			t.Fatalf("%s got %+v", r.id, rc)
		}
	}
	for _, r := range []*relay{d, e} {
		if got := r.reconnects(); len(got) != 0 {
			t.Fatalf("%s told %v", r.id, got)
		}
	}
	ts.validate(t)
	if got, want := ts.shape(t, stream), "b<-@2 c<-@2 d<b@3 e<origin@1"; got != want {
		t.Fatalf("shape %q, want %q", got, want)
	}
	// b may not pick its own child; it picks e, and d follows.
	for _, cand := range b.candidates(stream) {
		if cand.Node == "d" {
			t.Fatal("b offered its child d")
		}
	}
	b.mustJoin(stream, "e")
	c.mustJoin(stream, "origin")
	ts.validate(t)
	if got, want := ts.shape(t, stream), "b<e@2 c<origin@1 d<b@3 e<origin@1"; got != want {
		t.Fatalf("shape %q, want %q", got, want)
	}
	var failed bool
	for _, ev := range testutil.Find[event.NodeFailed](t, ts.events) {
		if ev.Node == "a" && ev.Cause == "closed mid-message" {
			failed = true
		}
	}
	if !failed {
		t.Fatalf("no node_failed event for a:\n%s", ts.events.String())
	}
}

func TestPolicies(t *testing.T) {
	tests := []struct {
		pol  tree.Policy
		want map[string][]string // reasons each relay receives
	}{
		{tree.Repair, map[string][]string{"b": {"parent_failed"}, "c": nil}},
		{tree.Drop, map[string][]string{"b": nil, "c": nil}},
		{tree.Reconnect, map[string][]string{"b": {"parent_failed"}, "c": {"ancestor_failed"}}},
		{tree.Gradual, map[string][]string{"b": {"parent_failed"}, "c": {"ancestor_failed"}}},
	}
	for _, tt := range tests {
		t.Run(string(tt.pol), func(t *testing.T) {
			ts := startServer(t, func(s *Server) { s.Recovery = tt.pol; s.ReconnectStep = time.Millisecond })
			rs := ts.chain(t, "a", "b", "c")
			a, b, c := rs[0], rs[1], rs[2]
			a.c.Close()
			waitEvent[event.NodeFailed](t, ts, "a")
			for _, r := range []*relay{b, c} {
				want := tt.want[r.id]
				if len(want) > 0 {
					if rc := r.waitReconnect(); rc.Reason != want[0] {
						t.Fatalf("%s: reason %q, want %q", r.id, rc.Reason, want[0])
					}
				}
			}
			// Nothing more arrives, even after the gradual steps.
			ts.check(t, func(st *state) {})
			for _, r := range []*relay{b, c} {
				if got := r.reconnects(); len(got) != 0 {
					t.Fatalf("%s: extra reconnects %v", r.id, got)
				}
			}
			ts.validate(t)
		})
	}
}

// Under gradual, a member of a later group that rejoined by itself before
// its step is not told.
func TestGradualSkipsRejoined(t *testing.T) {
	ts := startServer(t, func(s *Server) { s.Recovery = tree.Gradual; s.ReconnectStep = time.Hour })
	rs := ts.chain(t, "a", "b", "c")
	a, b, c := rs[0], rs[1], rs[2]
	a.c.Close()
	if rc := b.waitReconnect(); rc.Reason != wire.ReasonParentFailed {
		t.Fatalf("b: %+v", rc)
	}
	c.mustJoin(stream, "origin")
	ts.check(t, func(st *state) {
		if len(st.cascades) != 1 {
			t.Fatalf("cascades %+v", st.cascades)
		}
		st.expire(st.cascades[0].due) // its step is over
		if len(st.cascades) != 0 {
			t.Fatalf("cascades left: %+v", st.cascades)
		}
	})
	if got := c.reconnects(); len(got) != 0 {
		t.Fatalf("c told %v after rejoining", got)
	}
}

// Missed heartbeats fail a node (clock moved, sweep run); a node that kept
// talking survives.
func TestHeartbeatMissed(t *testing.T) {
	ts := startServer(t, func(s *Server) { s.Heartbeat = time.Minute })
	rs := ts.chain(t, "a", "b")
	a, b := rs[0], rs[1]

	ts.clock.Advance(2 * time.Minute)
	ts.sweep(t)
	b.sync()
	ts.clock.Advance(2 * time.Minute) // a silent 4 min, b 2 min
	ts.sweep(t)

	if rc := b.waitReconnect(); rc.Reason != wire.ReasonParentFailed {
		t.Fatalf("b: %+v", rc)
	}
	if e := a.waitClosed(); e != nil {
		t.Fatalf("a: unexpected error %+v", e)
	}
	var nodes []api.Node
	ts.getJSON(t, "/api/v1/nodes", &nodes)
	if len(nodes) != 1 || nodes[0].ID != "b" {
		t.Fatalf("nodes %+v", nodes)
	}
	ts.validate(t)
}

// After a restart the orphans waiting for a parent that never comes back
// are told once the grace is over (the pending grace: see
// TestHelloUnknownParent).
func TestOrphanGrace(t *testing.T) {
	ts := startServer(t, func(s *Server) { s.PendingGrace = time.Minute })
	b := newRelay(t, "b", 2)
	b.parents[stream] = "gone"
	b.dial(ts.Addr(), "")
	ts.sweep(t)
	if got := b.reconnects(); len(got) != 0 {
		t.Fatalf("told before the grace: %v", got)
	}
	ts.clock.Advance(2 * time.Minute)
	b.sync() // keeps b alive for the heartbeat check
	ts.sweep(t)
	if rc := b.waitReconnect(); rc.Reason != wire.ReasonParentMissing {
		t.Fatalf("b: %+v", rc)
	}
}

func TestToken(t *testing.T) {
	ts := startServer(t, func(s *Server) { s.Token = "s3cret" })
	tests := []struct {
		name, token string
		ok          bool
	}{
		{"wrong", "guess", false},
		{"missing", "", false},
		{"right", "s3cret", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newRelay(t, "n-"+tt.name, 1)
			m, err := r.connect(ts.Addr(), tt.token)
			if err != nil {
				t.Fatal(err)
			}
			if tt.ok {
				if m.Type != wire.TypeWelcome {
					t.Fatalf("got %s %+v", m.Type, m.Body)
				}
				var nodes []api.Node
				ts.getJSON(t, "/api/v1/nodes", &nodes)
				if len(nodes) != 1 || nodes[0].ID != r.id {
					t.Fatalf("nodes %+v", nodes)
				}
				return
			}
			e, ok := m.Body.(*wire.Error)
			if !ok || e.Code != wire.CodeUnauthorized || m.Re != 1 {
				t.Fatalf("got %s %+v re=%d", m.Type, m.Body, m.Re)
			}
			if e := r.waitClosed(); e != nil {
				t.Fatalf("more after the error: %+v", e)
			}
		})
	}
	t.Run("client sees ErrBadToken", func(t *testing.T) {
		c, err := wire.Dial("tcp", ts.Addr(), guard)
		if err != nil {
			t.Fatal(err)
		}
		cl := wire.NewClient(c)
		defer cl.Close()
		_, err = cl.Hello(context.Background(), &wire.Hello{Node: "v", Token: "x"})
		var werr *wire.Error
		if !errors.Is(err, wire.ErrBadToken) || !errors.As(err, &werr) || werr.Code != wire.CodeUnauthorized {
			t.Fatalf("err %v", err)
		}
	})
}

// Garbage, oversized lines, wrong versions and strangers are rejected
// with a clear error while a good relay keeps being served.
func TestBadInputOthersServed(t *testing.T) {
	ts := startServer(t, func(s *Server) { s.MaxLine = 4096 })
	good := newRelay(t, "good", 2).dial(ts.Addr(), "")
	good.mustJoin(stream, "origin")

	tests := []struct {
		name      string
		hello     bool   // say hello first
		send      string // raw bytes
		code      string
		closed    bool
		msgSubstr string
	}{
		{"garbage first", false, "GET / HTTP/1.0\r\n\r\n", wire.CodeBadRequest, true, "malformed"},
		{"oversized first", false, strings.Repeat("x", 5000) + "\n", wire.CodeLineTooLong, true, "4096"},
		{"wrong version first", false, `{"v":2,"type":"hello","node":"x"}` + "\n", wire.CodeVersion, true, "v=2"},
		{"not a hello first", false, `{"v":1,"type":"heartbeat","id":1}` + "\n", wire.CodeExpectedHello, true, "hello"},
		{"invalid hello", false, `{"v":1,"type":"hello","id":1,"node":"origin"}` + "\n", wire.CodeBadRequest, true, "reserved"},
		{"garbage later", true, "}}}\n", wire.CodeBadRequest, false, "malformed"},
		{"invalid later", true, `{"v":1,"type":"joined","id":5,"stream":"s"}` + "\n", wire.CodeBadRequest, false, "parent"},
		{"unknown type later", true, `{"v":1,"type":"teleport","id":5}` + "\n", wire.CodeUnknownType, false, "teleport"},
		{"server-only type later", true, `{"v":1,"type":"welcome","id":5,"node":"x","recovery":"repair","report_ms":1,"heartbeat_ms":1}` + "\n", wire.CodeUnexpected, false, "welcome"},
		{"second hello", true, `{"v":1,"type":"hello","id":5,"node":"x2"}` + "\n", wire.CodeUnexpected, false, "hello"},
		{"oversized later", true, strings.Repeat("y", 5000) + "\n", wire.CodeLineTooLong, true, "4096"},
		{"wrong version later", true, `{"v":7,"type":"heartbeat"}` + "\n", wire.CodeVersion, true, "v=7"},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			nc, c := rawConn(t, ts.Addr())
			if tt.hello {
				if _, err := c.Send(&wire.Hello{Node: fmt.Sprintf("bad%d", i)}); err != nil {
					t.Fatal(err)
				}
				if m, err := c.ReadMsg(); err != nil || m.Type != wire.TypeWelcome {
					t.Fatalf("hello: %+v %v", m, err)
				}
			}
			if _, err := io.WriteString(nc, tt.send); err != nil {
				t.Fatal(err)
			}
			m, err := c.ReadMsg()
			if err != nil {
				t.Fatalf("no error message: %v", err)
			}
			e, ok := m.Body.(*wire.Error)
			if !ok || e.Code != tt.code || !strings.Contains(e.Message, tt.msgSubstr) {
				t.Fatalf("got %s %+v, want code %s mentioning %q", m.Type, m.Body, tt.code, tt.msgSubstr)
			}
			if tt.closed {
				if _, err := c.ReadMsg(); err == nil {
					t.Fatal("connection kept open")
				}
			} else {
				if _, err := c.Send(&wire.Heartbeat{}); err != nil {
					t.Fatal(err)
				}
				if m, err := c.ReadMsg(); err != nil || m.Type != wire.TypeHeartbeat {
					t.Fatalf("not served after bad input: %+v %v", m, err)
				}
			}
			// The good relay is still served.
			if cs := good.candidates(stream); len(cs) == 0 {
				t.Fatal("good relay got no candidates")
			}
		})
	}
	if got := good.reconnects(); len(got) != 0 {
		t.Fatalf("good relay told %v", got)
	}
	if got := ts.shape(t, stream); got != "good<origin@1" {
		t.Fatalf("shape %q", got)
	}
	var metrics strings.Builder
	resp, err := http.Get(ts.url("/metrics"))
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(&metrics, resp.Body)
	resp.Body.Close()
	if !strings.Contains(metrics.String(), `ocm_rejected_inputs_total{code="line_too_long"} 2`) {
		t.Fatalf("metrics:\n%s", metrics.String())
	}
}

// A server restarted with relays saying hello again (in any order, here
// children first) rebuilds the same tree and tells nobody anything.
func TestRestartRebuilds(t *testing.T) {
	ts := startServer(t, func(s *Server) { s.OriginCapacity = 2 })
	var relays []*relay
	for i := 0; i < 7; i++ {
		r := newRelay(t, fmt.Sprintf("r%d", i), 2).dial(ts.Addr(), "")
		r.joinBest(stream)
		if i < 3 {
			r.joinBest("rtsp://127.0.0.1:5554/second")
		}
		relays = append(relays, r)
	}
	before := ts.shape(t, stream)
	before2 := ts.shape(t, "rtsp://127.0.0.1:5554/second")
	ts.Close()
	for _, r := range relays { // a stopping server tells nobody anything
		for {
			m, err := r.next()
			if err != nil {
				break
			}
			if m.Type == wire.TypeReconnect {
				t.Fatalf("%s told %+v by a stopping server", r.id, m.Body)
			}
		}
	}

	ts2 := startServer(t, func(s *Server) { s.OriginCapacity = 2 })
	for i := len(relays) - 1; i >= 0; i-- {
		relays[i].dial(ts2.Addr(), "")
	}
	for _, r := range relays {
		if got := r.reconnects(); len(got) != 0 {
			t.Fatalf("%s told %v after the restart", r.id, got)
		}
	}
	ts2.validate(t)
	if got := ts2.shape(t, stream); got != before {
		t.Fatalf("rebuilt %q\nwant    %q", got, before)
	}
	if got := ts2.shape(t, "rtsp://127.0.0.1:5554/second"); got != before2 {
		t.Fatalf("rebuilt %q\nwant    %q", got, before2)
	}
	var snap api.Tree
	ts2.getJSON(t, "/api/v1/tree?stream="+stream, &snap)
	for _, m := range snap.Nodes {
		if !m.Attached {
			t.Fatalf("%s not attached", m.Node)
		}
	}
}

// TestDuplicateNodeRefused: a hello with the node id of a live session
// (a token holder impersonating a relay) is refused and closed, again and
// again, and the legitimate relay never notices: same connection, same
// tree, its child told nothing.
func TestDuplicateNodeRefused(t *testing.T) {
	// Each refusal first waits for the live connection to end; not long
	// here, as it never does.
	ts := startServer(t, func(s *Server) { s.duplicateGrace = 20 * time.Millisecond })
	rs := ts.chain(t, "a", "b")
	a, b := rs[0], rs[1]
	const attempts = 20
	for i := range attempts {
		imp := newRelay(t, "a", 100)
		imp.rtsp = "127.0.0.1:6666"
		reply, err := imp.connect(ts.Addr(), "")
		if err != nil {
			t.Fatalf("attempt %d: %v", i, err)
		}
		e, ok := reply.Body.(*wire.Error)
		if !ok || e.Code != wire.CodeDuplicateNode || reply.Re == 0 {
			t.Fatalf("attempt %d: impostor's hello answered by %s %+v, want error %s", i, reply.Type, reply.Body, wire.CodeDuplicateNode)
		}
		if i == 0 {
			t.Logf("refusal: %s", e.Message)
			if !strings.Contains(e.Message, `"a"`) {
				t.Errorf("refusal %q does not name the node id", e.Message)
			}
		}
		if last := imp.waitClosed(); last != nil {
			t.Fatalf("attempt %d: more after the refusal: %+v", i, last)
		}
	}
	a.sync() // the first connection still works
	if len(a.pushed) != 0 {
		t.Fatalf("a was sent %+v", a.pushed)
	}
	if got := b.reconnects(); len(got) != 0 {
		t.Fatalf("b told %v", got)
	}
	if got := ts.shape(t, stream); got != "a<origin@1 b<a@2" {
		t.Fatalf("shape %q", got)
	}
	var nodes []api.Node
	ts.getJSON(t, "/api/v1/nodes", &nodes)
	for _, n := range nodes {
		if n.ID == "a" && (n.RTSP != a.rtsp || n.Capacity != 2) {
			t.Fatalf("a's entry changed: %+v", n)
		}
	}
	for _, ev := range ts.events.Events(t) {
		switch ev.(type) {
		case event.NodeReplaced, event.NodeFailed:
			t.Fatalf("event %T %+v", ev, ev)
		}
	}
	body := ts.metrics(t)
	if want := fmt.Sprintf(`ocm_rejected_inputs_total{code="duplicate_node"} %d`, attempts); !strings.Contains(body, want) {
		t.Errorf("metrics lack %q:\n%s", want, body)
	}
	ts.validate(t)
}

// A relay that closes its connection and says hello again at once (its
// reconnect) is welcomed, never refused as a duplicate: the server waits
// for the old connection's close it has not read yet. Whether the node
// failed in between or its edges were kept depends on which the server
// read first; its hello declares them again either way.
func TestReconnectNotRefused(t *testing.T) {
	ts := startServer(t, nil)
	a := newRelay(t, "a", 2).dial(ts.Addr(), "")
	a.mustJoin(stream, "origin")
	for i := range 10 {
		a.c.Close()
		reply, err := a.connect(ts.Addr(), "")
		if err != nil {
			t.Fatalf("reconnect %d: %v", i, err)
		}
		if _, ok := reply.Body.(*wire.Welcome); !ok {
			t.Fatalf("reconnect %d answered by %s %+v", i, reply.Type, reply.Body)
		}
	}
	if got := ts.shape(t, stream); got != "a<origin@1" {
		t.Fatalf("shape %q", got)
	}
	ts.validate(t)
}

func TestReport(t *testing.T) {
	ts := startServer(t, nil)
	a := newRelay(t, "a", 2).dial(ts.Addr(), "")
	b := newRelay(t, "b", 2).dial(ts.Addr(), "")
	a.mustJoin(stream, "origin")
	no := false
	if _, err := a.c.Send(&wire.Report{CPU: 0.4, Willing: &no, Clients: 2, Streams: []wire.StreamReport{
		{Stream: stream, Parent: "origin", Level: 1, Readers: 2, Loss: 0.02, Bitrate: 1e6}}}); err != nil {
		t.Fatal(err)
	}
	a.sync()
	for _, c := range b.candidates(stream) {
		if c.Node == "a" {
			t.Fatal("unwilling a still offered")
		}
	}
	var snap api.Tree
	ts.getJSON(t, "/api/v1/tree?stream="+stream, &snap)
	if m := snap.Nodes[0]; m.Readers != 2 || m.Loss != 0.02 || m.Bitrate != 1e6 {
		t.Fatalf("member %+v", m)
	}
	var nodes []api.Node
	ts.getJSON(t, "/api/v1/nodes", &nodes)
	if nodes[0].CPU != 0.4 || nodes[0].Willing || nodes[0].LastReport == nil || nodes[0].Remote == "" {
		t.Fatalf("node %+v", nodes[0])
	}
}

func TestHTTPAPI(t *testing.T) {
	ts := startServer(t, nil)
	rs := ts.chain(t, "a", "b", "c")
	a, b, c := rs[0], rs[1], rs[2]

	var streams []api.Stream
	ts.getJSON(t, "/api/v1/streams", &streams)
	if len(streams) != 1 || streams[0].Stream != stream || streams[0].Nodes != 3 || streams[0].Depth != 3 || streams[0].Origin != "127.0.0.1:5554" {
		t.Fatalf("streams %+v", streams)
	}
	var trees []api.Tree
	ts.getJSON(t, "/api/v1/tree", &trees)
	if len(trees) != 1 || len(trees[0].Nodes) != 3 {
		t.Fatalf("trees %+v", trees)
	}
	if code := ts.getJSON(t, "/api/v1/tree?stream=nope", nil); code != http.StatusNotFound {
		t.Fatalf("unknown tree: %d", code)
	}

	// Operator reconnect of b's subtree, with a suggested parent for b.
	var sent api.Sent
	if code := ts.post(t, "/api/v1/reconnect?node=b&subtree=1&to=origin", &sent); code != http.StatusOK || len(sent.Sent) != 2 {
		t.Fatalf("reconnect: %d %+v", code, sent)
	}
	rc := b.waitReconnect()
	if rc.Reason != wire.ReasonOperator || rc.Target != "origin" || rc.TargetRTSP != "127.0.0.1:5554" {
		t.Fatalf("b got %+v", rc)
	}
	if rc := c.waitReconnect(); rc.Reason != wire.ReasonOperator || rc.Target != "" {
		t.Fatalf("c got %+v", rc)
	}
	if got := a.reconnects(); len(got) != 0 {
		t.Fatalf("a told %v", got)
	}
	for path, want := range map[string]int{
		"/api/v1/reconnect?node=zz":          http.StatusNotFound,
		"/api/v1/reconnect":                  http.StatusBadRequest,
		"/api/v1/reconnect?node=a&to=zz":     http.StatusNotFound,
		"/api/v1/reconnect?node=a&stream=zz": http.StatusNotFound,
		"/api/v1/policy?recovery=magic":      http.StatusBadRequest,
		"/api/v1/kick?node=zz":               http.StatusNotFound,
	} {
		if code := ts.post(t, path, nil); code != want {
			t.Errorf("POST %s: %d, want %d", path, code, want)
		}
	}
	if code := ts.getJSON(t, "/api/v1/reconnect?node=a", nil); code != http.StatusMethodNotAllowed {
		t.Errorf("GET reconnect: %d", code)
	}

	// Policy.
	var pol api.Policy
	ts.post(t, "/api/v1/policy?recovery=drop", &pol)
	if pol.Recovery != "drop" || pol.OriginCapacity != DefaultOriginCapacity || pol.MaxCandidates != DefaultMaxCandidates {
		t.Fatalf("policy %+v", pol)
	}
	d := newRelay(t, "d", 1).dial(ts.Addr(), "")
	if d.welcome.Recovery != "drop" {
		t.Fatalf("welcome after policy change: %+v", d.welcome)
	}

	// Drain.
	ts.post(t, "/api/v1/drain?node=c", nil)
	for {
		m, err := c.next()
		if err != nil {
			t.Fatal(err)
		}
		if m.Type == wire.TypeDrain {
			break
		}
	}

	// Kick a: under drop, its subtree goes silently.
	ts.post(t, "/api/v1/kick?node=a", nil)
	if e := a.waitClosed(); e == nil || e.Code != wire.CodeKicked {
		t.Fatalf("kicked a got %+v", e)
	}
	if code := ts.getJSON(t, "/api/v1/tree?stream="+stream, nil); code != http.StatusNotFound {
		t.Fatalf("tree after kick: %d", code)
	}
	if got := b.reconnects(); len(got) != 0 {
		t.Fatalf("b told %v under drop", got)
	}

	body := ts.metrics(t)
	for _, want := range []string{"ocm_nodes 3", `ocm_reconnects_sent_total{reason="operator"} 2`,
		`ocm_node_failures_total{cause="kicked"} 1`, "ocm_joins_total 3"} {
		if !strings.Contains(body, want) {
			t.Errorf("metrics lack %q:\n%s", want, body)
		}
	}
	ts.validate(t)
}

func TestReadyEventFirst(t *testing.T) {
	ts := startServer(t, nil)
	newRelay(t, "a", 1).dial(ts.Addr(), "")
	evs := ts.events.Events(t)
	if r, ok := evs[0].(event.ServerReady); !ok || r.OCM != ts.Addr() || r.HTTP != ts.HTTPAddr() {
		t.Fatalf("first event %T %+v", evs[0], evs[0])
	}
}

func TestStartErrors(t *testing.T) {
	tests := []struct {
		name string
		s    *Server
	}{
		{"bad policy", &Server{Listen: "127.0.0.1:0", HTTP: HTTPOff, Recovery: "magic"}},
		{"bad address", &Server{Listen: "127.0.0.1:-1", HTTP: HTTPOff}},
		{"bad http address", &Server{Listen: "127.0.0.1:0", HTTP: "127.0.0.1:-1"}},
		{"tiny heartbeat", &Server{Listen: "127.0.0.1:0", HTTP: HTTPOff, Heartbeat: time.Microsecond}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.s.Start(); err == nil {
				tt.s.Close()
				t.Fatal("started")
			}
			tt.s.Close() // harmless after a failed Start
		})
	}
}

func TestCloseIdempotent(t *testing.T) {
	ts := startServer(t, func(s *Server) { s.HTTP = HTTPOff })
	ts.Close()
	ts.Close()
	if err := ts.Wait(); err != nil {
		t.Fatal(err)
	}
	if ts.HTTPAddr() != "" {
		t.Fatal("HTTP address with HTTP off")
	}
}

// Under drop nothing is said when a relay fails; a relay of the dropped
// subtree whose own parent came back is attached again under it from its
// report, and one whose reported parent cannot take it is told to
// reconnect.
func TestReportReattachesDropped(t *testing.T) {
	ts := startServer(t, func(s *Server) { s.Recovery = tree.Drop })
	rs := ts.chain(t, "a", "b", "c", "d")
	a, b, c, d := rs[0], rs[1], rs[2], rs[3]
	a.c.Close()
	waitEvent[event.NodeFailed](t, ts, "a")
	if got := ts.shape(t, stream); got != "" {
		t.Fatalf("after dropping a's subtree the tree is %q, want empty", got)
	}
	b.mustJoin(stream, "origin") // b noticed its stall and rejoined
	// c never stalled: it reports b as its parent and is taken back.
	c.request(&wire.Heartbeat{})
	if _, err := c.c.Send(&wire.Report{Streams: []wire.StreamReport{{Stream: stream, Parent: "b", Level: 2, RTTMs: 25}}}); err != nil {
		t.Fatal(err)
	}
	// d reports a parent that is gone: it is told to reconnect.
	if _, err := d.c.Send(&wire.Report{Streams: []wire.StreamReport{{Stream: stream, Parent: "x", Level: 4}}}); err != nil {
		t.Fatal(err)
	}
	rc := d.waitReconnect()
	if rc.Reason != wire.ReasonOrphaned || rc.Parent != "x" {
		t.Fatalf("d got %+v, want an orphaned reconnect naming x", rc)
	}
	c.sync()
	if got := ts.shape(t, stream); got != "b<origin@1 c<b@2" {
		t.Fatalf("tree %q, want c back under b", got)
	}
	ts.validate(t)
	// The report's RTT goes with it: c's path is b's plus 25 ms.
	e := newRelay(t, "e", 2).dial(ts.Addr(), "")
	if p := candidate(t, e.candidates(stream), "c").PathMs; p != 25 {
		t.Errorf("c offered with path %v ms after re-attaching from a report with rtt_ms 25, want 25", p)
	}
}

// TestFailureCausesFixed: connections that end in errors carrying
// addresses (resets from many ports) are counted under a fixed set of
// causes, never one series per error text; the text is in the event.
func TestFailureCausesFixed(t *testing.T) {
	ts := startServer(t, nil)
	const n = 12
	for i := range n {
		id := fmt.Sprintf("r%d", i)
		r := newRelay(t, id, 2).dial(ts.Addr(), "")
		r.mustJoin(stream, "origin")
		if i%2 == 0 {
			// A reset: the error's text has both addresses in it.
			if err := r.nc.(*net.TCPConn).SetLinger(0); err != nil {
				t.Fatal(err)
			}
		} else {
			// Half a message, then the end.
			if _, err := r.nc.Write([]byte(`{"v":1,"type":"heartb`)); err != nil {
				t.Fatal(err)
			}
		}
		r.nc.Close()
		waitEvent[event.NodeFailed](t, ts, id)
	}
	details := 0
	for _, ev := range testutil.Find[event.NodeFailed](t, ts.events) {
		if !slices.Contains(failureCauses, ev.Cause) {
			t.Errorf("node_failed cause %q is not one of %q", ev.Cause, failureCauses)
		}
		if ev.Detail != "" {
			details++
		}
	}
	if details != n {
		t.Errorf("%d of %d node_failed events carry the error's detail", details, n)
	}
	var series []string
	total := 0
	for _, l := range strings.Split(ts.metrics(t), "\n") {
		v, ok := strings.CutPrefix(l, `ocm_node_failures_total{cause="`)
		if !ok {
			continue
		}
		cause, count, _ := strings.Cut(v, `"} `)
		series = append(series, cause+"="+count)
		if !slices.Contains(failureCauses, cause) {
			t.Errorf("failure cause label %q is not one of %q", cause, failureCauses)
		}
		c, _ := strconv.Atoi(count)
		total += c
	}
	t.Logf("failure series: %q", series)
	if total != n {
		t.Errorf("ocm_node_failures_total sums to %d, want %d", total, n)
	}
}
