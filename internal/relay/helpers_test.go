package relay

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ocm-overlay/ocm/internal/api"
	"github.com/ocm-overlay/ocm/internal/control"
	"github.com/ocm-overlay/ocm/internal/event"
	"github.com/ocm-overlay/ocm/internal/probe"
	"github.com/ocm-overlay/ocm/internal/server"
	"github.com/ocm-overlay/ocm/internal/testutil"
	"github.com/ocm-overlay/ocm/internal/tree"
	"github.com/ocm-overlay/ocm/internal/wire"
)

// guard bounds every blocking wait in these tests so a bug fails instead
// of hanging; it is a liveness limit, never a timing assertion.
const guard = 20 * time.Second

// media is the path of the test stream on the fake origin.
const media = "live"

// testWeights are the default selection rule with a probe timeout long
// enough for a loaded machine running -race: a slow answer must not make
// a candidate ineligible.
func testWeights() probe.Weights {
	w := probe.DefaultWeights()
	w.Timeout = 2 * time.Second
	return w
}

// logBuffer collects log lines, forwards them to t.Log, and lets a test
// wait for a line: a log record is the only trace some decisions leave.
type logBuffer struct {
	t       *testing.T
	mu      sync.Mutex
	lines   []string
	changed chan struct{} // closed and replaced on every line
}

func newLogBuffer(t *testing.T) *logBuffer {
	return &logBuffer{t: t, changed: make(chan struct{})}
}

func (b *logBuffer) Write(p []byte) (int, error) {
	line := strings.TrimSpace(string(p))
	b.mu.Lock()
	b.lines = append(b.lines, line)
	close(b.changed)
	b.changed = make(chan struct{})
	b.mu.Unlock()
	func() {
		defer func() { _ = recover() }() // logging after the test ended
		b.t.Log(line)
	}()
	return len(p), nil
}

