package server

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ocm-overlay/ocm/internal/api"
	"github.com/ocm-overlay/ocm/internal/event"
	"github.com/ocm-overlay/ocm/internal/wire"
)

// sseFrame is one server-sent event.
type sseFrame struct {
	id         int64
	hasID      bool
	name, data string
}

// sseClient is one subscriber of GET /api/v1/events.
type sseClient struct {
	t      *testing.T
	resp   *http.Response
	frames chan sseFrame
}

// subscribe opens the event stream with the given headers (and query).
func (ts *testServer) subscribe(t *testing.T, query string, header http.Header) *sseClient {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, ts.url("/api/v1/events"+query), nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	c := &sseClient{t: t, resp: resp, frames: make(chan sseFrame, 1<<16)}
	done := make(chan struct{})
	t.Cleanup(func() { cancel(); resp.Body.Close(); <-done })
	if resp.StatusCode != http.StatusOK {
		close(done)
		return c
	}
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Errorf("event stream Content-Type %q", ct)
	}
	go func() {
		defer close(done)
		defer close(c.frames)
		sc := bufio.NewScanner(resp.Body)
		var f sseFrame
		for sc.Scan() {
			line := sc.Text()
			switch k, v, _ := strings.Cut(line, ": "); {
			case line == "":
				if f.name != "" || f.data != "" {
					c.frames <- f
				}
				f = sseFrame{}
			case k == "id":
				n, err := strconv.ParseInt(v, 10, 64)
				if err != nil {
					t.Errorf("frame id %q", v)
				}
				f.id, f.hasID = n, true
			case k == "event":
				f.name = v
			case k == "data":
				f.data = v
			}
		}
	}()
	return c
}

// next returns the next event, failing the test if none comes in time.
func (c *sseClient) next() sseFrame {
	c.t.Helper()
	select {
	case f, ok := <-c.frames:
		if !ok {
			c.t.Fatal("event stream ended")
		}
		return f
	case <-time.After(guard):
		c.t.Fatal("no event within the guard time")
	}
	return sseFrame{}
}

// policies emits n policy_changed events and returns their lines as the
// events writer printed them.
func (ts *testServer) policies(t *testing.T, n int) []string {
	t.Helper()
	before := len(ts.lines())
	for i := range n {
		ts.Events.Emit(event.PolicyChanged{From: "a", To: fmt.Sprint(i)})
	}
	return ts.lines()[before:]
}

func (ts *testServer) lines() []string {
	return strings.Split(strings.TrimSuffix(ts.events.String(), "\n"), "\n")
}

// Every event comes, in order, numbered 1, 2, ..., with the very line
// stdout gets as its data; the tree says which event it includes.
func TestEventsInOrderWithIDs(t *testing.T) {
	ts := startServer(t, nil)
	c := ts.subscribe(t, "", nil)
	// Real events from the state goroutine, then many more.
	a := newRelay(t, "a", 2).dial(ts.Addr(), "")
	a.mustJoin(stream, "origin")
	// ready (event 1) came before the client; then node_joined,
	// tree_joined. The join's reply may reach the relay before
	// tree_joined is emitted, so the policies wait for both frames (a
	// line is on stdout before the hub has it).
	got := []sseFrame{c.next(), c.next()}
	want := append(ts.lines()[1:3], ts.policies(t, 500)...)
	b := ts.hub.base
	for i, line := range want {
		var f sseFrame
		if i < len(got) {
			f = got[i]
		} else {
			f = c.next()
		}
		if f.id != b+int64(i+2) || f.data != line {
			t.Fatalf("event %d: id %d data %s, want id %d data %s", i, f.id, f.data, b+int64(i+2), line)
		}
		e, err := event.Decode([]byte(f.data))
		if err != nil || e.EventName() != f.name {
			t.Fatalf("event %d: %q named %q: %v", i, f.data, f.name, err)
		}
	}
	resp, err := http.Get(ts.url("/api/v1/tree?stream=" + stream))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if got := resp.Header.Get(api.EventIDHeader); got != strconv.FormatInt(b+int64(len(want)+1), 10) {
		t.Errorf("tree %s %q, want %d", api.EventIDHeader, got, b+int64(len(want)+1))
	}
}

