package systest

import (
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/ocm-overlay/ocm/internal/event"
	"github.com/ocm-overlay/ocm/internal/lab"
)

// The processes of these tests are internal/lab's: proc a running tool,
// mediator an rtsp-mediator; their events are internal/event's types.
type (
	proc     = lab.Proc
	mediator = lab.Mediator
)

// patience bounds every wait: a liveness limit for a shared, noisy machine,
// never a performance assertion.
const patience = lab.Patience

// start runs path with args. The process is killed when the test ends, and
// its output is logged if the test failed.
func start(t *testing.T, name, path string, args ...string) *proc {
	t.Helper()
	p, err := lab.Start(t, name, path, args...)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// parseEvent decodes one line of a finished run's stdout, with the time the
// tool wrote in it; nil if the line is not an event.
func parseEvent(line string) (event.Event, time.Time) {
	e, at, err := event.DecodeTime([]byte(line))
	if err != nil {
		return nil, time.Time{}
	}
	return e, at
}

// waitEvent waits for p's first event T at stdout line from or later that
// match accepts, and returns it and its line.
func waitEvent[T event.Event](t *testing.T, p lab.Source, what string, from int, match func(T) bool) (T, int) {
	t.Helper()
	return lab.WaitEvent(t, p, what, from, match)
}

// timed is an event and the time its tool wrote in it.
type timed[T event.Event] struct {
	At time.Time
	E  T
}

// timedEventsOf returns the events T printed so far, with their times.
func timedEventsOf[T event.Event](p lab.Source) []timed[T] {
	var out []timed[T]
	for _, e := range lab.EventsSince[T](p, time.Time{}) {
		out = append(out, timed[T]{e.Time, e.E})
	}
	return out
}

// eventsOf returns the events T printed so far.
func eventsOf[T event.Event](p lab.Source) []T { return lab.Events[T](p) }

// mediatorArgs come before a test's own flags, which override them: stats
// often enough to watch (lab adds TCP only on a free loopback port).
var mediatorArgs = []string{"--stats-interval", "500ms"}

func startMediator(t *testing.T, name string, args ...string) *mediator {
	t.Helper()
	return startMediatorVia(t, name, nil, args...)
}

// tryMediator starts a mediator and waits for its ready line; it returns an
// error, with the mediator's stderr, if the mediator exits first.
func tryMediator(t *testing.T, name string, args ...string) (*mediator, error) {
	t.Helper()
	return tryMediatorVia(t, name, nil, args...)
}

// startMediatorVia starts a mediator through a launcher command, such as
// prlimit or ip netns exec.
func startMediatorVia(t *testing.T, name string, launcher []string, args ...string) *mediator {
	t.Helper()
	m, err := tryMediatorVia(t, name, launcher, args...)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// tryMediatorVia is tryMediator through launcher (none if empty).
func tryMediatorVia(t *testing.T, name string, launcher []string, args ...string) (*mediator, error) {
	t.Helper()
	return lab.StartMediator(t, tools, name, launcher, append(append([]string(nil), mediatorArgs...), args...)...)
}

// startMediatorAt starts a mediator on a fixed address, as a restarted host
// would; it retries while the port is still held.
func startMediatorAt(t *testing.T, name, addr string, args ...string) *mediator {
	t.Helper()
	var err error
	for range 20 {
		var m *mediator
		if m, err = tryMediator(t, name, append([]string{"--listen", addr}, args...)...); err == nil {
			return m
		}
		if !strings.Contains(err.Error(), "address already in use") {
			break
		}
		time.Sleep(250 * time.Millisecond)
	}
	t.Fatal(err)
	return nil
}

// startMediatorUDP starts a mediator that also serves players over UDP,
// on two consecutive free ports; it tries again if another process takes
// them first.
func startMediatorUDP(t *testing.T, name string, args ...string) *mediator {
	t.Helper()
	var err error
	for range 5 {
		rtp := freeUDPPair(t)
		udp := []string{"--rtp", fmt.Sprintf("127.0.0.1:%d", rtp), "--rtcp", fmt.Sprintf("127.0.0.1:%d", rtp+1)}
		var m *mediator
		if m, err = tryMediator(t, name, append(udp, args...)...); err == nil {
			return m
		}
		if !strings.Contains(err.Error(), "address already in use") {
			break
		}
	}
	t.Fatal(err)
	return nil
}

// freeUDPPair returns an even port P such that P and P+1 were both free on
// 127.0.0.1 a moment ago.
func freeUDPPair(t *testing.T) int {
	t.Helper()
	for range 100 {
		c1, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := c1.LocalAddr().(*net.UDPAddr).Port
		if port%2 != 0 { // gortsplib wants an even RTP port
			c1.Close()
			continue
		}
		c2, err := net.ListenPacket("udp", fmt.Sprintf("127.0.0.1:%d", port+1))
		c1.Close()
		if err == nil {
			c2.Close()
			return port
		}
	}
	t.Fatal("found no two consecutive free UDP ports")
	return 0
}

// enhanced is the URL a player opens on a mediator to get MEDIA from the
// origin: rtsp://MEDIATOR/MEDIA?ORIGIN.
var enhanced = lab.Enhanced

// upstreamEvent matches a mediator's upstream event in state with the
// upstream URL up.
func upstreamEvent(state, up string) func(event.Upstream) bool {
	return func(e event.Upstream) bool {
		return e.State == state && e.Upstream == up
	}
}

// startReader runs `rtsp-mediator read URL` until stopped: a Go player that
// prints its packet, frame and sequence-gap counts four times a second.
func startReader(t *testing.T, name, url string) *proc {
	t.Helper()
	return start(t, name, tool("rtsp-mediator"), "read", url, "--interval", "250ms")
}

// progressAtLeast matches a reader's progress line once packets >= n.
func progressAtLeast(n float64) func(event.ReadProgress) bool {
	return func(e event.ReadProgress) bool { return float64(e.Packets) >= n }
}

// packetsSoFar is the packet count of the reader's latest progress line.
func packetsSoFar(r *proc) float64 {
	e, _ := lab.Last[event.ReadProgress](r)
	return float64(e.Packets)
}

// stopReader stops a reader and returns its summary line; the reader must
// exit cleanly, its session never having ended under it.
func stopReader(t *testing.T, r *proc) event.ReadSummary {
	t.Helper()
	if r.Exited() {
		t.Fatalf("%s exited before it was stopped (%v); its session ended", r.Name, r.Err())
	}
	if err := r.Stop(); err != nil {
		t.Fatalf("%s: %v\n%s", r.Name, err, r.Stderr())
	}
	if s := r.Stderr(); strings.Contains(s, "session ended") {
		t.Errorf("%s reports its session ended:\n%s", r.Name, s)
	}
	ev := eventsOf[event.ReadSummary](r)
	if len(ev) != 1 {
		t.Fatalf("%s printed %d summary lines, want 1", r.Name, len(ev))
	}
	return ev[0]
}

var tail = lab.Tail
