package relay

import (
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ocm-overlay/ocm/internal/api"
	"github.com/ocm-overlay/ocm/internal/control"
	"github.com/ocm-overlay/ocm/internal/event"
	"github.com/ocm-overlay/ocm/internal/testutil"
	"github.com/ocm-overlay/ocm/internal/tree"
	"github.com/ocm-overlay/ocm/internal/wire"
)

// controlClient is any local process on the control socket: it writes
// what it likes and keeps every message the relay sends it.
type controlClient struct {
	c    *control.Conn
	mu   sync.Mutex
	msgs []ctlMsg
	done chan struct{}
}

func dialControl(t *testing.T, addr string) *controlClient {
	t.Helper()
	nc := testutil.Dial(t, addr, guard)
	cc := &controlClient{c: control.NewConn(nc), done: make(chan struct{})}
	go func() {
		defer close(cc.done)
		for {
			m, err := cc.c.ReadMsg()
			if err != nil && !wire.IsBadMessage(err) {
				return
			}
			cc.mu.Lock()
			cc.msgs = append(cc.msgs, ctlMsgOf(m))
			cc.mu.Unlock()
		}
	}()
	t.Cleanup(cc.close)
	return cc
}

func (cc *controlClient) close() {
	cc.c.Close()
	<-cc.done
}

// write sends body with message id id.
func (cc *controlClient) write(t *testing.T, id uint64, body wire.Body) {
	t.Helper()
	if err := cc.c.WriteMsg(wire.Msg{ID: id, Body: body}); err != nil {
		t.Fatalf("control write %s: %v", body.Type(), err)
	}
}

// errors returns the error texts received so far.
func (cc *controlClient) errors() []string {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	var out []string
	for _, m := range cc.msgs {
		if m.Error != "" {
			out = append(out, m.Error)
		}
	}
	return out
}

// reply waits for the answer to id.
func (cc *controlClient) reply(t *testing.T, id uint64) ctlMsg {
	t.Helper()
	var r ctlMsg
	waitUntil(t, fmt.Sprintf("the answer to message %d", id), func() bool {
		cc.mu.Lock()
		defer cc.mu.Unlock()
		i := slices.IndexFunc(cc.msgs, func(m ctlMsg) bool { return m.Re == id })
		if i >= 0 {
			r = cc.msgs[i]
		}
		return i >= 0
	})
	return r
}

// serverNode is the server's view of node, ok false if it has none.
func serverNode(t *testing.T, ts *testServer, node string) (api.Node, bool) {
	t.Helper()
	var nodes []api.Node
	ts.getJSON(t, "/api/v1/nodes", &nodes)
	i := slices.IndexFunc(nodes, func(n api.Node) bool { return n.ID == node })
	if i < 0 {
		return api.Node{}, false
	}
	return nodes[i], true
}

