package sim

import (
	"slices"
	"time"

	"github.com/ocm-overlay/ocm/internal/server"
	"github.com/ocm-overlay/ocm/internal/tree"
	"github.com/ocm-overlay/ocm/internal/wire"
)

// Recovery is one policy's answer to a share of the relays killed at once.
//
// What is modelled: the relays are killed (their processes: the kernel
// closes their connections, so the server sees each failure one one-way
// delay later, not after missed heartbeats) at one instant; the server
// applies the policy with the real Forest.RemoveNode and sends its
// reconnects (gradual: each next level when the previous one has rejoined
// or after server.DefaultReconnectStep, a relay early when its old parent
// is back, as internal/server does); a relay told to reconnect resolves as
// internal/relay does (excluding the failed parent, or preferring its old
// one after an ancestor failed; a reconnect about a parent it has already
// left is stale); every relay below a killed one loses its media, and
// one whose media has not come back within the mediator's stall timeout
// resolves by itself (repair, drop: at once, excluding the parent it
// pulled from; reconnect, gradual: it waits for the server's reconnect
// unless its parent is still in the tree, up to wire's StallWait);
// media comes back connectRTTs round trips after a relay's new join.
// Not modelled: the server's processing time, lost messages, the reports'
// re-attachment (reconcile) and the black-hole detector.
type Recovery struct {
	Policy   string `json:"policy"`
	Killed   int    `json:"killed"`
	Affected int    `json:"affected"` // survivors below a killed relay: they lost their stream
	// AllAttachedMs: until every survivor is attached again (its chain
	// reaches the origin); AllMediaMs: until media flows to every one.
	AllAttachedMs float64 `json:"all_attached_ms"`
	P50AttachedMs float64 `json:"p50_attached_ms"`
	AllMediaMs    float64 `json:"all_media_ms"`
	Unattached    int     `json:"unattached"` // survivors still without parent at the end (60 s)
	// EdgesKept is the share of survivors' edges to a surviving parent
	// that are the same after the recovery.
	EdgesKept     float64 `json:"edges_kept"`
	Stalled       int     `json:"stall_resolves"` // relays that resolved by themselves after a stall
	Reconnects    int     `json:"reconnects"`
	Resolves      int     `json:"resolves"`
	AvgDepthAfter float64 `json:"avg_depth_after"`
	MaxDepthAfter int     `json:"max_depth_after"`
}

// recEnd bounds a recovery's simulated time.
const recEnd = 60_000

type recState struct {
	tKill    float64
	affected []bool
	told     []bool
	waiting  []bool
	cascades []*cascade
}

// cascade is what is left of a gradual recovery (internal/server's).
type cascade struct {
	groups [][]tree.Notice
	last   []tree.Notice
	due    float64
	early  map[string]bool
}

// Kill kills share of the relays (at random) at once, under pol, and runs
// until every survivor is back or recEnd.
func (s *Sim) Kill(pol tree.Policy, share float64) Recovery {
	n := len(s.ids)
	s.pol = pol
	s.run(s.now + 10_000) // let the last joins settle and the promises expire
	tk := s.now + 1000
	s.now = tk
	before := make([]int, n)
	for i := 1; i < n; i++ {
		before[i] = s.parentOf(i)
	}
	var killed []int
	want := int(share*float64(n-1) + 0.5)
	if want == 0 && share > 0 {
		want = 1
	}
	for _, j := range s.rng.Perm(n - 1) {
		if len(killed) >= want {
			break
		}
		if !s.dead[j+1] {
			killed = append(killed, j+1)
		}
	}
	r := &recState{tKill: tk, affected: make([]bool, n), told: make([]bool, n), waiting: make([]bool, n)}
	s.rec = r
	for _, k := range killed {
		s.dead[k] = true
	}
	for i := 1; i < n; i++ {
		for p := before[i]; p > 0 && !s.dead[i]; p = before[p] {
			if s.dead[p] {
				r.affected[i] = true
				break
			}
		}
	}
	s.st = Counts{}
	for _, k := range killed {
		res, err := s.F.RemoveNode(s.ids[k], pol, s.clock())
		if err != nil {
			panic(err)
		}
		s.applied(res)
	}
	for i := 1; i < n; i++ {
		if r.affected[i] {
			s.at(tk+stallMs, func() { s.stall(i) })
		}
	}
	s.at(tk+sweepMs, s.sweep)
	s.run(tk + recEnd)

	out := Recovery{Policy: string(pol), Killed: len(killed), Stalled: 0}
	var times []float64
	kept, edges := 0, 0
	for i := 1; i < n; i++ {
		if s.dead[i] {
			continue
		}
		if before[i] >= 0 && !s.dead[before[i]] {
			edges++
			if s.parentOf(i) == before[i] {
				kept++
			}
		}
		if !r.affected[i] {
			continue
		}
		out.Affected++
		at, media, ok := s.backAt(i)
		if !ok {
			out.Unattached++
			continue
		}
		times = append(times, at-tk)
		out.AllAttachedMs = max(out.AllAttachedMs, at-tk)
		out.AllMediaMs = max(out.AllMediaMs, media-tk)
	}
	slices.Sort(times)
	if len(times) > 0 {
		out.P50AttachedMs = times[len(times)/2]
	}
	if edges > 0 {
		out.EdgesKept = float64(kept) / float64(edges)
	}
	out.Stalled, out.Reconnects, out.Resolves = s.stalled, s.st.Notices, s.st.Resolves
	q := s.Measure()
	out.AvgDepthAfter, out.MaxDepthAfter = q.AvgDepth, q.MaxDepth
	s.rec = nil
	return out
}

