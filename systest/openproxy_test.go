package systest

import (
	"fmt"
	"math/rand/v2"
	"net"
	"strings"
	"testing"

	"github.com/ocm-overlay/ocm/internal/netnstest"
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
	_, oport, _ := net.SplitHostPort(origin.addr)

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
		url := enhanced(onLoopback(b.addr), "test", tc.query)
		line := statusLineOn(t, dialIn(t, ns, onLoopback(b.addr)), url)
		t.Logf("%s: %s", tc.query, line)
		if !strings.HasPrefix(line, "RTSP/1.0 403 ") || !strings.Contains(line, tc.says) {
			t.Errorf("DESCRIBE %s answered %q, want 403 saying %q", url, line, tc.says)
		}
	}
	if ev := b.events("upstream"); len(ev) > 0 {
		t.Errorf("B opened upstreams it must not: %v", ev)
	}

	// Told about the origin, a mediator on all interfaces relays it.
	told := startMediatorVia(t, "C (all interfaces, --allow-origin 127.0.0.1)", inNS,
		"--listen", "0.0.0.0:0", "--allow-origin", "127.0.0.1")
	url := enhanced(onLoopback(told.addr), "test", "127.0.0.1:"+oport)
	if line := statusLineOn(t, dialIn(t, ns, onLoopback(told.addr)), url); !strings.HasPrefix(line, "RTSP/1.0 200 ") {
		t.Errorf("DESCRIBE %s answered %q, want 200", url, line)
	}
}