// A client that resumes with Last-Event-ID (or ?since=) gets every event
// after that id, none lost, none repeated.
func TestEventsResume(t *testing.T) {
	ts := startServer(t, nil)
	ts.policies(t, 9) // after ready: 10 events
	b := ts.hub.base
	at4 := strconv.FormatInt(b+4, 10)
	for _, tc := range []struct {
		query  string
		header http.Header
	}{{"", http.Header{"Last-Event-Id": {at4}}}, {"?since=" + at4, nil}} {
		c := ts.subscribe(t, tc.query, tc.header)
		for id := b + 5; id <= b+10; id++ {
			if f := c.next(); f.id != id || f.name != "policy_changed" {
				t.Fatalf("%s %v: got id %d %q, want %d", tc.query, tc.header, f.id, f.name, id)
			}
		}
	}
	code, msg := authCall(t, ts, http.MethodGet, "/api/v1/events?since=x", "")
	if code != http.StatusBadRequest || !strings.Contains(msg, "since") {
		t.Errorf("since=x: %d %q", code, msg)
	}
}

// A client resuming from an id the ring no longer holds is told to reset
// (with the oldest id kept), then gets what comes next.
func TestEventsResetWhenTooOld(t *testing.T) {
	ts := startServer(t, func(s *Server) { s.EventRing = 4 })
	ts.policies(t, 9) // after ready: 10 events, b+1..b+10
	b := ts.hub.base
	since := func(n int64) string { return "?since=" + strconv.FormatInt(b+n, 10) }
	c := ts.subscribe(t, since(2), nil)
	f := c.next()
	var d struct{ Oldest, Last int64 }
	if err := json.Unmarshal([]byte(f.data), &d); f.name != "reset" || err != nil || d.Oldest != b+7 || d.Last != b+10 || f.id != b+10 {
		t.Fatalf("first frame %+v (%v), want reset id b+10 oldest b+7 last b+10 (b %d)", f, err, b)
	}
	// Within the ring: no reset.
	c2 := ts.subscribe(t, since(6), nil)
	if f := c2.next(); f.name != "policy_changed" || f.id != b+7 {
		t.Errorf("since b+6 with b+7..b+10 kept: %+v", f)
	}
	// An id of an earlier run (lower) or of none (higher): reset.
	for _, q := range []string{"?since=3", since(11)} {
		if f := ts.subscribe(t, q, nil).next(); f.name != "reset" {
			t.Errorf("%s: %+v, want reset", q, f)
		}
	}
	ts.policies(t, 1)
	if f := c.next(); f.id != b+11 || f.name != "policy_changed" {
		t.Errorf("after the reset: %+v, want event b+11", f)
	}
}

// A client that never reads is dropped once its buffer fills, and the
// server never waits for it: every event is still emitted and a reading
// client gets all of them, during and after the drop.
func TestEventsSlowClientDropped(t *testing.T) {
	ts := startServer(t, func(s *Server) { s.EventClientBuffer = 64 })
	fast := ts.subscribe(t, "", nil)
	// The slow client: a raw connection with a small receive buffer that
	// sends its request and never reads.
	d := net.Dialer{Control: func(_, _ string, rc syscall.RawConn) error {
		return rc.Control(func(fd uintptr) { _ = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096) })
	}}
	slow, err := d.Dial("tcp", ts.HTTPAddr())
	if err != nil {
		t.Fatal(err)
	}
	defer slow.Close()
	fmt.Fprintf(slow, "GET /api/v1/events HTTP/1.1\r\nHost: x\r\n\r\n")
	deadline := time.Now().Add(guard)
	for ts.hub.clients() < 2 {
		if time.Now().After(deadline) {
			t.Fatal("the slow client never subscribed")
		}
		time.Sleep(time.Millisecond)
	}
	id := ts.hub.base + 1 // ready
	batch := func() {
		t.Helper()
		emitted := make(chan struct{})
		go func() {
			defer close(emitted)
			for i := range 32 {
				ts.Events.Emit(event.PolicyChanged{From: "a", To: fmt.Sprint(i)})
			}
		}()
		select { // publishing never waits for a client
		case <-emitted:
		case <-time.After(guard):
			t.Fatalf("emitting blocked after event %d: the server waits for a client", id)
		}
		for range 32 {
			id++
			if f := fast.next(); f.id != id {
				t.Fatalf("fast client: event %d, want %d", f.id, id)
			}
		}
	}
	for ts.hub.clients() == 2 {
		if time.Now().After(deadline) {
			t.Fatalf("the slow client was not dropped after %d events", id)
		}
		batch()
	}
	t.Logf("slow client dropped after %d events", id)
	for range 10 {
		batch()
	}
	if n := ts.hub.clients(); n != 1 {
		t.Errorf("%d clients, want only the fast one", n)
	}
}

