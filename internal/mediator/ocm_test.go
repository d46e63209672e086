package mediator

import (
	"context"
	"log/slog"
	"net"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ocm-overlay/ocm/internal/control"
	"github.com/ocm-overlay/ocm/internal/streamurl"
	"github.com/ocm-overlay/ocm/internal/testutil"
	"github.com/ocm-overlay/ocm/internal/wire"
)

// fakeRelay is ocm-relay's side of the control socket on 127.0.0.1:0:
// it welcomes a hello, answers each resolve with answer (a nil body
// hangs up instead) and keeps every resolve it read.
type fakeRelay struct {
	ln      net.Listener
	welcome control.Welcome
	answer  func(*control.Resolve) wire.Body
	garbage string // written before the welcome

	mu       sync.Mutex
	resolves []control.Resolve
}

func startFakeRelay(t *testing.T, welcome control.Welcome, answer func(*control.Resolve) wire.Body) *fakeRelay {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeRelay{ln: ln, welcome: welcome, answer: answer}
	testutil.Serve(t, ln, guard, func(nc net.Conn) { f.serve(nc, control.NewConn(nc)) })
	return f
}

func (f *fakeRelay) serve(nc net.Conn, c *control.Conn) {
	for {
		m, err := c.ReadMsg()
		if err != nil {
			return
		}
		switch b := m.Body.(type) {
		case *control.Hello:
			if f.garbage != "" {
				_, _ = nc.Write([]byte(f.garbage))
			}
			w := f.welcome
			_ = c.Reply(m.ID, &w)
		case *control.Resolve:
			f.mu.Lock()
			f.resolves = append(f.resolves, *b)
			f.mu.Unlock()
			body := f.answer(b)
			if body == nil {
				return
			}
			_ = c.Reply(m.ID, body)
		}
	}
}

func (f *fakeRelay) asked() []control.Resolve {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]control.Resolve(nil), f.resolves...)
}

// attachOCM starts a mediator resolving through the relay at addr; log
// (if not nil) gets the resolver's log.
func attachOCM(t *testing.T, addr string, redirect bool, log *testutil.Buffer) *OCM {
	t.Helper()
	o := &OCM{Addr: addr, Redirect: redirect}
	if log != nil {
		o.Log = slog.New(slog.NewTextHandler(log, nil))
	}
	m := startMediator(t, func(m *Mediator) { m.Resolver = o })
	o.Attach(m)
	t.Cleanup(o.Close)
	return o
}

func testOrigin(t *testing.T) streamurl.Origin {
	t.Helper()
	o, err := streamurl.Parse("rtsp://127.0.0.1:554/live")
	if err != nil {
		t.Fatal(err)
	}
	return o
}

// TestOCMResolveModes: the mediator's resolve says why it asks: join for
// a first resolve, after_loss with the upstreams that failed, redirect
// for the light client; the relay's upstream is what Resolve returns.
func TestOCMResolveModes(t *testing.T) {
	up := control.Upstream{URL: "rtsp://127.0.0.1:8555/live?127.0.0.1:554", Addr: "127.0.0.1:8555", Node: "n2"}
	relay := startFakeRelay(t, control.Welcome{Node: "n1", Willing: true},
		func(*control.Resolve) wire.Body { return &control.Resolved{Upstream: up} })
	origin := testOrigin(t)
	ctx, cancel := context.WithTimeout(context.Background(), guard)
	defer cancel()

	o := attachOCM(t, relay.ln.Addr().String(), false, nil)
	for _, req := range []ResolveRequest{{Origin: origin}, {Origin: origin, Exclude: []string{"127.0.0.1:8556"}}} {
		got, err := o.Resolve(ctx, req)
		if want := (Upstream{URL: up.URL, Addr: up.Addr, Node: up.Node}); err != nil || got != want {
			t.Fatalf("resolve %+v = %+v, %v; want %+v", req, got, err, want)
		}
	}
	light := attachOCM(t, relay.ln.Addr().String(), true, nil)
	if got, err := light.Resolve(ctx, ResolveRequest{Origin: origin}); err != nil || !got.Redirect || got.URL != up.URL {
		t.Fatalf("light client's resolve = %+v, %v; want a redirect to %s", got, err, up.URL)
	}
	want := []control.Resolve{
		{Stream: origin.URL(), Mode: control.ModeJoin},
		{Stream: origin.URL(), Mode: control.ModeAfterLoss, Exclude: []string{"127.0.0.1:8556"}},
		{Stream: origin.URL(), Mode: control.ModeRedirect},
	}
	if got := relay.asked(); !reflect.DeepEqual(got, want) {
		t.Errorf("the relay was asked %+v, want %+v", got, want)
	}
}

// TestOCMRelayAnswers: the relay's welcome says whether relays may pull
// from this host; a refused resolve is an error carrying the relay's
// reason, not a fallback to the origin; a line from the relay that is not
// a message is logged, saying what was wrong, and skipped.
func TestOCMRelayAnswers(t *testing.T) {
	relay := startFakeRelay(t, control.Welcome{Node: "n1", Willing: false}, func(r *control.Resolve) wire.Body {
		return &wire.Error{Code: control.CodeNoUpstream, Message: "no usable parent for " + r.Stream}
	})
	relay.garbage = "not json\n"
	var log testutil.Buffer
	o := attachOCM(t, relay.ln.Addr().String(), false, &log)
	ctx, cancel := context.WithTimeout(context.Background(), guard)
	defer cancel()
	origin := testOrigin(t)
	_, err := o.Resolve(ctx, ResolveRequest{Origin: origin})
	if err == nil || !strings.Contains(err.Error(), "ocm-relay: no usable parent for "+origin.URL()) {
		t.Fatalf("resolve refused by the relay: err = %v, want the relay's reason", err)
	}
	if o.AcceptsRelays() {
		t.Error("a passive relay's welcome left the mediator accepting relays")
	}
	if got := log.String(); !strings.Contains(got, "ignoring a bad message from ocm-relay") || !strings.Contains(got, "not a JSON object") {
		t.Errorf("a bad line from the relay is not logged with what was wrong:\n%s", got)
	}
}

// TestOCMRelayGone: with no relay, or one that hangs up during the
// resolve, the mediator pulls from the origin itself.
func TestOCMRelayGone(t *testing.T) {
	origin := testOrigin(t)
	direct := Upstream{URL: origin.URL(), Addr: origin.Addr(), Node: "origin"}
	ctx, cancel := context.WithTimeout(context.Background(), guard)
	defer cancel()

	hangUp := startFakeRelay(t, control.Welcome{Node: "n1", Willing: true}, func(*control.Resolve) wire.Body { return nil })
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	nobody := ln.Addr().String()
	ln.Close()
	for name, addr := range map[string]string{"hangs up": hangUp.ln.Addr().String(), "no relay": nobody} {
		o := attachOCM(t, addr, false, nil)
		if got, err := o.Resolve(ctx, ResolveRequest{Origin: origin}); err != nil || got != direct {
			t.Errorf("%s: resolve = %+v, %v; want the origin %+v", name, got, err, direct)
		}
	}
	if n := len(hangUp.asked()); n == 0 {
		t.Error("the relay that hangs up was never asked")
	}
}

// guard bounds a wait so a bug fails instead of hanging; a liveness
// limit, never a timing assertion.
const guard = 10 * time.Second
