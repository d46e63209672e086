package relay

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ocm-overlay/ocm/internal/control"
	"github.com/ocm-overlay/ocm/internal/server"
	"github.com/ocm-overlay/ocm/internal/tree"
	"github.com/ocm-overlay/ocm/internal/wire"
)

// TestStreamsPruned: whatever way a stream ends (the mediator says
// inactive, never says active, goes away, or the resolve fails), neither
// the relay's maps nor the server's tree keep anything of it; and only
// the mediator that plays a stream can make the relay leave it.
func TestStreamsPruned(t *testing.T) {
	cases := []struct {
		name string
		// end ends the stream the mediator med resolved (and said active
		// if active) on relay r.
		active bool
		end    func(t *testing.T, r *testRelay, med *fakeMediator, stream string)
	}{
		{"inactive", true, func(t *testing.T, _ *testRelay, med *fakeMediator, stream string) {
			med.send(&control.Inactive{Stream: stream})
		}},
		{"never active", false, func(*testing.T, *testRelay, *fakeMediator, string) {}},
		{"mediator gone", true, func(t *testing.T, _ *testRelay, med *fakeMediator, _ string) {
			med.c.Close()
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			origin := startRTSP(t)
			stream := streamOn(origin.Addr())
			srv := startServer(t, tree.Repair, nil)
			r := startRelay(t, "a", srv.Addr(), func(r *Relay) { r.ActiveTimeout = 300 * time.Millisecond })
			med := dialMediator(t, r.ControlAddr())
			med.hello(startRTSP(t).Addr())
			up := med.resolve(stream)
			if tc.active {
				med.send(&control.Active{Stream: stream, Upstream: up})
				// Had the active come after ActiveTimeout, the stream
				// would have been left and joined again: either way, once
				// the active is read the relay has it, playing.
				med.sync()
				// Another local process cannot make the relay leave it.
				other := dialMediator(t, r.ControlAddr())
				other.send(&control.Inactive{Stream: stream})
				other.sync()
				r.log.wait(t, "inactive ignored")
				time.Sleep(2 * r.ActiveTimeout) // an active stream does not expire
				if got := shape(srv.tree(t, stream)); got != "a<origin@1" {
					t.Fatalf("tree = %q, want a<origin@1", got)
				}
			}
			tc.end(t, r, med, stream)
			waitUntil(t, "the server forgets a's stream", func() bool {
				n, _ := serverNode(t, srv, "a")
				return len(n.Streams) == 0
			})
			waitUntil(t, "the relay forgets the stream", func() bool { return r.mapSizes() == relayMaps{} })
		})
	}
	t.Run("resolve failed", func(t *testing.T) {
		srv := startServer(t, tree.Repair, nil)
		r := startRelay(t, "a", srv.Addr(), nil)
		med := dialMediator(t, r.ControlAddr())
		med.hello(startRTSP(t).Addr())
		stream := streamOn(refusingAddr(t)) // the origin does not answer probes
		if rep := med.call(&control.Resolve{Stream: stream, Mode: control.ModeJoin}); rep.Error == "" {
			t.Fatalf("resolve of a stream on a closed port = %+v, want an error", rep)
		}
		if got := r.mapSizes(); got != (relayMaps{}) {
			t.Errorf("relay maps after a failed resolve: %+v", got)
		}
	})
}

// TestHelloOnlyWhatPlays: a stream resolved but not (yet) played is not
// declared in the hello after the relay reconnects; once the mediator says
// it plays, the relay joins it in the new session.
func TestHelloOnlyWhatPlays(t *testing.T) {
	origin := startRTSP(t)
	stream := streamOn(origin.Addr())
	srv := startServer(t, tree.Repair, nil)
	g := startGate(t, srv.Addr())
	g.setOpen(true)
	r := startRelay(t, "a", g.Addr(), nil)
	med := dialMediator(t, r.ControlAddr())
	med.hello(startRTSP(t).Addr())
	up := med.resolve(stream)
	before := hellos(t, srv, "a")
	g.cut()
	waitUntil(t, "the relay says hello again", func() bool { return hellos(t, srv, "a") > before })
	waitUntil(t, "the server forgets the first session's stream", func() bool {
		n, ok := serverNode(t, srv, "a")
		return ok && len(n.Streams) == 0
	})
	med.send(&control.Active{Stream: stream, Upstream: up})
	med.sync()
	if got := shape(srv.tree(t, stream)); got != "a<origin@1" {
		t.Errorf("tree after active = %q, want a<origin@1", got)
	}
}

