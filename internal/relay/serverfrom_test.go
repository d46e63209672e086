package relay

import (
	"net"
	"strings"
	"testing"
	"time"

	"github.com/ocm-overlay/ocm/internal/allow"
	"github.com/ocm-overlay/ocm/internal/testutil"
)

// Without a server address, a relay takes the origin's host as its server
// only for origins in AllowOrigin: its hello and token go nowhere else,
// and the stream is pulled from the origin directly.
func TestServerFromOriginOnlyWhenAllowed(t *testing.T) {
	// A stand-in for an ocm-server on 127.0.0.2 that records the first
	// line of every connection (a relay's hello) and hangs up.
	ln, err := net.Listen("tcp", "127.0.0.2:0")
	if err != nil {
		t.Fatal(err)
	}
	lines := testutil.FirstLines(t, ln, guard)
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	stream := "rtsp://127.0.0.2:554/" + media

	start := func(id, spec string) *testRelay {
		a, err := allow.Parse(spec)
		if err != nil {
			t.Fatal(err)
		}
		return startRelay(t, id, "", func(r *Relay) {
			r.AllowOrigin, r.ServerPort, r.Token, r.Willing = a, port, "tok-"+id, false
		})
	}

	refusing := start("refusing", "127.0.0.1")
	up := dialMediator(t, refusing.ControlAddr()).resolve(stream)
	if up.URL != stream {
		t.Fatalf("relay without a server resolved %s to %+v, want the origin itself", stream, up)
	}
	refusing.log.wait(t, "may not serve as one", "not in --allow-origin")

	// The control: a relay allowed to take 127.0.0.2 as its server
	// connects there, so a connection from the first would have come
	// first.
	allowing := start("allowing", "127.0.0.0/8")
	dialMediator(t, allowing.ControlAddr()).resolve(stream)
	select {
	case line := <-lines:
		if !strings.Contains(line, `"allowing"`) || !strings.Contains(line, "tok-allowing") {
			t.Fatalf("the first hello at the origin's host is %q, want the allowed relay's", line)
		}
	case <-time.After(guard):
		t.Fatal("the allowed relay never said hello at the origin's host")
	}
	if len(lines) > 0 {
		t.Fatalf("another hello reached the origin's host: %q", <-lines)
	}
}
