package server

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ocm-overlay/ocm/internal/api"
	"github.com/ocm-overlay/ocm/internal/event"
	"github.com/ocm-overlay/ocm/internal/testutil"
	"github.com/ocm-overlay/ocm/internal/wire"
)

const stream = "rtsp://127.0.0.1:5554/live"

// guard bounds every blocking read in the tests so a bug fails instead of
// hanging; it is never a timing assertion.
const guard = 20 * time.Second

// clock is a settable clock for heartbeats.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

type testServer struct {
	*Server
	clock  *clock
	events *testutil.Buffer
}

// startServer starts a server on 127.0.0.1:0 with a fake clock and a
// heartbeat so long that only explicit sweeps fail nodes.
func startServer(t *testing.T, mod func(*Server)) *testServer {
	t.Helper()
	ts := &testServer{clock: newClock(), events: &testutil.Buffer{}}
	ts.Server = &Server{
		Listen:    "127.0.0.1:0",
		HTTP:      "127.0.0.1:0",
		Heartbeat: time.Hour,
		Log:       slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Events:    event.NewWriter(ts.events),
		Now:       ts.clock.Now,
	}
	testutil.Start(t, ts.Server, mod)
	return ts
}

// testWriter sends logs to t.Log until the test ends.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	defer func() { _ = recover() }() // logging after the test ended
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

// check runs fn in the state goroutine.
func (ts *testServer) check(t *testing.T, fn func(st *state)) {
	t.Helper()
	if err := ts.call(context.Background(), fn); err != nil {
		t.Fatal(err)
	}
}

// validate checks the forest's invariants.
func (ts *testServer) validate(t *testing.T) {
	t.Helper()
	var err error
	ts.check(t, func(st *state) { err = st.forest.Validate() })
	if err != nil {
		t.Fatalf("invalid forest: %v", err)
	}
}

// shape renders a stream's tree as "node<parent@level" sorted by node,
// orphans with parent "-".
func (ts *testServer) shape(t *testing.T, s string) string {
	t.Helper()
	var snap api.Tree
	ts.getJSON(t, "/api/v1/tree?stream="+s, &snap)
	return testutil.TreeShape(snap)
}

// waitEvent waits until the server has emitted an event T for node,
// for instance node_failed after a test closed that relay's connection:
// the server's reader goroutine sees the close some time later, and under
// drop nothing is sent to anyone that a test could wait for instead.
func waitEvent[T nodeEvent](t *testing.T, ts *testServer, node string) T {
	t.Helper()
	return waitEvents[T](t, ts, node, 1)[0]
}

// nodeEvent is an event about one node.
type nodeEvent interface {
	event.Event
	event.NodeFailed | event.NodeLeft | event.NodeReleased | event.NodeQuarantined | event.ChildStalled
}

// nodeOf returns the node an event is about.
func nodeOf(e event.Event) string {
	switch e := e.(type) {
	case event.NodeFailed:
		return e.Node
	case event.NodeLeft:
		return e.Node
	case event.NodeReleased:
		return e.Node
	case event.NodeQuarantined:
		return e.Node
	case event.ChildStalled:
		return e.Node
	}
	return ""
}

