package server

import (
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/ocm-overlay/ocm/internal/event"
	"github.com/ocm-overlay/ocm/internal/tree"
	"github.com/ocm-overlay/ocm/internal/wire"
)

// Black holes. A relay that accepts children and never forwards (its
// mediator frozen or broken while its ocm-relay stays connected, or a
// relay lying about itself) would stay a candidate for good and stall
// every new viewer sent to it. The server learns of a stall from the
// child: a relay whose upstream is lost or stalls asks for candidates
// excluding its current parent. That is counted against the parent once
// confirmed: StallConfirm later the parent must still be connected,
// attached and not leaving, and must not itself have lost its upstream
// within StallConfirm of the child (said so the same way, or been told
// to reconnect by the server): then the stall came from above it, e.g.
// an origin restart or its own parent's failure, and is excused. When StallLimit distinct
// children stalled under a parent within StallWindow, the parent is
// quarantined: not offered as a candidate, not accepted as a new parent,
// its API entry saying why. It is offered again once its own reports have
// been clean (every stream received, loss under cleanLoss) for
// QuarantineClean, doubled for every earlier quarantine (at most
// maxCleanFactor times). The record goes with the node's session: a node
// that fails or leaves the overlay is removed from the trees anyway, and
// says hello again with a clean slate.

// Stall verdicts, the label of ocm_child_stalls_total.
const (
	stallCounted = "counted"
	stallExcused = "excused"
)

const (
	// cleanLoss is the highest loss rate a clean report may show.
	cleanLoss = 0.02
	// maxCleanFactor caps the doubling of QuarantineClean.
	maxCleanFactor = 16
)

// stallReport is a child's stall waiting for confirmation.
type stallReport struct {
	parent string
	sess   *session  // the parent's session when the child said so
	at     time.Time // Server.Now
	due    time.Time // wall clock
}

// suspect is what the server holds against a parent.
type suspect struct {
	victims     map[string]time.Time // child -> when its stall was counted
	quarantined time.Time            // zero when not quarantined
	cleanSince  time.Time            // first of the clean reports since; zero if none
	offences    int                  // quarantines so far
}

// lostUpstream notes a get_candidates that excludes the requester's
// current parent (the requester lost its upstream under it), or comes
// from a detached member (its parent failed or left). Under a relay
// parent the stall waits for confirmation.
func (st *state) lostUpstream(node string, g *wire.GetCandidates) {
	parent, ok := st.forest.Parent(g.Stream, node)
	if !ok {
		return
	}
	key := tree.Member{Stream: g.Stream, Node: node}
	if parent == "" {
		st.losses[key] = st.s.Now()
		return
	}
	if !slices.Contains(g.Exclude, parent) {
		return
	}
	now := st.s.Now()
	st.losses[key] = now
	if parent == tree.Origin {
		return
	}
	ps := st.sessions[parent]
	if ps == nil || !st.forest.Attached(g.Stream, parent) || st.forest.Leaving(g.Stream, parent) {
		return // failed, detached or leaving: the stall is explained
	}
	if _, pending := st.stalls[key]; pending {
		return // the child asking again (it found nothing yet)
	}
	st.stalls[key] = &stallReport{parent: parent, sess: ps, at: now, due: time.Now().Add(st.s.StallConfirm)}
	ps.log().Debug("child lost its stream under it", "stream", g.Stream, "child", node)
}

// confirmStalls judges the stalls due by now (wall clock).
func (st *state) confirmStalls(now time.Time) {
	var due []tree.Member
	for k, r := range st.stalls {
		if !r.due.After(now) {
			due = append(due, k)
		}
	}
	sort.Slice(due, func(i, j int) bool {
		a, b := due[i], due[j]
		return st.stalls[a].at.Before(st.stalls[b].at) || st.stalls[a].at.Equal(st.stalls[b].at) &&
			(a.Stream < b.Stream || a.Stream == b.Stream && a.Node < b.Node)
	})
	for _, k := range due {
		r := st.stalls[k]
		delete(st.stalls, k)
		if st.sessions[r.parent] != r.sess {
			continue // the parent failed or reconnected: the recovery policy dealt with it
		}
		verdict, why := stallCounted, ""
		switch {
		case !st.forest.Attached(k.Stream, r.parent):
			verdict, why = stallExcused, "the parent is detached"
		case st.forest.Leaving(k.Stream, r.parent):
			verdict, why = stallExcused, "the parent is leaving"
		case st.lostNear(tree.Member{Stream: k.Stream, Node: r.parent}, r.at):
			verdict, why = stallExcused, "the parent lost its own upstream"
		}
		st.m.stalls.inc(verdict)
		st.s.Events.Emit(event.ChildStalled{Stream: k.Stream, Node: r.parent, Child: k.Node,
			Verdict: verdict, Why: why})
		r.sess.log().Info("child stalled under it", "stream", k.Stream, "child", k.Node, "verdict", verdict, "why", why)
		if verdict == stallCounted {
			st.countStall(r.parent, k, r.at)
		}
	}
}