// With --api-read-token the stream is a read like the others: 401
// without the token, open with it.
func TestEventsReadToken(t *testing.T) {
	ts := startServer(t, func(s *Server) { s.Token = "s3cret"; s.APIReadToken = "reader" })
	if code, _ := authCall(t, ts, http.MethodGet, "/api/v1/events", ""); code != http.StatusUnauthorized {
		t.Errorf("events without a token: %d, want 401", code)
	}
	if code, _ := authCall(t, ts, http.MethodGet, "/api/v1/events", "nope"); code != http.StatusUnauthorized {
		t.Errorf("events with a wrong token: %d, want 401", code)
	}
	c := ts.subscribe(t, "", http.Header{"Authorization": {"Bearer reader"}})
	if c.resp.StatusCode != http.StatusOK {
		t.Fatalf("events with the read token: %d", c.resp.StatusCode)
	}
	ts.policies(t, 1)
	if f := c.next(); f.id != ts.hub.base+2 { // after ready
		t.Errorf("event %+v", f)
	}
}

// report_summary adds up the reports of an interval: one per interval at
// most, none while nothing changes.
func TestReportSummary(t *testing.T) {
	ts := startServer(t, func(s *Server) { s.ReportInterval = time.Hour })
	a := newRelay(t, "a", 2).dial(ts.Addr(), "")
	b := newRelay(t, "b", 2).dial(ts.Addr(), "")
	a.mustJoin(stream, "origin")
	b.mustJoin(stream, "a")
	report := func(r *relay, loss float64) {
		t.Helper()
		if _, err := r.c.Send(&wire.Report{Streams: []wire.StreamReport{{Stream: stream, Parent: r.parents[stream], Level: 1, Loss: loss}}}); err != nil {
			t.Fatal(err)
		}
		r.sync()
	}
	report(a, 0)
	report(b, 0.1)
	summaries := func() []event.ReportSummary {
		var out []event.ReportSummary
		for _, l := range ts.lines() {
			if e, err := event.Decode([]byte(l)); err == nil {
				if s, ok := e.(event.ReportSummary); ok {
					out = append(out, s)
				}
			}
		}
		return out
	}
	ts.check(t, func(st *state) { st.summarize(time.Now()) })
	want := event.ReportSummary{Reports: 2, Lossy: 1, Nodes: 2, Streams: 1, Attached: 2, Depth: 2}
	if got := summaries(); len(got) != 1 || got[0] != want {
		t.Fatalf("summaries %+v, want [%+v]", got, want)
	}
	report(a, 0)
	ts.check(t, func(st *state) { st.summarize(time.Now()) }) // within the interval
	if got := summaries(); len(got) != 1 {
		t.Fatalf("a second summary within the interval: %+v", got)
	}
	ts.check(t, func(st *state) { st.summarize(time.Now().Add(time.Hour)) })
	ts.check(t, func(st *state) { st.summarize(time.Now().Add(3 * time.Hour)) }) // nothing new
	want = event.ReportSummary{Reports: 1, Nodes: 2, Streams: 1, Attached: 2, Depth: 2}
	if got := summaries(); len(got) != 2 || got[1] != want {
		t.Fatalf("summaries %+v, want a second %+v", got, want)
	}
}

// The stream outlives the HTTP read and write timeouts: they bound a
// request's arrival and each write, not how long a client listens.
func TestEventsOutliveHTTPTimeouts(t *testing.T) {
	ts := startServer(t, func(s *Server) { s.HTTPReadTimeout, s.HTTPWriteTimeout = 100*time.Millisecond, 100*time.Millisecond })
	c := ts.subscribe(t, "", nil)
	time.Sleep(400 * time.Millisecond) // both timeouts over, several times
	ts.policies(t, 1)
	if f := c.next(); f.name != "policy_changed" {
		t.Errorf("after the timeouts: %+v", f)
	}
}

// A client resuming with an id of an earlier run of the server (one
// restarted since) is told to reset, even when the new run has already
// emitted more events than that run had.
func TestEventsResetAcrossRestart(t *testing.T) {
	before := startServer(t, nil)
	before.policies(t, 2)
	last := before.hub.lastID()
	before.Close()
	after := startServer(t, nil)
	after.policies(t, 10)
	f := after.subscribe(t, "?since="+strconv.FormatInt(last, 10), nil).next()
	if f.name != "reset" {
		t.Errorf("resuming from %d of the earlier run: %+v, want reset", last, f)
	}
}