// parentOf is i's parent in the server's tree (0 the origin, -1 none).
func (s *Sim) parentOf(i int) int {
	p, ok := s.F.Parent(Stream, s.ids[i])
	if !ok || p == "" {
		return -1
	}
	return s.idx[p]
}

// backAt returns when i was attached again for good and when its media
// flowed again: the latest rejoin on its chain since the kill (and that
// rejoin's media); false if it is not attached.
func (s *Sim) backAt(i int) (attached, media float64, ok bool) {
	if !s.F.Attached(Stream, s.ids[i]) {
		return 0, 0, false
	}
	r := s.rec
	for x := i; x > 0 && r.affected[x]; x = s.parentOf(x) {
		if s.joinAt[x] >= r.tKill {
			attached, media = max(attached, s.joinAt[x]), max(media, s.mediaAt[x])
		}
	}
	return attached, media, true
}

// stall is i's mediator noticing, stallMs after the kill, whether its
// media came back; if not, the relay resolves as internal/relay's
// resolveAfterLoss does.
func (s *Sim) stall(i int) {
	r := s.rec
	if s.dead[i] || s.busy[i] || r.told[i] || s.joinAt[i] >= r.tKill {
		return // resolving, or already moved: the relay keeps where it went
	}
	if _, media, ok := s.backAt(i); ok && media <= s.now {
		return
	}
	var exclude []string
	if p := s.parent[i]; p >= 0 {
		exclude = []string{s.ids[p]}
	}
	if s.pol == tree.Reconnect || s.pol == tree.Gradual {
		// waitForReconnect: unless the parent is still in the tree, wait
		// for the server's reconnect, up to StallWait.
		if p := s.parent[i]; p >= 0 && (p == 0 || s.F.Attached(Stream, s.ids[p])) {
			s.stalled++
			s.resolve(i, exclude, "")
			return
		}
		lvl, _ := s.F.Level(Stream, s.ids[i])
		w := wire.Welcome{Recovery: string(s.pol), HeartbeatMs: server.DefaultHeartbeat.Milliseconds(),
			ReconnectStepMs: server.DefaultReconnectStep.Milliseconds()}
		r.waiting[i] = true
		s.after(float64(w.StallWait(lvl)/time.Millisecond), func() {
			if r.waiting[i] && !s.dead[i] {
				r.waiting[i] = false
				s.stalled++
				s.resolve(i, exclude, "")
			}
		})
		return
	}
	s.stalled++
	s.resolve(i, exclude, "")
}

// reconnect is a relay obeying the server (internal/relay's onReconnect
// and reconnectUpstream).
func (s *Sim) reconnect(i int, m wireMsg) {
	if s.dead[i] {
		return
	}
	if s.busy[i] {
		s.queued[i] = append(s.queued[i], m)
		return
	}
	if s.rec != nil {
		s.rec.told[i] = true
		s.rec.waiting[i] = false
	}
	if m.parent != "" && s.parent[i] >= 0 && s.ids[s.parent[i]] != m.parent {
		return // stale: it has moved already
	}
	if m.target != "" {
		// Join the target first (its RTT probed on the way), resolve
		// only if it refuses.
		j := s.idx[m.target]
		s.busy[i] = true
		s.after(s.oneway(i)+s.W.RTT(i, j), func() {
			if s.dead[i] {
				return
			}
			_, res, err := s.join(i, try{node: m.target, rtt: s.W.RTT(i, j)})
			if err == nil {
				s.applied(res)
				s.after(s.oneway(i), func() { s.done(i) })
				return
			}
			s.st.Refused++
			s.busy[i] = false
			s.reconnect(i, wireMsg{reason: m.reason})
		})
		return
	}
	var exclude []string
	prefer := ""
	if p := s.parent[i]; p >= 0 {
		if m.reason == wire.ReasonAncestorFailed {
			prefer = s.ids[p]
		} else {
			exclude = []string{s.ids[p]}
		}
	}
	s.resolve(i, exclude, prefer)
}

