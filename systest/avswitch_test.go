package systest

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// gstLatency is rtspsrc's default latency: how long GStreamer holds a
// packet in its jitterbuffer before a sink gets it.
const gstLatency = 2 * time.Second

// TestAVSwitch: GStreamer plays an H264 and AAC stream over TCP through a
// relay whose parent dies (SIGKILL). The relay switches upstream under the
// player's session: both tracks keep decoding after the kill, and the
// pipeline never errs. The relay's parents are a list (parent:A,A2), or
// the overlay's choice (the dead parent is a relay under the origin; the
// origin takes over).
func TestAVSwitch(t *testing.T) {
	systemTest(t)
	s := interopStreams()[0]
	require(t, playerNeeds("gst", s.tracks)...)
	origin := startMediator(t, "origin", "--publish")
	publishStream(t, origin, s)

	t.Run("parents", func(t *testing.T) {
		t.Parallel()
		a := startMediator(t, "A")
		a2 := startMediator(t, "A2")
		b := startMediator(t, "B", "--resolver", "parent:"+a.Addr+","+a2.Addr)
		avSwitch(t, s, b, enhanced(a.Addr, s.media, s.origin), enhanced(a2.Addr, s.media, s.origin), a.Kill)
	})

	t.Run("overlay", func(t *testing.T) {
		t.Parallel()
		// The origin takes one relay: p, which joins first; c then can
		// only go under p, until p dies.
		srv := startServer(t, "server", "--origin-capacity", "1")
		p := startHostWith(t, "p", srv.OCM, nil)
		p.player = startReader(t, "p/player", enhanced(p.Med.Addr, s.media, s.origin))
		waitEvent(t, p.player, "the stream through p", 0, progressAtLeast(50))
		c := startHostWith(t, "c", srv.OCM, nil)
		avSwitch(t, s, c.Med, enhanced(p.Med.Addr, s.media, s.origin), s.originURL(), p.Kill)
	})
}

// avSwitch plays s through relay with GStreamer over TCP; relay must be
// pulling from the upstream URL before, and after kill from after. Every
// track must decode minFrames buffers that arrived after the kill, and the
// pipeline end cleanly.
func avSwitch(t *testing.T, s *interopStream, relay *mediator, before, after string, kill func()) {
	t.Helper()
	kinds := trackKinds(s.tracks)
	g, r := gstDecoding(t, enhanced(relay.Addr, s.media, s.origin), "tcp", kinds)
	waitEvent(t, relay, "an upstream playing from "+before, 0, upstreamEvent("playing", before))

	// A buffer printed so far came before the kill, and so did any that
	// GStreamer holds in its jitterbuffer; a buffer whose pts is more than
	// that latency (and a second) past the last one printed arrived after
	// the kill.
	killed := r.seen
	newer := map[string]time.Duration{}
	for _, k := range kinds {
		newer[k] = r.track(k).lastPTS(killed) + gstLatency + time.Second
	}
	from := len(relay.Lines())
	began := time.Now()
	kill()
	// The relay notices the loss, or the overlay moves it first (the
	// server sees the parent's ocm-relay die, and may tell the child
	// before its RTSP connection closes): either way it plays from after.
	waitEvent(t, relay, "an upstream playing from "+after, from, upstreamEvent("playing", after))
	switched := time.Since(began)
	r.waitBuffers(t, g, "every track after the kill", kinds, minFrames, killed, newer)

	var gaps []string
	for _, k := range kinds {
		gaps = append(gaps, fmt.Sprintf("%s %s", k, ms(r.track(k).maxStep(killed))))
	}
	t.Logf("relay playing from %s %s after the kill; largest pts step across it: %s; %s",
		after, ms(switched), strings.Join(gaps, ", "), r)
	stopGst(t, g, r, kinds)
}

func trackKinds(tracks []codec) []string {
	var out []string
	for _, c := range tracks {
		out = append(out, c.kind)
	}
	return out
}
