package relay

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/textproto"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/rtp"

	"github.com/ocm-overlay/ocm/internal/api"
	"github.com/ocm-overlay/ocm/internal/event"
	"github.com/ocm-overlay/ocm/internal/mediator"
	"github.com/ocm-overlay/ocm/internal/testutil"
	"github.com/ocm-overlay/ocm/internal/tree"
)

// startOrigin starts a real mediator serving the built-in test stream at
// /test on 127.0.0.1:0: an origin that has that stream and no other.
func startOrigin(t *testing.T) *mediator.Mediator {
	t.Helper()
	m := &mediator.Mediator{Listen: "127.0.0.1:0", TestSource: "test"}
	if err := m.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.Close)
	return m
}

// startViewer starts a real mediator on 127.0.0.1:0 resolving through the
// relay whose control socket is at control (rtsp-mediator --resolver ocm).
func startViewer(t *testing.T, control string) *mediator.Mediator {
	t.Helper()
	return startViewerWith(t, control, nil)
}

// startViewerWith is startViewer with mod applied to the mediator before
// it starts.
func startViewerWith(t *testing.T, control string, mod func(*mediator.Mediator)) *mediator.Mediator {
	t.Helper()
	lb := newLogBuffer(t)
	ocm := &mediator.OCM{Addr: control}
	m := &mediator.Mediator{Listen: "127.0.0.1:0", Resolver: ocm, Log: lb.logger().With("test", "viewer")}
	if mod != nil {
		mod(m)
	}
	if err := m.Start(); err != nil {
		t.Fatal(err)
	}
	ocm.Attach(m)
	t.Cleanup(func() {
		ocm.Close()
		m.Close()
	})
	return m
}

