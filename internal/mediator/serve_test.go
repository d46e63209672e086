package mediator

import (
	"bufio"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/ocm-overlay/ocm/internal/streamurl"
)

// TestServeRelayed: a mediator serving /live as the stream it relays for
// test?ORIGIN (a distribution island's root) answers the plain path with
// that stream, on the one upstream its enhanced readers share; a mediator
// below takes rtsp://ROOT/live as its origin; publishing to /live is
// refused with the reason.
func TestServeRelayed(t *testing.T) {
	_, o := startOrigin(t)
	root := startMediator(t, func(m *Mediator) {
		m.Serve = map[string]streamurl.Origin{"live": o}
		m.Publish = true
	})
	plain := startReader(t, "rtsp://"+root.Addr()+"/live")
	enhanced := startReader(t, o.EnhancedURL(root.Addr()))
	plain.waitPackets(t, 50)
	enhanced.waitPackets(t, 50)
	if ups := root.Streams(); len(ups) != 1 || ups[o.URL()] != o.URL() {
		t.Fatalf("root's upstreams %v, want one, %s from the origin", ups, o.URL())
	}

	// An island's relay: its origin is the root's plain path.
	island := streamurl.Origin{Host: "127.0.0.1", Media: "live"}
	fmt.Sscan(portOf(root.Addr()), &island.Port)
	leaf := startMediator(t, nil)
	below := startReader(t, island.EnhancedURL(leaf.Addr()))
	below.waitPackets(t, 50)
	if ups := leaf.Streams(); ups[island.URL()] != island.URL() {
		t.Fatalf("leaf's upstreams %v, want %s from the root", ups, island.URL())
	}

	if status := announce(t, root.Addr(), "rtsp://"+root.Addr()+"/live"); !strings.HasPrefix(status, "RTSP/1.0 403 ") ||
		!strings.Contains(status, o.URL()) {
		t.Errorf("ANNOUNCE of the served path answered %q, want 403 naming %s", status, o.URL())
	}
	plain.waitPackets(t, 20)
}

// announce sends an ANNOUNCE of url to addr and returns the status line.
func announce(t *testing.T, addr, url string) string {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	sdp := "v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns=x\r\nc=IN IP4 0.0.0.0\r\nt=0 0\r\n" +
		"m=video 0 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\na=control:trackID=0\r\n"
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprintf(conn, "ANNOUNCE %s RTSP/1.0\r\nCSeq: 1\r\nContent-Type: application/sdp\r\nContent-Length: %d\r\n\r\n%s",
		url, len(sdp), sdp)
	status, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil {
		t.Fatalf("ANNOUNCE %s: %v", url, err)
	}
	return strings.TrimSpace(status)
}

// TestServeRelayedRefused: served paths that cannot work stop Start with
// the reason.
func TestServeRelayedRefused(t *testing.T) {
	o := streamurl.Origin{Host: "127.0.0.1", Port: 9, Media: "live"}
	tests := []struct {
		name  string
		m     func() *Mediator
		error string
	}{
		{"slash in the name", func() *Mediator { return &Mediator{Serve: map[string]streamurl.Origin{"a/b": o}} },
			`served path "a/b"`},
		{"empty name", func() *Mediator { return &Mediator{Serve: map[string]streamurl.Origin{"": o}} }, `served path ""`},
		{"the test source's path", func() *Mediator {
			return &Mediator{TestSource: "live", Serve: map[string]streamurl.Origin{"live": o}}
		}, "also the test source's"},
		{"redirect resolver", func() *Mediator {
			return &Mediator{Resolver: &OCM{Redirect: true}, Serve: map[string]streamurl.Origin{"live": o}}
		}, "resolver that relays"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := tt.m()
			m.Listen = "127.0.0.1:0"
			err := m.Start()
			if err == nil {
				m.Close()
				t.Fatal("started")
			}
			if !strings.Contains(err.Error(), tt.error) {
				t.Fatalf("error %q, want it to say %q", err, tt.error)
			}
		})
	}
}