// logger returns a debug logger writing to b.
func (b *logBuffer) logger() *slog.Logger {
	return slog.New(slog.NewTextHandler(b, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// has reports whether a line containing every one of subs was logged.
func (b *logBuffer) has(subs ...string) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return slices.ContainsFunc(b.lines, func(l string) bool { return containsAll(l, subs) })
}

// count is how many lines contain every one of subs.
// waitCount waits until n lines have every one of subs, failing the
// test after the improvement tests' guard.
func (b *logBuffer) waitCount(t *testing.T, n int, subs ...string) {
	t.Helper()
	deadline := time.Now().Add(guard)
	for b.count(subs...) < n {
		if time.Now().After(deadline) {
			t.Fatalf("fewer than %d log lines with %q within %v", n, subs, guard)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func (b *logBuffer) count(subs ...string) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	n := 0
	for _, l := range b.lines {
		if containsAll(l, subs) {
			n++
		}
	}
	return n
}

// wait blocks until a line containing every one of subs was logged.
func (b *logBuffer) wait(t *testing.T, subs ...string) string {
	t.Helper()
	timeout := time.NewTimer(guard)
	defer timeout.Stop()
	for {
		b.mu.Lock()
		for _, l := range b.lines {
			if containsAll(l, subs) {
				b.mu.Unlock()
				return l
			}
		}
		ch := b.changed
		b.mu.Unlock()
		select {
		case <-ch:
		case <-timeout.C:
			t.Fatalf("no log line with %q within %v", subs, guard)
		}
	}
}

func containsAll(s string, subs []string) bool {
	for _, sub := range subs {
		if !strings.Contains(s, sub) {
			return false
		}
	}
	return true
}

// rtspResponder is a TCP listener that answers every RTSP request it reads
// with 200 OK: the origin as the relay probes it (an OPTIONS round trip),
// and a stand-in for a mediator's RTSP address.
type rtspResponder struct {
	ln  net.Listener
	srv *testutil.Served
}

func startRTSP(t *testing.T) *rtspResponder {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return serveRTSP(t, ln)
}

// relistenRTSP starts a responder on addr again, as a restarted origin
// would; it retries while the port is still held.
func relistenRTSP(t *testing.T, addr string) *rtspResponder {
	t.Helper()
	deadline := time.Now().Add(guard)
	for {
		ln, err := net.Listen("tcp", addr)
		if err == nil {
			return serveRTSP(t, ln)
		}
		if time.Now().After(deadline) {
			t.Fatalf("listen on %s again: %v", addr, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func serveRTSP(t *testing.T, ln net.Listener) *rtspResponder {
	return &rtspResponder{ln: ln, srv: testutil.AnswerRTSP(t, ln, guard)}
}

func (o *rtspResponder) Addr() string { return o.ln.Addr().String() }

func (o *rtspResponder) close() { o.srv.Close() }

// streamOn is the stream key (normalised origin URL) of the test media on
// the origin at addr.
func streamOn(addr string) string { return "rtsp://" + addr + "/" + media }

// enhanced is the URL to pull the stream of origin from a mediator at
// hostport.
func enhanced(hostport, origin string) string {
	return "rtsp://" + hostport + "/" + media + "?" + origin
}

// refusingAddr returns a loopback TCP address that refuses connections and
// stays so for the test: a socket bound to it but not listening keeps
// another listener (a relay's control socket, say) from being given the
// port, as a port merely closed could be. (syscall with an int fd, as
// internal/mediator uses too: unix only.)
func refusingAddr(t *testing.T) string {
	t.Helper()
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Close(fd) })
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	sa, err := syscall.Getsockname(fd)
	if err != nil {
		t.Fatal(err)
	}
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(sa.(*syscall.SockaddrInet4).Port))
}

// testServer is a real in-process ocm-server.
type testServer struct {
	*server.Server
	events *testutil.Buffer
}

// startServer starts an ocm-server on 127.0.0.1:0 with the given recovery
// policy. Its heartbeat is so long that no relay is declared failed for
// being slow on a loaded machine: failures in these tests are closed
// connections.
func startServer(t *testing.T, policy tree.Policy, mod func(*server.Server)) *testServer {
	t.Helper()
	lb := newLogBuffer(t)
	ts := &testServer{events: &testutil.Buffer{}}
	ts.Server = &server.Server{
		Listen:    "127.0.0.1:0",
		HTTP:      "127.0.0.1:0",
		Recovery:  policy,
		Heartbeat: time.Hour,
		Log:       lb.logger().With("test", "server"),
		Events:    event.NewWriter(ts.events),
	}
	testutil.Start(t, ts.Server, mod)
	return ts
}

func (ts *testServer) url(path string) string { return "http://" + ts.HTTPAddr() + path }

// getJSON GETs path and decodes a 200 answer into v; it returns the status.
func (ts *testServer) getJSON(t *testing.T, path string, v any) int {
	t.Helper()
	return testutil.GetJSON(t, ts.url(path), v)
}

// post POSTs path and fails the test unless it answers 200.
func (ts *testServer) post(t *testing.T, path string) {
	t.Helper()
	resp, err := http.Post(ts.url(path), "", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		var body bytes.Buffer
		_, _ = body.ReadFrom(resp.Body)
		t.Fatalf("POST %s: %s %s", path, resp.Status, body.String())
	}
}

// tree returns the server's tree of stream.
func (ts *testServer) tree(t *testing.T, stream string) api.Tree {
	t.Helper()
	var snap api.Tree
	if st := ts.getJSON(t, "/api/v1/tree?stream="+stream, &snap); st != http.StatusOK {
		t.Fatalf("GET tree of %s: status %d", stream, st)
	}
	return snap
}

// shape renders a tree as "node<parent@level" by node, orphans with parent
// "-".
func shape(snap api.Tree) string { return testutil.TreeShape(snap) }

// testRelay is a Relay with its log and events captured.
type testRelay struct {
	*Relay
	log    *logBuffer
	events *testutil.Buffer
}

// startRelay starts a willing relay with capacity 4 on 127.0.0.1:0 (control
// and probe) talking to serverAddr; mod may change it before Start.
func startRelay(t *testing.T, id, serverAddr string, mod func(*Relay)) *testRelay {
	t.Helper()
	tr := &testRelay{log: newLogBuffer(t), events: &testutil.Buffer{}}
	tr.Relay = &Relay{
		Server:   serverAddr,
		Control:  "127.0.0.1:0",
		Probe:    "127.0.0.1:0",
		NodeID:   id,
		Willing:  true,
		Capacity: 4,
		Weights:  testWeights(),
		Events:   event.NewWriter(tr.events),
	}
	tr.Log = tr.log.logger().With("relay", id)
	testutil.Start(t, tr.Relay, mod)
	return tr
}

// fakeMediator is rtsp-mediator's side of the control socket, on the
// control.Client the mediator uses: requests wait for their answer;
// pushed switches queue up.
type fakeMediator struct {
	t        *testing.T
	c        *control.Conn
	cl       *control.Client
	switches chan ctlMsg
	bad      chan ctlMsg // pushed errors (bad lines, refused actives)
	done     chan struct{}
}

// ctlMsg is what a test reads of a message from the relay: a welcome
// (Node, Willing), a resolved or a switch (Stream, Upstream), or an error
// (its message in Error).
type ctlMsg struct {
	Re       uint64
	Stream   string
	Upstream *control.Upstream
	Node     string
	Willing  *bool
	Code     string
	Error    string
}

func ctlMsgOf(m wire.Msg) ctlMsg {
	c := ctlMsg{Re: m.Re}
	switch b := m.Body.(type) {
	case *control.Welcome:
		c.Node, c.Willing = b.Node, &b.Willing
	case *control.Resolved:
		c.Upstream = &b.Upstream
	case *control.Switch:
		c.Stream, c.Upstream = b.Stream, &b.Upstream
	case *wire.Error:
		c.Code, c.Error = b.Code, b.Message
	}
	return c
}

// unknownBody is a message of a type the relay does not know: it is
// answered with an error, which makes it a barrier.
type unknownBody struct{ typ string }

func (u unknownBody) Type() string  { return u.typ }
func (unknownBody) Validate() error { return nil }

func dialMediator(t *testing.T, addr string) *fakeMediator {
	t.Helper()
	nc := testutil.Dial(t, addr, guard)
	m := &fakeMediator{t: t, c: control.NewConn(nc),
		switches: make(chan ctlMsg, 64), bad: make(chan ctlMsg, 64), done: make(chan struct{})}
	m.cl = control.NewClient(m.c)
	go m.read()
	t.Cleanup(func() {
		m.cl.Close()
		<-m.done
	})
	return m
}

func (m *fakeMediator) read() {
	defer close(m.done)
	for msg := range m.cl.Pushes() {
		if _, ok := msg.Body.(*control.Switch); ok {
			m.switches <- ctlMsgOf(msg)
			continue
		}
		select {
		case m.bad <- ctlMsgOf(msg):
		default:
		}
	}
}

// call sends body and returns the answer.
func (m *fakeMediator) call(body wire.Body) ctlMsg {
	m.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), guard)
	defer cancel()
	r, err := m.cl.Request(ctx, body)
	var e *wire.Error
	if err != nil && !errors.As(err, &e) {
		m.t.Fatalf("no answer to %s: %v", body.Type(), err)
	}
	return ctlMsgOf(r)
}

// send sends body, which has no answer.
func (m *fakeMediator) send(body wire.Body) {
	m.t.Helper()
	if _, err := m.c.Send(body); err != nil {
		m.t.Fatalf("control write %s: %v", body.Type(), err)
	}
}

// hello says the mediator's RTSP address and returns the reply.
func (m *fakeMediator) hello(rtsp string) ctlMsg {
	m.t.Helper()
	return m.call(&control.Hello{RTSP: rtsp})
}

// resolve asks where to pull stream from (a first resolve); it fails the
// test on an error reply.
func (m *fakeMediator) resolve(stream string) control.Upstream {
	m.t.Helper()
	r := m.call(&control.Resolve{Stream: stream, Mode: control.ModeJoin})
	if r.Error != "" {
		m.t.Fatalf("resolve %s: %s", stream, r.Error)
	}
	if r.Upstream == nil {
		m.t.Fatalf("resolve %s: reply without upstream: %+v", stream, r)
	}
	return *r.Upstream
}

// sync is a barrier: an unknown type is answered (with an error), so every
// message the relay wrote before that answer has been read when it
// returns.
func (m *fakeMediator) sync() {
	m.t.Helper()
	if r := m.call(unknownBody{"test-barrier"}); r.Error == "" {
		m.t.Fatalf("unknown type answered without error: %+v", r)
	}
}

// waitSwitch returns the next switch pushed by the relay.
func (m *fakeMediator) waitSwitch() ctlMsg {
	m.t.Helper()
	select {
	case s := <-m.switches:
		return s
	case <-m.done:
		m.t.Fatal("control connection ended waiting for a switch")
	case <-time.After(guard):
		m.t.Fatalf("no switch within %v", guard)
	}
	return ctlMsg{}
}

// noSwitch fails the test if a switch was pushed before a barrier.
func (m *fakeMediator) noSwitch() {
	m.t.Helper()
	m.sync()
	select {
	case s := <-m.switches:
		m.t.Errorf("unexpected switch to %+v", *s.Upstream)
	default:
	}
}

// fakeServer is a scripted ocm-server written with package wire, for the
// cases a real server does not produce on demand.
type fakeServer struct {
	t  *testing.T
	ln net.Listener
	// candidates answers get_candidates.
	candidates func(g *wire.GetCandidates) []wire.Candidate
	recovery   string
	// hangUp, if set, is asked before each get_candidates is answered;
	// true closes the connection instead (set it before the relay
	// connects).
	hangUp func(g *wire.GetCandidates) bool
	// beforeWelcome, if set, runs before a hello is answered (set it
	// before the relay connects).
	beforeWelcome func(h *wire.Hello)
	// reportMs is the report interval the welcome asks for (0: an hour).
	reportMs int64
	// refuse, if set, is asked before each joined is answered: an error
	// refuses it.
	refuse func(j *wire.Joined) *wire.Error

	mu       sync.Mutex
	conn     *wire.Conn
	requests []wire.Msg // everything but heartbeats, in order
}

func startFakeServer(t *testing.T, candidates func(*wire.GetCandidates) []wire.Candidate) *fakeServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	fs := &fakeServer{t: t, ln: ln, candidates: candidates, recovery: wire.RecoveryRepair}
	testutil.Serve(t, ln, 0, func(nc net.Conn) { fs.serve(wire.NewConn(nc)) })
	return fs
}

func (fs *fakeServer) Addr() string { return fs.ln.Addr().String() }

func (fs *fakeServer) serve(c *wire.Conn) {
	defer c.Close()
	m, err := c.ReadMsg()
	if err != nil {
		return
	}
	h, ok := m.Body.(*wire.Hello)
	if !ok {
		return
	}
	if fs.beforeWelcome != nil {
		fs.beforeWelcome(h)
	}
	if err := c.Reply(m.ID, &wire.Welcome{Node: h.Node, Recovery: fs.recovery, ReportMs: cmp.Or(fs.reportMs, 3600_000),
		HeartbeatMs: 3600_000, HandoverMs: 2000, Server: "fake"}); err != nil {
		return
	}
	fs.mu.Lock()
	if fs.conn != nil {
		fs.conn.Close() // a newer hello replaces the connection, as on ocm-server
	}
	fs.conn = c
	fs.mu.Unlock()
	for {
		m, err := c.ReadMsg()
		if err != nil {
			return
		}
		if _, hb := m.Body.(*wire.Heartbeat); hb {
			_ = c.Reply(m.ID, &wire.Heartbeat{})
			continue
		}
		fs.mu.Lock()
		fs.requests = append(fs.requests, m)
		fs.mu.Unlock()
		switch b := m.Body.(type) {
		case *wire.GetCandidates:
			if fs.hangUp != nil && fs.hangUp(b) {
				return
			}
			_ = c.Reply(m.ID, &wire.Candidates{Stream: b.Stream, Candidates: fs.candidates(b)})
		case *wire.Joined:
			if fs.refuse != nil {
				if e := fs.refuse(b); e != nil {
					_ = c.Reply(m.ID, e)
					continue
				}
			}
			level := 1
			if b.Parent != wire.OriginID {
				level = 2
			}
			_ = c.Reply(m.ID, &wire.Ack{Level: level})
		case *wire.Left:
			_ = c.Reply(m.ID, &wire.Ack{})
		}
	}
}

// push sends b to the relay connected last.
func (fs *fakeServer) push(b wire.Body) {
	fs.t.Helper()
	fs.mu.Lock()
	c := fs.conn
	fs.mu.Unlock()
	if c == nil {
		fs.t.Fatal("fake server: no relay connected")
	}
	if _, err := c.Send(b); err != nil {
		fs.t.Fatalf("fake server: push %s: %v", b.Type(), err)
	}
}

// types lists the types of the requests received so far.
func (fs *fakeServer) types() []string {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	out := make([]string, 0, len(fs.requests))
	for _, m := range fs.requests {
		out = append(out, m.Type)
	}
	return out
}

// received returns the requests of type T received so far, in order.
func received[T wire.Body](fs *fakeServer) []T {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	var out []T
	for _, m := range fs.requests {
		if b, ok := m.Body.(T); ok {
			out = append(out, b)
		}
	}
	return out
}

// waitReceived waits until the requests of type T received satisfy ok,
// and returns them.
func waitReceived[T wire.Body](t *testing.T, fs *fakeServer, what string, ok func([]T) bool) []T {
	t.Helper()
	deadline := time.Now().Add(guard)
	for {
		if got := received[T](fs); ok(got) {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("fake server: no %s within %v (requests %v)", what, guard, fs.types())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// startProbeResponder answers probes as a relay with info would.
func startProbeResponder(t *testing.T, info probe.Info) *probe.Responder {
	t.Helper()
	r := &probe.Responder{Listen: "127.0.0.1:0", Info: func(string) probe.Info { return info }}
	if err := r.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.Close)
	return r
}

// ctxGuard is a context bounded by guard.
func ctxGuard(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), guard)
	t.Cleanup(cancel)
	return ctx
}
