package systest

import (
	"fmt"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ocm-overlay/ocm/internal/event"
)

// Helpers for the overlay tests with many hosts: players that report
// often, trees read from the API (descendants, edges), and what a player
// went through around a moment (an outage, lost packets).

// playerInterval is how often the players of the recovery, handover and
// chaos tests print progress: the resolution of the recovery times.
const playerInterval = 100 * time.Millisecond

// startPlayer runs `rtsp-mediator read URL` printing progress every
// playerInterval.
func startPlayer(t *testing.T, name, url string) *proc {
	t.Helper()
	return start(t, name, tool("rtsp-mediator"), "read", url, "--interval", playerInterval.String())
}

// overlay is an origin with its test stream, an ocm-server and the viewer
// hosts, each with a player on its own mediator.
type overlay struct {
	origin *mediator
	stream string // the origin URL, the tree's key
	srv    *ocmServer
	hosts  []*host
	byName map[string]*host
}

func newOverlay(t *testing.T, serverArgs ...string) *overlay {
	t.Helper()
	origin := startMediator(t, "origin", "--test-source", "test")
	return &overlay{
		origin: origin,
		stream: "rtsp://" + origin.Addr + "/test",
		srv:    startServer(t, "server", serverArgs...),
		byName: map[string]*host{},
	}
}

// join starts a host and its player and waits for the player's first
// packets, so hosts joined one after another find the tree in a known
// state.
func (o *overlay) join(t *testing.T, name string, relayArgs ...string) *host {
	t.Helper()
	h := startViewer(t, name, o.srv.OCM, "test", o.origin.Addr, relayArgs...)
	o.hosts = append(o.hosts, h)
	o.byName[name] = h
	return h
}

// startViewer starts a host on server and its player of MEDIA?ORIGIN on
// the host's mediator, and waits for the player's first packets.
func startViewer(t *testing.T, name, server, media, origin string, relayArgs ...string) *host {
	t.Helper()
	h := startHost(t, name, server, relayArgs...)
	h.player = startPlayer(t, name+"/player", enhanced(h.Med.Addr, media, origin))
	waitEvent(t, h.player, "its first packets", 0, progressAtLeast(10))
	return h
}

func (o *overlay) names(except ...string) []string {
	var out []string
	for _, h := range o.hosts {
		if !slices.Contains(except, h.Name) {
			out = append(out, h.Name)
		}
	}
	return out
}

// post sends an action to the server's API.
func (s *ocmServer) post(t *testing.T, path string, q url.Values) {
	t.Helper()
	if err := s.Post(path, q); err != nil {
		t.Fatal(err)
	}
}

// sample is one progress line of a player, stamped by the player itself.
type sample struct {
	at            time.Time
	packets, lost float64
}

func progressSeries(p *proc) []sample {
	var out []sample
	for _, e := range timedEventsOf[event.ReadProgress](p) {
		if e.At.IsZero() {
			continue
		}
		out = append(out, sample{e.At, float64(e.E.Packets), float64(e.E.Lost)})
	}
	return out
}

// lostSoFar is the lost count of the player's latest progress line.
func lostSoFar(p *proc) float64 {
	s := progressSeries(p)
	if len(s) == 0 {
		return 0
	}
	return s[len(s)-1].lost
}

// outage is what a player went through after a moment: whether it stalled
// (a progress line without new packets), when packets came again, and the
// packets it lost (sequence gaps) meanwhile.
type outage struct {
	stalled bool
	stall   time.Duration // from the moment to the first line without new packets
	resumed time.Duration // from the moment to the first line with new packets after the first line without
	lost    float64
}

// outageAfter reads a player's progress lines around at: the outage starts
// with the first line after at that shows no new packet, and ends with the
// next line that shows some; its resolution is playerInterval. Packets in
// flight at the moment arrive just after it, so "the first line with more
// packets" alone would say the player never stopped. Lines later than
// until are not considered.
func outageAfter(series []sample, at, until time.Time) outage {
	var o outage
	prev := -1 // the last line at or before at
	for i, s := range series {
		if !s.at.After(at) {
			prev = i
		}
	}
	if prev < 0 {
		return o
	}
	last := prev
	for i := prev + 1; i < len(series) && !series[i].at.After(until); i++ {
		last = i
		more := series[i].packets > series[i-1].packets
		switch {
		case !o.stalled && !more:
			o.stalled, o.stall = true, series[i].at.Sub(at)
		case o.stalled && more && o.resumed == 0:
			o.resumed = series[i].at.Sub(at)
		}
	}
	o.lost = series[last].lost - series[prev].lost
	return o
}

// checkPlayer fails t if p's session ended or p is gone.
func checkPlayer(t *testing.T, p *proc) {
	t.Helper()
	if p.Exited() {
		t.Errorf("%s exited (%v): its session ended\n%s", p.Name, p.Err(), tail(p.Stderr(), 10))
	} else if s := p.Stderr(); strings.Contains(s, "session ended") {
		t.Errorf("%s reports its session ended:\n%s", p.Name, tail(s, 10))
	}
}

// checkHost is checkPlayer for h's player, and fails t if h's relay or
// mediator died.
func checkHost(t *testing.T, h *host) {
	t.Helper()
	checkPlayer(t, h.player)
	if h.Relay.Exited() || h.Med.Exited() {
		t.Errorf("%s's relay or mediator died: relay %v, mediator %v", h.Name, h.Relay.Err(), h.Med.Err())
	}
}

// players are the hosts' players.
func (o *overlay) players() []*proc {
	var out []*proc
	for _, h := range o.hosts {
		out = append(out, h.player)
	}
	return out
}

// waitReceiving waits until each player has n packets more than it had
// when the call began.
func waitReceiving(t *testing.T, what string, players []*proc, n float64) {
	t.Helper()
	from := map[*proc]float64{}
	for _, p := range players {
		from[p] = packetsSoFar(p)
	}
	for _, p := range players {
		waitEvent(t, p, what, 0, progressAtLeast(from[p]+n))
	}
}

// durations summarises recovery times: median and maximum.
func durations(ds []time.Duration) (median, maximum time.Duration) {
	if len(ds) == 0 {
		return 0, 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2], s[len(s)-1]
}

func ms(d time.Duration) string { return fmt.Sprintf("%dms", d.Milliseconds()) }