// TestControlActiveFlood: a local process says active for 5,000 made-up
// streams. The relay takes MaxStreams of them and refuses the rest with
// an error naming the limit; the server never holds more; when the
// process goes away its streams are left, and a mediator is served again.
func TestControlActiveFlood(t *testing.T) {
	const flood = 5000
	origin := startRTSP(t)
	srv := startServer(t, tree.Repair, nil)
	r := startRelay(t, "a", srv.Addr(), func(r *Relay) { r.Willing = false })
	med := dialMediator(t, r.ControlAddr())
	med.hello("")
	stream := streamOn(origin.Addr())
	med.resolve(stream) // connected to the server
	up := originUp(origin.Addr())
	med.send(&control.Active{Stream: stream, Upstream: up})

	evil := dialControl(t, r.ControlAddr())
	for i := range flood {
		evil.write(t, 0, &control.Active{Stream: fmt.Sprintf("rtsp://%s/made-up-%d", origin.Addr(), i), Upstream: up})
	}
	evil.write(t, 1, unknownBody{"barrier"})
	evil.reply(t, 1)
	sizes := r.mapSizes()
	n, _ := serverNode(t, srv, "a")
	var refused []string
	for _, e := range evil.errors() {
		if strings.Contains(e, "--max-streams") {
			refused = append(refused, e)
		}
	}
	t.Logf("after %d actives: relay %+v, server has a in %d streams, %d refused", flood, sizes, len(n.Streams), len(refused))
	if sizes.Streams != DefaultMaxStreams || len(n.Streams) != DefaultMaxStreams {
		t.Errorf("relay has %d streams and the server %d, want the limit %d", sizes.Streams, len(n.Streams), DefaultMaxStreams)
	}
	// The mediator's stream is one of the limit's.
	if want := flood - (DefaultMaxStreams - 1); len(refused) != want {
		t.Errorf("%d actives refused with an error naming --max-streams, want %d", len(refused), want)
	}

	// The process goes: only the mediator's stream stays.
	evil.close()
	waitUntil(t, "the made-up streams are left", func() bool {
		n, _ := serverNode(t, srv, "a")
		return slices.Equal(n.Streams, []string{stream}) && r.mapSizes().Streams == 1
	})
	other := streamOn(startRTSP(t).Addr())
	if up := med.resolve(other); up.Node != wire.OriginID {
		t.Errorf("resolve after the flood = %+v, want the origin", up)
	}
}

// TestControlHelloAddress: the RTSP address a relay advertises is its
// own: --rtsp when given, else the first mediator's; a later hello with
// another address is refused and changes nothing at the server, even
// after the relay says hello to it again.
func TestControlHelloAddress(t *testing.T) {
	cases := []struct {
		name    string
		flag    string // --rtsp
		refused bool   // the second hello
	}{
		{"first mediator's", "", true},
		{"--rtsp", "flag", false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			srv := startServer(t, tree.Repair, nil)
			g := startGate(t, srv.Addr())
			g.setOpen(true)
			mine, evil := startRTSP(t).Addr(), startRTSP(t).Addr()
			want := mine
			if tc.flag != "" {
				want = startRTSP(t).Addr()
			}
			r := startRelay(t, "a", g.Addr(), func(r *Relay) {
				if tc.flag != "" {
					r.RTSP = want
				}
			})
			med := dialMediator(t, r.ControlAddr())
			if h := med.hello(mine); h.Error != "" || h.Node != "a" {
				t.Fatalf("first hello = %+v", h)
			}
			advertised := func() string {
				n, _ := serverNode(t, srv, "a")
				return n.RTSP
			}
			waitUntil(t, "the server has a at "+want, func() bool { return advertised() == want })
			hellosBefore := hellos(t, srv, "a")

			other := dialMediator(t, r.ControlAddr())
			h := other.hello(evil)
			if refused := h.Error != ""; refused != tc.refused {
				t.Fatalf("second hello = %+v, want refused %v", h, tc.refused)
			}
			if tc.refused && (!strings.Contains(h.Error, evil) || !strings.Contains(h.Error, mine) || h.Willing != nil) {
				t.Errorf("refusal %q should name both addresses and give nothing away", h.Error)
			}
			other.sync()
			// Say hello to the server again: still our address.
			g.cut()
			waitUntil(t, "the relay says hello again", func() bool { return hellos(t, srv, "a") > hellosBefore })
			if got := advertised(); got != want {
				t.Errorf("server advertises a at %q, want %q", got, want)
			}
			for _, e := range testutil.Find[event.NodeJoined](t, srv.events) {
				if e.Node == "a" && e.RTSP != want {
					t.Errorf("a said hello at %v", e.RTSP)
				}
			}
		})
	}
}

