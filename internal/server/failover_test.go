package server

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ocm-overlay/ocm/internal/wire"
)

// TestHelloUnknownParent is a standby server taking over: relays say hello
// in any order, declaring parents whose own hellos have not come yet. A
// relay is held pending under its declared parent, attached when that
// parent's hello arrives, told to rejoin at once when the edge would make
// a cycle, and told to rejoin through candidates (parent_missing) when its
// parent has not come within the pending grace, DefaultPendingHeartbeats
// heartbeat intervals, well before the orphan grace.
func TestHelloUnknownParent(t *testing.T) {
	ts := startServer(t, func(s *Server) { s.OrphanGrace = 24 * time.Hour })
	hb := ts.Heartbeat
	relays := map[string]*relay{}
	hello := func(id, parent string) *relay {
		r := newRelay(t, id, 2)
		r.parents[stream] = parent
		relays[id] = r
		r.dial(ts.Addr(), "")
		ts.validate(t)
		return r
	}
	told := func() string {
		var out []string
		for id, r := range relays {
			for _, reason := range r.reconnects() { // also keeps r alive for the heartbeat check
				out = append(out, id+":"+reason)
			}
		}
		slices.Sort(out)
		return strings.Join(out, " ")
	}

	// The chain origin <- a <- b <- c arrives bottom up; d's parent went
	// elsewhere (another server, or died with the active one).
	hello("c", "b")
	hello("b", "a")
	hello("d", "gone")
	if got, want := ts.shape(t, stream), "b<-@0 c<b@1 d<-@0"; got != want {
		t.Fatalf("pending: tree %q, want %q", got, want)
	}
	hello("a", wire.OriginID)
	if got, want := ts.shape(t, stream), "a<origin@1 b<a@2 c<b@3 d<-@0"; got != want {
		t.Fatalf("parents arrived: tree %q, want %q", got, want)
	}

	// e and f each declare the other: the second edge would close a cycle.
	hello("e", "f")
	hello("f", "e")
	if got, want := told(), "e:"+wire.ReasonRejected; got != want {
		t.Fatalf("cycle: told %q, want %q", got, want)
	}
	if got, want := ts.shape(t, stream), "a<origin@1 b<a@2 c<b@3 d<-@0 e<-@0 f<e@1"; got != want {
		t.Fatalf("cycle: tree %q, want %q", got, want)
	}

	// d is held for the pending grace, then told; nobody else is. The
	// clock goes a heartbeat at a time, every relay answering each.
	for i := 1; i < DefaultPendingHeartbeats; i++ {
		ts.clock.Advance(hb)
		if got := told(); got != "" {
			t.Fatalf("told before the pending grace: %q", got)
		}
		ts.sweep(t)
	}
	ts.clock.Advance(hb - time.Second)
	if got := told(); got != "" {
		t.Fatalf("told before the pending grace: %q", got)
	}
	ts.sweep(t)
	ts.clock.Advance(2 * time.Second)
	if got := told(); got != "" {
		t.Fatalf("told before the pending grace: %q", got)
	}
	ts.sweep(t)
	if got, want := told(), "d:"+wire.ReasonParentMissing; got != want {
		t.Fatalf("after the pending grace: told %q, want %q", got, want)
	}
	ts.validate(t)
}

// The pending grace follows the heartbeat, with a floor; an explicit one
// is kept, a negative one refused.
func TestPendingGraceDefault(t *testing.T) {
	for _, tc := range []struct {
		heartbeat, grace, want time.Duration
	}{
		{0, 0, DefaultPendingHeartbeats * DefaultHeartbeat},
		{100 * time.Millisecond, 0, DefaultMinPendingGrace},
		{10 * time.Second, 0, DefaultPendingHeartbeats * 10 * time.Second},
		{100 * time.Millisecond, time.Second, time.Second},
	} {
		s := &Server{Listen: "127.0.0.1:0", HTTP: HTTPOff, Heartbeat: tc.heartbeat, PendingGrace: tc.grace}
		if err := s.Start(); err != nil {
			t.Fatal(err)
		}
		s.Close()
		if s.PendingGrace != tc.want {
			t.Errorf("heartbeat %v, pending grace %v: got %v, want %v", tc.heartbeat, tc.grace, s.PendingGrace, tc.want)
		}
	}
	s := &Server{Listen: "127.0.0.1:0", HTTP: HTTPOff, PendingGrace: -time.Second}
	if err := s.Start(); err == nil || !strings.Contains(err.Error(), "pending grace") {
		t.Errorf("negative pending grace: %v", err)
	}
	s.Close()
}