// applied is internal/server's apply: the reconnects of a tree change,
// now and (gradual) in steps, then progress.
func (s *Sim) applied(res tree.Result) {
	if s.rec == nil {
		if len(res.Groups) > 0 {
			s.notify(res.Groups[0], false) // displacements
		}
		return
	}
	if len(res.Groups) > 0 {
		s.notify(res.Groups[0], false)
		if len(res.Groups) > 1 {
			c := &cascade{groups: res.Groups[1:], last: res.Groups[0]}
			s.rec.cascades = append(s.rec.cascades, c)
			s.schedule(c)
		}
	}
	s.progress()
}

func (s *Sim) schedule(c *cascade) {
	c.due = s.now + float64(server.DefaultReconnectStep/time.Millisecond)
	due := c.due
	s.at(due, func() {
		if len(c.groups) > 0 && c.due == due {
			s.fire(c)
			s.progress()
		}
	})
}

// progress is internal/server's: a cascade whose last level has rejoined
// sends its next one at once; nodes whose old parent is back are told.
func (s *Sim) progress() {
	for moved := true; moved; {
		moved = false
		for _, c := range s.rec.cascades {
			if len(c.groups) > 0 && s.rejoined(c.last) {
				s.fire(c)
				moved = true
			}
			s.tellEarly(c)
		}
		kept := s.rec.cascades[:0]
		for _, c := range s.rec.cascades {
			if len(c.groups) > 0 {
				kept = append(kept, c)
			}
		}
		s.rec.cascades = kept
	}
}

func (s *Sim) rejoined(g []tree.Notice) bool {
	for _, n := range g {
		if !s.dead[s.idx[n.Node]] && !s.F.Attached(n.Stream, n.Node) {
			return false
		}
	}
	return true
}

func (s *Sim) fire(c *cascade) {
	g := c.groups[0]
	c.groups, c.last = c.groups[1:], g
	s.schedule(c)
	var rest []tree.Notice
	for _, n := range g {
		if !c.early[n.Node] {
			rest = append(rest, n)
		}
	}
	s.notify(rest, true)
}

func (s *Sim) tellEarly(c *cascade) {
	for _, g := range c.groups {
		for _, n := range g {
			if n.Home == "" || c.early[n.Node] || !s.F.Attached(n.Stream, n.Home) {
				continue
			}
			if c.early == nil {
				c.early = map[string]bool{}
			}
			c.early[n.Node] = true
			s.notify([]tree.Notice{n}, true)
		}
	}
}

// notify sends reconnects; a delayed one is skipped if its node has
// rejoined meanwhile.
func (s *Sim) notify(g []tree.Notice, delayed bool) {
	for _, n := range g {
		i := s.idx[n.Node]
		if s.dead[i] || delayed && s.F.Attached(n.Stream, n.Node) {
			continue
		}
		s.st.Notices++
		m := wireMsg{reason: n.Reason, parent: n.Parent, target: n.Target}
		s.after(s.oneway(i), func() { s.reconnect(i, m) })
	}
}

// sweep is the server's heartbeat tick: expectations, promises and
// orphans past their graces are expired.
func (s *Sim) sweep() {
	now := s.clock()
	s.F.ExpireExpectations(now)
	s.F.ExpirePromises(now)
	pending := max(server.DefaultPendingHeartbeats*server.DefaultHeartbeat, server.DefaultMinPendingGrace)
	s.applied(s.F.ExpireOrphans(now.Add(-pending), now.Add(-server.DefaultOrphanGrace), now))
	for i := 1; i < len(s.ids); i++ {
		if s.rec.affected[i] && !s.dead[i] && !s.F.Attached(Stream, s.ids[i]) {
			s.after(sweepMs, s.sweep)
			return
		}
	}
}