// TestControlClientLimit: past MaxControlClients a connection is told why
// and closed; once one leaves, the next is served.
func TestControlClientLimit(t *testing.T) {
	r := startRelay(t, "a", refusingAddr(t), func(r *Relay) { r.MaxControlClients = 2 })
	first := dialMediator(t, r.ControlAddr())
	first.hello("")
	second := dialMediator(t, r.ControlAddr())
	second.hello("")

	third := dialControl(t, r.ControlAddr())
	select {
	case <-third.done:
	case <-time.After(guard):
		t.Fatalf("the third control client is still connected after %v", guard)
	}
	if errs := third.errors(); len(errs) != 1 || !strings.Contains(errs[0], "--max-control-clients") {
		t.Errorf("third client got %q, want one error naming --max-control-clients", errs)
	}

	first.c.Close()
	<-first.done
	// The relay notices the close in its own time: until then a new
	// client is refused like the third.
	waitUntil(t, "a new client is served", func() bool {
		cc := dialControl(t, r.ControlAddr())
		defer cc.close()
		cc.write(t, 1, &control.Hello{})
		for {
			select {
			case <-cc.done:
				return false
			case <-time.After(10 * time.Millisecond):
			}
			cc.mu.Lock()
			served := slices.ContainsFunc(cc.msgs, func(m ctlMsg) bool { return m.Re == 1 && m.Error == "" })
			cc.mu.Unlock()
			if served {
				return true
			}
		}
	})
}

// TestResolveLimit: past MaxResolves in progress, a resolve is answered at
// once with an error naming the limit; the one in progress still ends.
func TestResolveLimit(t *testing.T) {
	origin := startRTSP(t)
	stream := streamOn(origin.Addr())
	asked, release := make(chan struct{}, 1), make(chan struct{})
	var once sync.Once
	unblock := func() { once.Do(func() { close(release) }) }
	fs := startFakeServer(t, func(*wire.GetCandidates) []wire.Candidate {
		select {
		case asked <- struct{}{}:
		default:
		}
		<-release
		return []wire.Candidate{{Node: wire.OriginID, RTSP: origin.Addr(), Capacity: 4}}
	})
	t.Cleanup(unblock) // before the fake server's cleanup waits for it
	r := startRelay(t, "a", fs.Addr(), func(r *Relay) { r.MaxResolves = 1 })
	cc := dialControl(t, r.ControlAddr())
	cc.write(t, 1, &control.Hello{RTSP: startRTSP(t).Addr()})
	cc.reply(t, 1)
	cc.write(t, 2, &control.Resolve{Stream: stream, Mode: control.ModeJoin})
	select {
	case <-asked:
	case <-time.After(guard):
		t.Fatalf("the first resolve did not reach the server within %v", guard)
	}
	cc.write(t, 3, &control.Resolve{Stream: streamOn(startRTSP(t).Addr()), Mode: control.ModeJoin})
	second := cc.reply(t, 3)
	unblock()
	if !strings.Contains(second.Error, "--max-resolves") {
		t.Errorf("second resolve = %+v, want an error naming --max-resolves", second)
	}
	if first := cc.reply(t, 2); first.Error != "" || first.Upstream == nil || *first.Upstream != originUp(origin.Addr()) {
		t.Errorf("first resolve = %+v, want the origin", first)
	}
}

// TestControlHelloBadAddress: an RTSP address the server would refuse in
// the relay's hello (keeping it out for good) is refused at the control
// socket, and does not take the relay's address.
func TestControlHelloBadAddress(t *testing.T) {
	r := startRelay(t, "a", refusingAddr(t), nil)
	med := dialMediator(t, r.ControlAddr())
	for _, bad := range []string{"127.0.0.1:0", "127.0.0.1:99999", "no-port", "[::1"} {
		if h := med.hello(bad); !strings.Contains(h.Error, bad) {
			t.Errorf("hello %q = %+v, want an error naming it", bad, h)
		}
	}
	good := startRTSP(t).Addr()
	if h := med.hello(good); h.Error != "" {
		t.Errorf("hello %q after bad ones = %+v", good, h)
	}
	if got := r.rtspAddr(); got != good {
		t.Errorf("relay advertises %q, want %q", got, good)
	}
}