// TestHelloWithinLineLimit: MaxStreams streams with names near the longest
// allowed would make a hello (and a report) over the line limit; the relay
// leaves streams out instead of never getting back in.
func TestHelloWithinLineLimit(t *testing.T) {
	origin := startRTSP(t)
	srv := startServer(t, tree.Repair, func(s *server.Server) { s.ReportInterval = 50 * time.Millisecond })
	g := startGate(t, srv.Addr())
	g.setOpen(true)
	r := startRelay(t, "a", g.Addr(), nil)
	med := dialMediator(t, r.ControlAddr())
	med.hello(startRTSP(t).Addr())
	med.resolve(streamOn(origin.Addr())) // connected
	up := originUp(origin.Addr())
	long := strings.Repeat("x", 1900)
	var streams []string
	for i := range DefaultMaxStreams - 1 {
		s := fmt.Sprintf("rtsp://%s/%s-%d", origin.Addr(), long, i)
		streams = append(streams, s)
		med.send(&control.Active{Stream: s, Upstream: up})
	}
	med.sync()
	n, _ := serverNode(t, srv, "a")
	if len(n.Streams) != DefaultMaxStreams {
		t.Fatalf("server has a in %d streams, want %d", len(n.Streams), DefaultMaxStreams)
	}
	before := hellos(t, srv, "a")
	g.cut()
	waitUntil(t, "the relay says hello again", func() bool { return hellos(t, srv, "a") > before })
	r.log.wait(t, "hello over the line limit")
	// Reports, each with what fits, bring back what the hello left out;
	// the stream resolved and never played is not among them.
	slices.Sort(streams)
	waitUntil(t, "the server has a in every stream played", func() bool {
		n, _ := serverNode(t, srv, "a")
		return slices.Equal(n.Streams, streams)
	})
}

// TestActiveDuringHello: a stream the mediator says it plays while the
// relay's hello is on its way (the hello did not list it, the session is
// not the current one yet) is joined as soon as the session is: the
// server does not wait for a report or the next reconnect to learn the
// edge (TestHelloOnlyWhatPlays failed now and then on this race).
func TestActiveDuringHello(t *testing.T) {
	origin := startRTSP(t)
	stream := streamOn(origin.Addr())
	fs := startFakeServer(t, func(*wire.GetCandidates) []wire.Candidate { return nil })
	hello, hold := make(chan *wire.Hello, 1), make(chan struct{})
	fs.beforeWelcome = func(h *wire.Hello) { hello <- h; <-hold }
	r := startRelay(t, "a", fs.Addr(), nil)
	med := dialMediator(t, r.ControlAddr())
	med.hello(startRTSP(t).Addr()) // the relay can connect now
	var h *wire.Hello
	select {
	case h = <-hello:
	case <-time.After(20 * time.Second):
		close(hold)
		t.Fatal("no hello")
	}
	if len(h.Streams) != 0 {
		t.Errorf("hello declares %+v before anything plays", h.Streams)
	}
	med.send(&control.Active{Stream: stream, Upstream: originUp(origin.Addr())})
	med.sync()
	close(hold) // the welcome
	waitUntil(t, "the relay joins the stream it plays in the new session", func() bool {
		fs.mu.Lock()
		defer fs.mu.Unlock()
		for _, m := range fs.requests {
			if j, ok := m.Body.(*wire.Joined); ok && j.Stream == stream && j.Parent == wire.OriginID {
				return true
			}
		}
		return false
	})
}