// waitEvents waits until the server has emitted n events T for node and
// returns them.
func waitEvents[T nodeEvent](t *testing.T, ts *testServer, node string, n int) []T {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		var got []T
		for _, ev := range testutil.Find[T](t, ts.events) {
			if nodeOf(ev) == node {
				got = append(got, ev)
			}
		}
		if len(got) >= n {
			return got
		}
		if time.Now().After(deadline) {
			var zero T
			t.Fatalf("the server emitted %d of %d %s for %s; events:\n%s", len(got), n, zero.EventName(), node, ts.events.String())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func (ts *testServer) sweep(t *testing.T) {
	t.Helper()
	ts.check(t, func(st *state) { st.sweep() })
}

func (ts *testServer) url(path string) string { return "http://" + ts.HTTPAddr() + path }

func (ts *testServer) getJSON(t *testing.T, path string, v any) int {
	t.Helper()
	return testutil.GetJSON(t, ts.url(path), v)
}

// metrics scrapes /metrics.
func (ts *testServer) metrics(t *testing.T) string {
	t.Helper()
	resp, err := http.Get(ts.url("/metrics"))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics: %d %v", resp.StatusCode, err)
	}
	return string(body)
}

func (ts *testServer) post(t *testing.T, path string, v any) int {
	t.Helper()
	resp, err := http.Post(ts.url(path), "", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if v != nil {
		if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
			t.Fatalf("POST %s: %v", path, err)
		}
	}
	return resp.StatusCode
}

// relay is a fake ocm-relay speaking the wire protocol.
type relay struct {
	t        *testing.T
	id       string
	capacity int
	willing  bool
	rtsp     string
	c        *wire.Conn
	nc       net.Conn // under c, for bad writes
	welcome  *wire.Welcome
	parents  map[string]string // stream -> parent, as the relay knows it
	pushed   []wire.Msg        // messages not answering a request
}

func newRelay(t *testing.T, id string, capacity int) *relay {
	return &relay{t: t, id: id, capacity: capacity, willing: true, rtsp: "127.0.0.1:5554", parents: map[string]string{}}
}

func (r *relay) hello(token string) *wire.Hello {
	h := &wire.Hello{Node: r.id, RTSP: r.rtsp, Probe: "127.0.0.1:6072", Willing: r.willing,
		Capacity: r.capacity, Cores: 2, Token: token, Agent: "fake-relay"}
	for s, p := range r.parents {
		h.Streams = append(h.Streams, wire.Relayed{Stream: s, Parent: p})
	}
	return h
}

// dial connects and says hello; it fails the test unless welcomed.
func (r *relay) dial(addr, token string) *relay {
	r.t.Helper()
	reply, err := r.connect(addr, token)
	if err != nil {
		r.t.Fatalf("%s: %v", r.id, err)
	}
	w, ok := reply.Body.(*wire.Welcome)
	if !ok {
		r.t.Fatalf("%s: hello answered by %s %+v", r.id, reply.Type, reply.Body)
	}
	r.welcome = w
	return r
}

// connect dials and sends hello, returning the first message received.
func (r *relay) connect(addr, token string) (wire.Msg, error) {
	nc, err := net.DialTimeout("tcp", addr, guard)
	if err != nil {
		return wire.Msg{}, err
	}
	c := wire.NewConn(nc)
	c.SetReadTimeout(guard)
	r.c, r.nc = c, nc
	r.pushed = nil
	r.t.Cleanup(func() { c.Close() })
	if _, err := c.Send(r.hello(token)); err != nil {
		return wire.Msg{}, err
	}
	return c.ReadMsg()
}

// request sends body and returns the answer to it, keeping pushed
// messages read meanwhile.
func (r *relay) request(body wire.Body) wire.Msg {
	r.t.Helper()
	id, err := r.c.Send(body)
	if err != nil {
		r.t.Fatalf("%s: send %s: %v", r.id, body.Type(), err)
	}
	for {
		m, err := r.c.ReadMsg()
		if err != nil {
			r.t.Fatalf("%s: waiting for the answer to %s: %v", r.id, body.Type(), err)
		}
		if m.Re == id {
			return m
		}
		r.pushed = append(r.pushed, m)
	}
}

// sync sends a heartbeat and waits for its echo: everything the server
// queued for this relay before is then in r.pushed.
func (r *relay) sync() {
	r.t.Helper()
	if m := r.request(&wire.Heartbeat{}); m.Type != wire.TypeHeartbeat {
		r.t.Fatalf("%s: heartbeat answered by %s", r.id, m.Type)
	}
}

func (r *relay) candidates(s string, exclude ...string) []wire.Candidate {
	r.t.Helper()
	m := r.request(&wire.GetCandidates{Stream: s, Exclude: exclude})
	c, ok := m.Body.(*wire.Candidates)
	if !ok {
		r.t.Fatalf("%s: candidates answered by %s %+v", r.id, m.Type, m.Body)
	}
	return c.Candidates
}

// join reports joined and returns the error code ("" if accepted).
func (r *relay) join(s, parent string) string {
	r.t.Helper()
	return r.joinVia(s, parent, 0, false)
}

func (r *relay) mustJoin(s, parent string) {
	r.t.Helper()
	if code := r.join(s, parent); code != "" {
		r.t.Fatalf("%s: join %s refused: %s", r.id, parent, code)
	}
}

// joinBest asks for candidates and joins the first.
func (r *relay) joinBest(s string) string {
	r.t.Helper()
	cs := r.candidates(s)
	if len(cs) == 0 {
		r.t.Fatalf("%s: no candidates", r.id)
	}
	r.mustJoin(s, cs[0].Node)
	return cs[0].Node
}

// reconnects syncs and returns the reconnects pushed so far, clearing them.
func (r *relay) reconnects() []string {
	r.t.Helper()
	r.sync()
	var out []string
	var rest []wire.Msg
	for _, m := range r.pushed {
		if rc, ok := m.Body.(*wire.Reconnect); ok {
			out = append(out, rc.Reason)
			continue
		}
		rest = append(rest, m)
	}
	r.pushed = rest
	return out
}

// next returns the next pushed message, reading if needed.
func (r *relay) next() (wire.Msg, error) {
	if len(r.pushed) > 0 {
		m := r.pushed[0]
		r.pushed = r.pushed[1:]
		return m, nil
	}
	return r.c.ReadMsg()
}

// waitReconnect reads until a reconnect arrives.
func (r *relay) waitReconnect() *wire.Reconnect {
	r.t.Helper()
	for {
		m, err := r.next()
		if err != nil {
			r.t.Fatalf("%s: waiting for a reconnect: %v", r.id, err)
		}
		if rc, ok := m.Body.(*wire.Reconnect); ok {
			return rc
		}
	}
}

// waitClosed reads until the server closes, returning the last error
// message received before.
func (r *relay) waitClosed() *wire.Error {
	r.t.Helper()
	var last *wire.Error
	for {
		m, err := r.next()
		if err != nil {
			if errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) || isReset(err) {
				return last
			}
			r.t.Fatalf("%s: waiting for close: %v", r.id, err)
		}
		if e, ok := m.Body.(*wire.Error); ok {
			last = e
		}
	}
}

