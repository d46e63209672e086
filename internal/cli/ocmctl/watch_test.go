package ocmctl

import (
	"context"
	"fmt"
	"io"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ocm-overlay/ocm/internal/event"
	"github.com/ocm-overlay/ocm/internal/server"
	"github.com/ocm-overlay/ocm/internal/testutil"
	"github.com/ocm-overlay/ocm/internal/wire"
)

const liveStream = "rtsp://127.0.0.1:5554/live"

// joinRelay connects a relay that joins liveStream under the origin; the
// returned connection's close is its failure.
func joinRelay(t *testing.T, addr, id string) net.Conn {
	t.Helper()
	nc, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	c := wire.NewConn(nc)
	c.SetReadTimeout(10 * time.Second)
	for _, body := range []wire.Body{
		&wire.Hello{Node: id, RTSP: "127.0.0.1:5554", Probe: "127.0.0.1:6072", Willing: true, Capacity: 2, Cores: 1},
		&wire.Joined{Stream: liveStream, Parent: wire.OriginID},
	} {
		if _, err := c.Send(body); err != nil {
			t.Fatal(err)
		}
		m, err := c.ReadMsg()
		if err != nil {
			t.Fatal(err)
		}
		if e, ok := m.Body.(*wire.Error); ok {
			t.Fatalf("%s: %s refused: %s", id, body.Type(), e.Message)
		}
	}
	return nc
}

// runWatch runs ocm-ctl with args until the returned stop is called.
func runWatch(t *testing.T, args ...string) (out *testutil.Buffer, stop func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	out = &testutil.Buffer{}
	done := make(chan error, 1)
	go func() {
		cmd := newCtlForTest(nil)
		cmd.SetOut(out)
		cmd.SetErr(out)
		cmd.SetArgs(args)
		done <- cmd.ExecuteContext(ctx)
	}()
	stopped := false
	stop = func() error {
		if stopped {
			return nil
		}
		stopped = true
		cancel()
		select {
		case err := <-done:
			return err
		case <-time.After(10 * time.Second):
			t.Fatal("watch did not stop on interrupt")
			return nil
		}
	}
	t.Cleanup(func() { _ = stop() })
	return out, stop
}

