package systest

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/ocm-overlay/ocm/internal/control"
	"github.com/ocm-overlay/ocm/internal/event"
	"github.com/ocm-overlay/ocm/internal/netnstest"
	"github.com/ocm-overlay/ocm/internal/testutil"
)

// emptyNetns creates a network namespace with nothing but loopback, so
// nothing a tool in it tries can leave; it returns its name and the
// command prefix that runs a tool there.
func emptyNetns(t *testing.T, prefix string) (string, []string) {
	t.Helper()
	netnstest.Need(t)
	ns := fmt.Sprintf("%s%06x", prefix, rand.Uint32()&0xffffff)
	netnstest.AddNetns(t, ns)
	netnstest.IP(t, "-n", ns, "link", "set", "lo", "up")
	return ns, []string{"ip", "netns", "exec", ns}
}

// dialIn connects to addr from inside namespace ns; the connection is
// closed when the test ends.
func dialIn(t *testing.T, ns, addr string) net.Conn {
	t.Helper()
	var c net.Conn
	var err error
	netnstest.InNetns(t, ns, func() { c, err = net.DialTimeout("tcp", addr, patience) })
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// onLoopback turns a wildcard listen address into the loopback one.
func onLoopback(addr string) string {
	_, port, _ := net.SplitHostPort(addr)
	return net.JoinHostPort("127.0.0.1", port)
}

// TestNoOpenProxy: a mediator listening on all interfaces answers 403 to
// enhanced requests for origins inside the host's network (cloud
// metadata, shared address space, ULA, this host by name or by address)
// and opens no connection for them; one told about an origin relays it.
// The mediators run in an empty network namespace, so whatever they would
// try stays there.
func TestNoOpenProxy(t *testing.T) {
	systemTest(t)
	ns, inNS := emptyNetns(t, "op")
	t.Parallel()
	origin := startMediatorVia(t, "origin", inNS, "--test-source", "test")
	b := startMediatorVia(t, "B (all interfaces)", inNS, "--listen", "0.0.0.0:0")
	_, oport, _ := net.SplitHostPort(origin.Addr)

	for _, tc := range []struct{ query, says string }{
		{"169.254.169.254", "link-local"},
		{"169.254.169.254:80", "link-local"},
		{"[::ffff:169.254.169.254]:80", "link-local"},
		{"100.64.0.1", "not in --allow-origin"},
		{"[fd00::1]", "not in --allow-origin"},
		{"localhost:" + oport, "resolves to"},
		{"127.0.0.1:" + oport, "not in --allow-origin"},
		{"0.0.0.0:" + oport, "unspecified"},
	} {
		url := enhanced(onLoopback(b.Addr), "test", tc.query)
		line := statusLineOn(t, dialIn(t, ns, onLoopback(b.Addr)), url)
		t.Logf("%s: %s", tc.query, line)
		if !strings.HasPrefix(line, "RTSP/1.0 403 ") || !strings.Contains(line, tc.says) {
			t.Errorf("DESCRIBE %s answered %q, want 403 saying %q", url, line, tc.says)
		}
	}
	if ev := eventsOf[event.Upstream](b); len(ev) > 0 {
		t.Errorf("B opened upstreams it must not: %v", ev)
	}

	// Told about the origin, a mediator on all interfaces relays it.
	told := startMediatorVia(t, "C (all interfaces, --allow-origin 127.0.0.1)", inNS,
		"--listen", "0.0.0.0:0", "--allow-origin", "127.0.0.1")
	url := enhanced(onLoopback(told.Addr), "test", "127.0.0.1:"+oport)
	if line := statusLineOn(t, dialIn(t, ns, onLoopback(told.Addr)), url); !strings.HasPrefix(line, "RTSP/1.0 200 ") {
		t.Errorf("DESCRIBE %s answered %q, want 200", url, line)
	}
}

// TestRelayServerOnlyForAllowedOrigins: ocm-relay without --server takes
// port 7070 of an origin's host as its server only for origins in its
// --allow-origin (default loopback): asked for a stream of another host
// it says hello (and gives its token) to no one and pulls from the origin
// directly. Run in an empty network namespace with a second address on
// its loopback device, so the fixed port 7070 and that host are the
// test's own.
func TestRelayServerOnlyForAllowedOrigins(t *testing.T) {
	systemTest(t)
	ns, inNS := emptyNetns(t, "rs")
	t.Parallel()
	other := fmt.Sprintf("10.%d.%d.1", 100+rand.IntN(100), rand.IntN(250))
	netnstest.IP(t, "-n", ns, "addr", "add", other+"/32", "dev", "lo") // another host's address, kept local

	// Stand-ins for ocm-servers on both hosts: they record the first line
	// of every connection (a relay's hello) and hang up.
	hellos := map[string]<-chan string{}
	for _, host := range []string{other, "127.0.0.1"} {
		var ln net.Listener
		var err error
		netnstest.InNetns(t, ns, func() { ln, err = net.Listen("tcp", net.JoinHostPort(host, "7070")) })
		if err != nil {
			t.Fatal(err)
		}
		hellos[host] = testutil.FirstLines(t, ln, patience)
	}

	argv := append(append([]string(nil), inNS...), tool("ocm-relay"), "--control", "127.0.0.1:0",
		"--probe", "127.0.0.1:0", "--willing=false", "--token", "tok-secret")
	relay := start(t, "relay (no --server)", argv[0], argv[1:]...)
	ready, _ := waitEvent(t, relay, "its ready line", 0, func(event.RelayReady) bool { return true })
	ctl := control.NewClient(control.NewConn(dialIn(t, ns, ready.Control)))
	t.Cleanup(func() { ctl.Close() })
	resolve := func(stream string) (control.Upstream, error) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), patience)
		defer cancel()
		return ctl.Resolve(ctx, &control.Resolve{Stream: stream, Mode: control.ModeJoin})
	}

	stream := "rtsp://" + other + ":554/live"
	if up, err := resolve(stream); err != nil || up.URL != stream {
		t.Fatalf("resolve %s: %+v, %v; want the origin itself", stream, up, err)
	}
	if !relay.WaitStderr(func(s string) bool { return strings.Contains(s, "may not serve as one") }) {
		t.Error("the relay's log does not say why it pulls directly")
	}
	// The control: an origin on this host is allowed, so its host gets
	// the hello; one to the other host would have come first.
	_, _ = resolve("rtsp://127.0.0.1:554/live")
	select {
	case line := <-hellos["127.0.0.1"]:
		if !strings.Contains(line, "tok-secret") {
			t.Errorf("the hello on 127.0.0.1:7070 has no token: %q", line)
		}
	case <-time.After(patience):
		t.Error("the relay never said hello to the server on its own host")
	}
	select {
	case line := <-hellos[other]:
		t.Fatalf("the relay said hello to %s:7070, an origin's host it was not told about: %q", other, line)
	default:
	}
}
