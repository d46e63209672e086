package systest

import (
	"net"
	"strings"
	"testing"
	"time"

	"github.com/ocm-overlay/ocm/internal/event"
)

// TestConnectionFlood: silent TCP connections by the hundred, more than
// the mediator has files, do not end it. A reader playing through it sees
// no gap, the mediator says what it refused, and once the flood ends new
// players are served. Once with the default bound on connections (the
// flood meets the bound), once with a bound above the file limit (the
// flood meets EMFILE in accept).
func TestConnectionFlood(t *testing.T) {
	systemTest(t)
	require(t, "prlimit")
	t.Parallel()
	const files = 256
	origin := startMediator(t, "origin", "--test-source", "test")

	for _, tc := range []struct {
		name    string
		args    []string
		logSays string
	}{
		{"default bound", nil, "connection limit reached"},
		{"bound above the file limit", []string{"--max-conns", "100000"}, "too many open files"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := startMediatorVia(t, "B", []string{"prlimit", "--nofile=256:256", "--"}, tc.args...)
			url := enhanced(b.Addr, "test", origin.Addr)
			r := startReader(t, "reader", url)
			waitEvent(t, r, "50 packets", 0, progressAtLeast(50))
			before := packetsSoFar(r)
			floodStart := time.Now()

			flood := floodConns(t, b.Addr, 3*files)
			t.Logf("%d silent connections opened to B (file limit %d)", len(flood), files)
			if !b.WaitStderr(func(s string) bool { return strings.Contains(s, tc.logSays) }) {
				t.Errorf("B's log does not say %q", tc.logSays)
			}
			waitEvent(t, r, "150 packets more during the flood", 0, progressAtLeast(before+150))
			if b.Exited() {
				t.Fatalf("B died in the flood: %v\n%s", b.Err(), tail(b.Stderr(), 20))
			}
			during := packetsSoFar(r) - before
			for _, c := range flood {
				c.Close()
			}

			// New players are served once the flood ends (B notices the
			// closed connections as it reads them).
			deadline := time.Now().Add(patience)
			for {
				out, errOut, err := run(t, tool("rtsp-mediator"), "read", url, "--duration", "1s")
				if err == nil {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("no new reader served after the flood: %v\n%s\n%s", err, out, errOut)
				}
				time.Sleep(250 * time.Millisecond)
			}
			if b.Exited() {
				t.Fatalf("B died: %v", b.Err())
			}
			stall := longestStall(progressSeries(r), floodStart)
			sum := stopReader(t, r)
			t.Logf("reader: %.0f packets during the flood, %d in all, %d lost, longest stall since the flood began %s",
				during, sum.Packets, sum.Lost, stall.Round(time.Millisecond))
			if sum.Lost != 0 {
				t.Errorf("the reader lost %d packets in the flood", sum.Lost)
			}
			if ev := eventsOf[event.Conns](b); len(ev) > 0 {
				last := ev[len(ev)-1]
				t.Logf("B's last conns line: open %d, max %d, refused %d, silent closed %d, accept errors %d",
					last.Open, last.MaxConns, last.Refused, last.SilentClosed, last.AcceptErrors)
			} else {
				t.Error("B printed no conns line about the flood")
			}
		})
	}
}

// floodConns opens up to n TCP connections to addr that never send a
// byte; they are closed when the test ends. Connections the kernel cannot
// take any more (a full backlog) are given up after a short wait.
func floodConns(t *testing.T, addr string, n int) []net.Conn {
	t.Helper()
	var out []net.Conn
	for range n {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			continue
		}
		out = append(out, c)
	}
	t.Cleanup(func() {
		for _, c := range out {
			c.Close()
		}
	})
	return out
}