// waitFor waits until cond holds on out.
func waitFor(t *testing.T, out *testutil.Buffer, what string, cond func(string) bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond(out.String()) {
		if time.Now().After(deadline) {
			t.Fatalf("no %s in:\n%s", what, out.String())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// Against a real server, watch follows the event stream: a relay's
// failure is redrawn (table) or printed as its event (-o json), without
// polling.
func TestCtlWatchLive(t *testing.T) {
	srv := &server.Server{Listen: "127.0.0.1:0", HTTP: "127.0.0.1:0", Heartbeat: time.Hour}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Close)
	a := joinRelay(t, srv.Addr(), "a")
	b := joinRelay(t, srv.Addr(), "b")

	// The table: drawn once, then again after the failure, without a.
	out, stop := runWatch(t, "--server", srv.HTTPAddr(), "watch", "--interval", "10ms")
	waitFor(t, out, "first drawing", func(s string) bool { return strings.Contains(s, "a ") && strings.Contains(s, "b ") })
	if first := out.String(); !strings.HasPrefix(first, "live (event ") {
		t.Fatalf("first drawing not live:\n%s", first)
	}
	a.Close()
	waitFor(t, out, "redraw without a", func(s string) bool {
		i := strings.LastIndex(s, "live (event ")
		return i > 0 && !strings.Contains(s[i:], "a ") && strings.Contains(s[i:], "b ")
	})
	if err := stop(); err != nil {
		t.Errorf("interrupted watch: %v", err)
	}

	// -o json: the events themselves, one line each.
	out, stop = runWatch(t, "--server", srv.HTTPAddr(), "-o", "json", "watch")
	// Events until watch prints one: then it is subscribed.
	waitFor(t, out, "an event", func(s string) bool {
		srv.Events.Emit(event.PolicyChanged{From: "x", To: "y"})
		return strings.Contains(s, "policy_changed")
	})
	b.Close()
	waitFor(t, out, "node_failed of b", func(s string) bool { return strings.Contains(s, `"node":"b"`) })
	if err := stop(); err != nil {
		t.Errorf("interrupted watch: %v", err)
	}
	var failed []event.NodeFailed
	for _, l := range strings.Split(strings.TrimSpace(out.String()), "\n") {
		e, err := event.Decode([]byte(l))
		if err != nil {
			t.Fatalf("not an event line: %q: %v", l, err)
		}
		if f, ok := e.(event.NodeFailed); ok {
			failed = append(failed, f)
		}
	}
	if len(failed) != 1 || failed[0].Node != "b" {
		t.Errorf("node_failed events %+v, want b's", failed)
	}
}

// cutProxy forwards TCP connections to addr until cut closes them all;
// with no addr, it closes them at once.
type cutProxy struct {
	ln    net.Listener
	mu    sync.Mutex
	addr  string
	conns []net.Conn
}

func startCutProxy(t *testing.T, addr string) *cutProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &cutProxy{ln: ln, addr: addr}
	testutil.Serve(t, ln, 0, func(in net.Conn) {
		p.mu.Lock()
		addr := p.addr
		p.mu.Unlock()
		if addr == "" {
			return
		}
		out, err := net.Dial("tcp", addr)
		if err != nil {
			return
		}
		defer out.Close()
		p.mu.Lock()
		p.conns = append(p.conns, in, out)
		p.mu.Unlock()
		done := make(chan struct{})
		go func() { defer close(done); _, _ = io.Copy(out, in); out.Close() }()
		_, _ = io.Copy(in, out)
		in.Close()
		<-done
	})
	return p
}

func (p *cutProxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.conns {
		c.Close()
	}
	p.conns = nil
}

// When its connection drops, watch reconnects and resumes after the last
// event it printed: the events of the gap come, in order, once.
func TestCtlWatchResumes(t *testing.T) {
	srv := &server.Server{Listen: "127.0.0.1:0", HTTP: "127.0.0.1:0", Heartbeat: time.Hour}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Close)
	proxy := startCutProxy(t, srv.HTTPAddr())
	out, stop := runWatch(t, "--server", proxy.ln.Addr().String(), "-o", "json", "watch", "--interval", "10ms")
	waitFor(t, out, "an event", func(s string) bool {
		srv.Events.Emit(event.PolicyChanged{From: "x", To: "sync"})
		return strings.Contains(s, "policy_changed")
	})
	proxy.cut()
	for i := range 5 {
		srv.Events.Emit(event.PolicyChanged{From: "x", To: fmt.Sprint("gap-", i)})
	}
	waitFor(t, out, "the events of the gap", func(s string) bool { return strings.Contains(s, `"gap-4"`) })
	if err := stop(); err != nil {
		t.Errorf("interrupted watch: %v", err)
	}
	var gap []string
	for _, l := range strings.Split(strings.TrimSpace(out.String()), "\n") {
		if e, err := event.Decode([]byte(l)); err == nil {
			if p, ok := e.(event.PolicyChanged); ok && strings.HasPrefix(p.To, "gap-") {
				gap = append(gap, p.To)
			}
		} else if !strings.Contains(l, "reconnecting") {
			t.Errorf("not an event line: %q", l)
		}
	}
	if want := []string{"gap-0", "gap-1", "gap-2", "gap-3", "gap-4"}; !slices.Equal(gap, want) {
		t.Errorf("events of the gap %v, want %v\n%s", gap, want, out.String())
	}
}

// A server not answering when watch starts is polled until it answers
// with its event stream, which watch then follows.
func TestCtlWatchGoesLive(t *testing.T) {
	srv := &server.Server{Listen: "127.0.0.1:0", HTTP: "127.0.0.1:0", Heartbeat: time.Hour}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Close)
	proxy := startCutProxy(t, "") // nobody behind it yet
	out, stop := runWatch(t, "--server", proxy.ln.Addr().String(), "watch", "--interval", "10ms")
	waitFor(t, out, "a failed round", func(s string) bool { return strings.Contains(s, "every 10ms") })
	proxy.mu.Lock()
	proxy.addr = srv.HTTPAddr()
	proxy.mu.Unlock()
	waitFor(t, out, "a live drawing", func(s string) bool { return strings.Contains(s, "live (event ") })
	joinRelay(t, srv.Addr(), "a")
	waitFor(t, out, "a redraw with a", func(s string) bool {
		i := strings.LastIndex(s, "live (event ")
		return i >= 0 && strings.Contains(s[i:], "a ")
	})
	if err := stop(); err != nil {
		t.Errorf("interrupted watch: %v", err)
	}
}