// movedUpstream notes that the server told a member to reconnect: its
// stream may pause meanwhile, so its children's stalls then are not its
// fault.
func (st *state) movedUpstream(m tree.Member) { st.losses[m] = st.s.Now() }

// lostNear reports whether m lost its upstream (said so, or was told to
// move) within StallConfirm of at.
func (st *state) lostNear(m tree.Member, at time.Time) bool {
	t, ok := st.losses[m]
	if !ok {
		return false
	}
	d := t.Sub(at)
	return d <= st.s.StallConfirm && d >= -st.s.StallConfirm
}

// countStall records a confirmed stall of child under parent and
// quarantines the parent at StallLimit distinct children within
// StallWindow.
func (st *state) countStall(parent string, child tree.Member, at time.Time) {
	sp := st.suspects[parent]
	if sp == nil {
		sp = &suspect{victims: map[string]time.Time{}}
		st.suspects[parent] = sp
	}
	now := st.s.Now()
	for c, t := range sp.victims {
		if now.Sub(t) > st.s.StallWindow {
			delete(sp.victims, c)
		}
	}
	sp.victims[child.Node] = at
	if !sp.quarantined.IsZero() {
		sp.cleanSince = time.Time{} // still failing its children
		return
	}
	if st.s.StallLimit < 0 || len(sp.victims) < st.s.StallLimit {
		return
	}
	sp.offences++
	sp.quarantined, sp.cleanSince = now, time.Time{}
	victims := slices.Sorted(func(yield func(string) bool) {
		for c := range sp.victims {
			if !yield(c) {
				return
			}
		}
	})
	clean := st.cleanNeeded(sp)
	reason := fmt.Sprintf("%d children stalled under it within %v (%s) while it stayed connected; offered again after %v of clean reports",
		len(victims), st.s.StallWindow, strings.Join(victims, ", "), clean)
	if err := st.forest.Quarantine(parent, reason); err != nil {
		st.s.Log.Error("quarantine", "node", parent, "err", err)
		return
	}
	st.m.quarantines.Inc()
	st.s.Events.Emit(event.NodeQuarantined{Node: parent, Stream: child.Stream, Children: victims,
		Reason: reason, Offences: sp.offences, CleanMs: clean.Milliseconds()})
	st.s.Log.Warn("node quarantined: its children stall under it", "node", parent, "stream", child.Stream,
		"children", victims, "clean_needed", clean)
}

// cleanNeeded is how long sp's reports must stay clean to lift its
// quarantine.
func (st *state) cleanNeeded(sp *suspect) time.Duration {
	f := 1
	for i := 1; i < sp.offences && f < maxCleanFactor; i++ {
		f *= 2
	}
	return st.s.QuarantineClean * time.Duration(f)
}

// quarantineReport lifts a node's quarantine once its reports have been
// clean long enough.
func (st *state) quarantineReport(ss *session, r *wire.Report) {
	sp := st.suspects[ss.node]
	if sp == nil || sp.quarantined.IsZero() {
		return
	}
	now := st.s.Now()
	if !reportClean(r) {
		sp.cleanSince = time.Time{}
		return
	}
	if sp.cleanSince.IsZero() {
		sp.cleanSince = now
	}
	need := st.cleanNeeded(sp)
	if now.Sub(sp.cleanSince) < need {
		return
	}
	if err := st.forest.Quarantine(ss.node, ""); err != nil {
		return
	}
	sp.quarantined, sp.cleanSince = time.Time{}, time.Time{}
	clear(sp.victims)
	st.s.Events.Emit(event.NodeReleased{Node: ss.node, CleanMs: need.Milliseconds(), Offences: sp.offences})
	ss.log().Info("quarantine lifted: its reports are clean", "clean_for", need)
}

// reportClean reports whether a relay's report shows every stream it
// receives flowing with little loss.
func reportClean(r *wire.Report) bool {
	for _, s := range r.Streams {
		if s.Loss > cleanLoss || s.Bitrate <= 0 {
			return false
		}
	}
	return true
}

// forgetStalls drops what is held against and about a node whose session
// ended.
func (st *state) forgetStalls(node string) {
	delete(st.suspects, node)
	for k, r := range st.stalls {
		if k.Node == node || r.parent == node {
			delete(st.stalls, k)
		}
	}
	for k := range st.losses {
		if k.Node == node {
			delete(st.losses, k)
		}
	}
}

// pruneLosses forgets upstream losses too old to excuse anything.
func (st *state) pruneLosses(now time.Time) {
	for k, t := range st.losses {
		if now.Sub(t) > 3*st.s.StallConfirm {
			delete(st.losses, k)
		}
	}
}

// nextStall returns the earliest pending stall confirmation.
func (st *state) nextStall() (time.Time, bool) {
	var due time.Time
	for _, r := range st.stalls {
		if due.IsZero() || r.due.Before(due) {
			due = r.due
		}
	}
	return due, !due.IsZero()
}

// quarantinedCount is the number of nodes quarantined now.
func (st *state) quarantinedCount() int {
	n := 0
	for _, sp := range st.suspects {
		if !sp.quarantined.IsZero() {
			n++
		}
	}
	return n
}