// describeAll sends a DESCRIBE for every URL to the RTSP server at addr,
// over workers connections at once, and counts the answers by status
// (0: the request failed on the connection).
func describeAll(t *testing.T, addr string, urls []string, workers int) map[int]int {
	t.Helper()
	var mu sync.Mutex
	statuses := map[int]int{}
	var next atomic.Int64
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var nc net.Conn
			var tp *textproto.Reader
			defer func() {
				if nc != nil {
					nc.Close()
				}
			}()
			for {
				i := int(next.Add(1)) - 1
				if i >= len(urls) {
					return
				}
				if nc == nil {
					var err error
					if nc, err = net.DialTimeout("tcp", addr, guard); err != nil {
						t.Errorf("dial %s: %v", addr, err)
						return
					}
					tp = textproto.NewReader(bufio.NewReader(nc))
				}
				status, err := describeOnce(nc, tp, urls[i], i+1)
				if err != nil {
					nc.Close()
					nc = nil
				}
				mu.Lock()
				statuses[status]++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return statuses
}

// describeOnce writes one DESCRIBE and reads its answer's status, skipping
// any body.
func describeOnce(nc net.Conn, tp *textproto.Reader, url string, cseq int) (int, error) {
	_ = nc.SetDeadline(time.Now().Add(guard))
	req := fmt.Sprintf("DESCRIBE %s RTSP/1.0\r\nCSeq: %d\r\nAccept: application/sdp\r\n\r\n", url, cseq)
	if _, err := nc.Write([]byte(req)); err != nil {
		return 0, err
	}
	line, err := tp.ReadLine()
	if err != nil {
		return 0, err
	}
	f := strings.Fields(line)
	if len(f) < 2 {
		return 0, fmt.Errorf("bad status line %q", line)
	}
	status, err := strconv.Atoi(f[1])
	if err != nil {
		return 0, fmt.Errorf("bad status line %q", line)
	}
	h, err := tp.ReadMIMEHeader()
	if err != nil {
		return status, err
	}
	if n, _ := strconv.Atoi(h.Get("Content-Length")); n > 0 {
		if _, err := tp.R.Discard(n); err != nil {
			return status, err
		}
	}
	return status, nil
}

// cut closes every connection the gate passes: the relay loses the server
// and has to say hello again.
func (g *gate) cut() {
	g.mu.Lock()
	defer g.mu.Unlock()
	for _, c := range g.conns {
		c.Close()
	}
	g.conns = nil
}

// nodeStreams is the streams the server has node in.
func nodeStreams(t *testing.T, ts *testServer, node string) []string {
	t.Helper()
	var nodes []api.Node
	ts.getJSON(t, "/api/v1/nodes", &nodes)
	for _, n := range nodes {
		if n.ID == node {
			return n.Streams
		}
	}
	return nil
}

// hellos counts the server's node_joined events for node.
func hellos(t *testing.T, ts *testServer, node string) int {
	n := 0
	for _, e := range testutil.Find[event.NodeJoined](t, ts.events) {
		if e.Node == node {
			n++
		}
	}
	return n
}

// TestMadeUpStreamsFlood: a player asks the mediator (--resolver ocm) for
// 5,000 streams that do not exist, half on an origin without them, half on
// a closed port. None of them plays, so none may stay in the relay or in
// the server's tree; the relay's hello after losing the server stays
// within the line limit (it used to list every made-up stream and never
// got back in); and a real stream is relayed afterwards.
func TestMadeUpStreamsFlood(t *testing.T) {
	const flood, workers = 5000, 8
	origin := startOrigin(t)
	closed := refusingAddr(t)
	srv := startServer(t, tree.Repair, nil)
	g := startGate(t, srv.Addr())
	g.setOpen(true)
	r := startRelay(t, "a", g.Addr(), nil)
	viewer := startViewer(t, r.ControlAddr())

	urls := make([]string, flood)
	for i := range urls {
		host := origin.Addr()
		if i%2 == 1 {
			host = closed
		}
		urls[i] = fmt.Sprintf("rtsp://%s/made-up-%d?%s", viewer.Addr(), i, host)
	}
	start := time.Now()
	statuses := describeAll(t, viewer.Addr(), urls, workers)
	t.Logf("%d DESCRIBEs of made-up streams in %v: statuses %v", flood, time.Since(start).Round(time.Millisecond), statuses)
	if statuses[200] != 0 {
		t.Fatalf("%d made-up streams answered 200", statuses[200])
	}

	// Lose the server: the relay says hello again, and is let in.
	before := hellos(t, srv, "a")
	g.cut()
	waitUntil(t, "the relay says hello again", func() bool { return hellos(t, srv, "a") > before })

	waitUntil(t, "the server forgets the made-up streams", func() bool {
		return len(nodeStreams(t, srv, "a")) == 0
	})
	waitUntil(t, "the relay forgets the made-up streams", func() bool { return r.mapSizes() == relayMaps{} })

	// A real stream is relayed through the overlay.
	stream := "rtsp://" + origin.Addr() + "/test"
	var packets atomic.Int64
	testutil.Play(t, "rtsp://"+viewer.Addr()+"/test?"+origin.Addr(), func(*rtp.Packet) { packets.Add(1) })
	waitUntil(t, "the player receives packets", func() bool { return packets.Load() >= 20 })
	waitUntil(t, "the server has the relay under the origin", func() bool {
		return shape(srv.tree(t, stream)) == "a<origin@1"
	})
	if got := nodeStreams(t, srv, "a"); !slices.Equal(got, []string{stream}) {
		t.Errorf("server has a in %v, want only %s", got, stream)
	}
}

// relayMaps is how many entries the relay's maps hold: streams, streams
// acted on (turns), candidate addresses known, resolves waiting for a
// RECONNECT.
type relayMaps struct {
	Streams, Turns, Nodes, Waiting int
}

func (r *Relay) mapSizes() relayMaps {
	var m relayMaps
	_ = r.call(context.Background(), func(st *state) {
		m = relayMaps{Streams: len(st.streams), Turns: len(st.turns), Waiting: len(st.waiting)}
		for _, ss := range st.streams {
			m.Nodes += len(ss.nodes)
		}
	})
	return m
}