func isReset(err error) bool {
	return strings.Contains(err.Error(), "connection reset")
}

// build dials a relay of capacity 4 for each "node<parent" of spec, in
// order, and joins it to parent on stream.
func (ts *testServer) build(t *testing.T, spec string) map[string]*relay {
	t.Helper()
	out := map[string]*relay{}
	for _, e := range strings.Fields(spec) {
		id, parent, _ := strings.Cut(e, "<")
		r := newRelay(t, id, 4).dial(ts.Addr(), "")
		r.mustJoin(stream, parent)
		out[id] = r
	}
	return out
}

// rawConn is a plain TCP connection for sending bad bytes.
func rawConn(t *testing.T, addr string) (net.Conn, *wire.Conn) {
	t.Helper()
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	c := wire.NewConn(nc)
	c.SetReadTimeout(guard)
	return nc, c
}

// chain connects a relay of capacity 2 for each id and joins each one
// under the one before it, the first under the origin: a chain
// origin <- ids[0] <- ids[1] <- ...
func (ts *testServer) chain(t *testing.T, ids ...string) []*relay {
	t.Helper()
	rs := make([]*relay, len(ids))
	parent := "origin"
	for i, id := range ids {
		rs[i] = newRelay(t, id, 2).dial(ts.Addr(), "")
	}
	for i, r := range rs {
		r.mustJoin(stream, parent)
		parent = ids[i]
	}
	return rs
}
