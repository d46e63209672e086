package server

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/ocm-overlay/ocm/internal/event"
	"github.com/ocm-overlay/ocm/internal/probe"
	"github.com/ocm-overlay/ocm/internal/streamurl"
	"github.com/ocm-overlay/ocm/internal/tree"
	"github.com/ocm-overlay/ocm/internal/wire"
)

// state is everything the state goroutine owns: the forest, the sessions
// by node id, the policy in force, the gradual cascades, the handovers
// under way and the counters. Nothing else touches it; other goroutines
// use Server.call.
type state struct {
	s         *Server
	forest    *tree.Forest
	policy    tree.Policy
	sessions  map[string]*session // node id -> its current connection
	cascades  []*cascade          // gradual reconnects still to send
	handovers map[tree.Member]*handover
	stepping  bool // progress is running
	m         counters
	// recovering maps the members a failure orphaned to its recovery
	// until they are attached again (recovery.go).
	recovering map[tree.Member]*recovery
	// lastFullNote is when a "full" join refusal was last logged (fullNoted).
	lastFullNote time.Time

	// Black holes (stall.go).
	stalls   map[tree.Member]*stallReport // children's stalls to confirm, by child
	losses   map[tree.Member]time.Time    // when a member last lost its upstream
	suspects map[string]*suspect          // parents children stalled under, by node id
}

// cascade is what is left to send of one gradual recovery: groups[0] goes
// when every node of last has rejoined, or at due at the latest; before
// that, any node whose old parent (Notice.Home) has rejoined is told at
// once, so a subtree whose root found a place comes back under it while
// the rest of its level still waits. Times here are wall-clock: delays
// and timeouts of the protocol, which the injected clock (heartbeats) does
// not drive.
type cascade struct {
	groups [][]tree.Notice // not sent yet, next first
	last   []tree.Notice   // the group sent last
	due    time.Time
	early  map[string]bool // nodes of groups already told
}

// handover is a leaving member waiting for its children to switch.
type handover struct {
	stream, node string
	waiters      []waiter // left requests to ack when it ends
	deadline     time.Time
}

// waiter is a left request to answer.
type waiter struct {
	ss *session
	re uint64
}

func newState(s *Server) *state {
	forest := tree.New(s.OriginCapacity)
	forest.SetNearby(s.NearCandidates)
	forest.SetDisplace(s.displaceSetting())
	return &state{
		s:         s,
		forest:    forest,
		policy:    s.Recovery,
		sessions:  map[string]*session{},
		handovers: map[tree.Member]*handover{},
		m:         s.counters,
		stalls:    map[tree.Member]*stallReport{},
		losses:    map[tree.Member]time.Time{},
		suspects:  map[string]*suspect{},
	}
}

func (st *state) run(ctx context.Context) {
	defer close(st.s.loopEnd)
	tick := time.NewTicker(st.s.Heartbeat)
	defer tick.Stop()
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	for ctx.Err() == nil {
		if due, ok := st.nextDue(); ok {
			timer.Reset(time.Until(due))
		}
		select {
		case fn := <-st.s.reqs:
			fn(st)
		case <-tick.C:
			st.sweep()
		case <-timer.C:
			st.expire(time.Now())
		case <-ctx.Done():
			return
		}
		timer.Stop()
	}
}

// nextDue returns the earliest cascade step, handover deadline or stall
// confirmation.
func (st *state) nextDue() (time.Time, bool) {
	due, _ := st.nextStall()
	for _, c := range st.cascades {
		if due.IsZero() || c.due.Before(due) {
			due = c.due
		}
	}
	for _, h := range st.handovers {
		if due.IsZero() || h.deadline.Before(due) {
			due = h.deadline
		}
	}
	return due, !due.IsZero()
}

// expire sends the cascade steps, ends the handovers and judges the
// stalls due by now.
func (st *state) expire(now time.Time) {
	st.confirmStalls(now)
	for _, c := range st.cascades {
		if !c.due.After(now) {
			st.fire(c)
		}
	}
	st.dropFinishedCascades()
	for _, h := range st.sortedHandovers() {
		if !h.deadline.After(now) {
			st.endHandover(h, "timeout")
		}
	}
	st.progress()
}

// sweep fails the nodes silent for too long and re-tells stale orphans.
func (st *state) sweep() {
	now := st.s.Now()
	limit := MissedHeartbeats * st.s.Heartbeat
	var dead []*session
	for _, ss := range st.sessions {
		if ss.silentFor(now) > limit {
			dead = append(dead, ss)
		}
	}
	sort.Slice(dead, func(i, j int) bool { return dead[i].node < dead[j].node })
	for _, ss := range dead {
		st.fail(ss, ending{cause: causeHeartbeat}, nil)
	}
	res := st.forest.ExpireOrphans(now.Add(-st.s.PendingGrace), now.Add(-st.s.OrphanGrace), now)
	st.apply(res, "orphan grace expired")
	st.apply(st.forest.ExpireDisplaced(now), "displaced child did not move")
	st.forest.ExpireExpectations(now)
	st.forest.ExpirePromises(time.Now()) // wall clock, as when they were made
	st.pruneLosses(now)
	st.sweepRecoveries(time.Now())
	st.summarize(time.Now()) // wall clock: the report interval is
}

// fail removes a node whose connection the server gives up on, applies
// the policy, and closes the connection (after sending final, if any).
func (st *state) fail(ss *session, end ending, final *wire.Error) {
	if st.sessions[ss.node] != ss || st.s.ctx.Err() != nil {
		return
	}
	delete(st.sessions, ss.node)
	if final != nil {
		ss.sendAndClose(final)
	} else {
		ss.close()
	}
	end.clean = false
	st.removeNode(ss, end)
}

// closed is called by a connection's goroutine when it ends; clean means
// the relay closed between messages.
func (st *state) closed(ss *session, end ending) {
	if st.sessions[ss.node] != ss {
		return // already failed, kicked or replaced
	}
	if st.s.ctx.Err() != nil {
		// The server is stopping and closing every connection: that is
		// no failure, and telling the children would disturb streams
		// the next server rebuilds from hellos.
		return
	}
	delete(st.sessions, ss.node)
	st.removeNode(ss, end)
}

func (st *state) removeNode(ss *session, end ending) {
	st.forgetStalls(ss.node)
	st.recoveryGone(ss.node)
	streams := st.forest.StreamsOf(ss.node)
	res, err := st.forest.RemoveNode(ss.node, st.policy, st.s.Now())
	if err != nil {
		st.s.Log.Error("remove node", "node", ss.node, "err", err)
		return
	}
	gone := event.NodeGone{Node: ss.node, Remote: ss.remote, Cause: end.cause, Detail: end.detail, Streams: streams,
		Policy: string(st.policy)}
	if end.clean && len(streams) == 0 {
		st.s.Events.Emit(event.NodeLeft{NodeGone: gone})
		ss.log().Info("node left", "cause", end.cause)
	} else {
		st.s.Events.Emit(event.NodeFailed{NodeGone: gone})
		st.m.failures.inc(end.cause)
		st.startRecovery(ss.node, res)
		ss.log().Warn("node failed", "cause", end.cause, "detail", end.detail, "streams", len(streams), "policy", st.policy,
			"notified", len(res.Notices()))
	}
	st.apply(res, "node "+ss.node+" "+end.cause)
}

// hello registers a session's node, answers welcome, and rebuilds its
// declared edges. A hello with the node id of a live session is refused
// (the error is queued on ss, which then closes) and the live session is
// left untouched; a session whose connection is already ending is
// replaced, the node's edges kept: that is a relay reconnecting. It
// reports whether ss was welcomed.
func (st *state) hello(ss *session, re uint64, h *wire.Hello) bool {
	now := st.s.Now()
	ss.since = now
	ss.seen(now)
	if old := st.sessions[h.Node]; old != nil && old.alive() {
		// The live connection's address is for the operator, not the
		// wire: the newcomer may be an impostor.
		msg := fmt.Sprintf("node id %q is in use by a live connection: each relay needs its own --node-id", h.Node)
		ss.replyAndClose(re, &wire.Error{Code: wire.CodeDuplicateNode, Message: msg})
		st.m.rejected.inc(wire.CodeDuplicateNode)
		st.s.Events.Emit(event.Rejected{Remote: ss.remote, Code: wire.CodeDuplicateNode, Node: h.Node,
			LiveRemote: old.remote, Message: msg})
		ss.log().Warn("hello refused: node id in use", "live_remote", old.remote)
		return false
	} else if old != nil {
		ss.drained = old.drained // a drained relay reconnecting is still leaving
		old.sendAndClose(&wire.Error{Code: wire.CodeReplaced, Message: "a newer connection said hello as " + h.Node})
		st.s.Events.Emit(event.NodeReplaced{Node: h.Node, OldRemote: old.remote, Remote: ss.remote})
		ss.log().Info("connection replaced", "old_remote", old.remote)
	}
	st.sessions[h.Node] = ss
	info := tree.NodeInfo{ID: h.Node, RTSP: fillHost(h.RTSP, ss.remote), Probe: fillHost(h.Probe, ss.remote),
		Willing: h.Willing, Capacity: h.Capacity, Cores: h.Cores, Addr: remoteAddr(ss.remote)}
	edges := make([]tree.Edge, 0, len(h.Streams))
	for _, r := range h.Streams {
		edges = append(edges, tree.Edge{Stream: r.Stream, Node: h.Node, Parent: r.Parent, RTT: r.RTTMs})
	}
	res, err := st.forest.Hello(info, edges, st.policy, now)
	if err != nil { // wire validation makes this unreachable
		delete(st.sessions, h.Node)
		ss.sendAndClose(&wire.Error{Code: wire.CodeBadRequest, Message: err.Error()})
		return false
	}
	ss.reply(re, &wire.Welcome{
		Node: h.Node, Recovery: string(st.policy), Server: "ocm-server",
		ReportMs: st.s.ReportInterval.Milliseconds(), HeartbeatMs: st.s.Heartbeat.Milliseconds(),
		HandoverMs: st.s.HandoverTimeout.Milliseconds(), ReconnectStepMs: st.s.ReconnectStep.Milliseconds(),
	})
	st.m.hellos.Inc()
	st.s.Events.Emit(event.NodeJoined{
		Node: h.Node, Remote: ss.remote, RTSP: info.RTSP, Probe: info.Probe, Willing: h.Willing,
		Capacity: h.Capacity, Cores: h.Cores, Streams: len(h.Streams),
	})
	ss.log().Info("hello", "rtsp", info.RTSP, "willing", h.Willing, "capacity", h.Capacity, "streams", len(h.Streams))
	st.apply(res, "hello from "+h.Node)
	return true
}

// handleRead is handle for a message read at read (wall clock): a
// get_candidates' wait for the state goroutine is measured.
func (st *state) handleRead(ss *session, m wire.Msg, read time.Time) {
	if _, ok := m.Body.(*wire.GetCandidates); ok {
		st.m.candidateQueue.Observe(time.Since(read).Seconds())
	}
	st.handle(ss, m)
}

// handle answers one message of an established session.
func (st *state) handle(ss *session, m wire.Msg) {
	if st.sessions[ss.node] != ss {
		return // replaced or failed meanwhile; its connection is closing
	}
	switch b := m.Body.(type) {
	case *wire.GetCandidates:
		st.candidates(ss, m.ID, b)
	case *wire.Joined:
		st.joined(ss, m.ID, b)
	case *wire.Left:
		st.left(ss, m.ID, b.Stream)
	case *wire.Report:
		st.report(ss, b)
	default:
		ss.reply(m.ID, &wire.Error{Code: wire.CodeUnexpected, Message: m.Type + " is not sent to the server"})
	}
}

func (st *state) candidates(ss *session, re uint64, g *wire.GetCandidates) {
	st.m.candidates.Inc()
	t0 := time.Now()
	defer func() { st.m.candidateDecision.Observe(time.Since(t0).Seconds()) }()
	origin, err := streamurl.KeyAddr(g.Stream)
	if err != nil {
		ss.reply(re, &wire.Error{Code: wire.CodeBadStream, Message: err.Error()})
		return
	}
	st.lostUpstream(ss.node, g)
	k := st.s.MaxCandidates
	if g.Max > 0 && g.Max < k {
		k = g.Max
	}
	st.forest.ExpirePromises(time.Now())
	cs := st.forest.Candidates(g.Stream, ss.node, g.Exclude, k)
	// An attached relay asking without excluding anything is looking for
	// a better parent (its improvement round) or checking its parent is
	// still there: it seldom moves, so it is promised nothing; a slot
	// promised every round would keep one of the best parents' slots
	// from the relays that do join.
	improving := len(g.Exclude) == 0 && st.forest.Attached(g.Stream, ss.node)
	if pick, ok := likelyPick(cs); ok && !improving {
		// Until it joins, the slot it will most likely take is not
		// offered to the relays asking at the same moment (tree.Promise).
		st.forest.Promise(g.Stream, ss.node, pick, time.Now().Add(promiseHold))
	}
	out := &wire.Candidates{Stream: g.Stream, Candidates: make([]wire.Candidate, 0, len(cs))}
	for _, c := range cs {
		wc := wire.Candidate{Node: c.ID, RTSP: c.RTSP, Probe: c.Probe, Level: c.Level,
			Clients: c.Clients, Capacity: c.Capacity, Cores: c.Cores, CPU: min(max(c.CPU, 0), 1),
			// Each RTT is at most wire.MaxMs, a sum of them need not be.
			PathMs: min(c.Path, wire.MaxMs), DisplaceMs: c.Worst}
		if c.ID == tree.Origin {
			wc.Node, wc.RTSP = wire.OriginID, origin
		}
		out.Candidates = append(out.Candidates, wc)
	}
	ss.reply(re, out)
	if ss.debug() {
		ss.log().Debug("candidates", "stream", g.Stream, "offered", len(out.Candidates))
	}
}

func (st *state) joined(ss *session, re uint64, j *wire.Joined) {
	if j.Parent == tree.Origin {
		if _, err := streamurl.KeyAddr(j.Stream); err != nil {
			ss.reply(re, &wire.Error{Code: wire.CodeBadStream, Message: err.Error()})
			return
		}
	}
	st.forest.ExpirePromises(time.Now())
	via := tree.Via{RTT: j.RTTMs, Displace: j.Displace && !st.s.NoDisplace}
	res, err := st.forest.JoinVia(j.Stream, ss.node, j.Parent, via, st.s.Now())
	if err != nil {
		code := errorCode(err)
		st.m.joinErrors.inc(code)
		ss.reply(re, &wire.Error{Code: code, Message: err.Error()})
		if code == wire.CodeFull && !st.fullNoted(time.Now()) {
			// A flash crowd makes many; the metric counts every one.
			if ss.debug() {
				ss.log().Debug("join refused", "stream", j.Stream, "parent", j.Parent, "err", err)
			}
			return
		}
		st.s.Events.Emit(event.JoinRejected{Stream: j.Stream, Node: ss.node, Parent: j.Parent,
			Code: code, Message: err.Error()})
		ss.log().Warn("join rejected", "stream", j.Stream, "parent", j.Parent, "err", err)
		return
	}
	st.m.joins.Inc()
	level, _ := st.forest.Level(j.Stream, ss.node)
	ss.reply(re, &wire.Ack{Level: level})
	st.apply(res, ss.node+" joined")
}

// fullNoteEvery is the least time between two "full" refusals logged and
// emitted as events; the others are counted (ocm_join_errors_total) and
// logged at debug level.
const fullNoteEvery = time.Second

// fullNoted reports whether a "full" refusal at now is logged and emitted.
func (st *state) fullNoted(now time.Time) bool {
	if now.Sub(st.lastFullNote) < fullNoteEvery {
		return false
	}
	st.lastFullNote = now
	return true
}

func (st *state) report(ss *session, r *wire.Report) {
	tr := tree.Report{CPU: r.CPU, Willing: r.Willing, Clients: r.Clients}
	for _, s := range r.Streams {
		tr.Streams = append(tr.Streams, tree.StreamStats{Stream: s.Stream, Parent: s.Parent, Level: s.Level,
			Readers: s.Readers, Loss: s.Loss, Bitrate: s.Bitrate, RTT: s.RTTMs})
		if lvl, ok := st.forest.Level(s.Stream, ss.node); ok && st.forest.Attached(s.Stream, ss.node) && lvl != s.Level {
			ss.log().Debug("reported level differs", "stream", s.Stream, "reported", s.Level, "tree", lvl)
		}
	}
	_ = st.forest.Report(ss.node, tr, st.s.Now()) // the node is registered while its session is current
	st.m.reports.Inc()
	st.noteReport(r)
	st.quarantineReport(ss, r)
	st.reconcile(ss, r)
}

// reconcile brings the tree in line with what a relay reports it receives.
// A relay the tree no longer holds (under drop its subtree was removed and
// nothing was said; a relay whose own parent recovered fast never stalls)
// is attached again under the parent it reports, if that parent can take
// it, else told to reconnect. This is how every relay of a dropped subtree
// rejoins within a report interval, stall or not.
func (st *state) reconcile(ss *session, r *wire.Report) {
	for _, s := range r.Streams {
		if s.Parent == "" || st.forest.Attached(s.Stream, ss.node) || st.forest.Leaving(s.Stream, ss.node) {
			continue
		}
		if _, reserved := st.forest.Reserved(s.Stream, ss.node); reserved {
			continue // a handover is moving it
		}
		res, err := st.forest.JoinVia(s.Stream, ss.node, s.Parent, tree.Via{RTT: s.RTTMs}, time.Now())
		if err == nil {
			st.m.joins.Inc()
			ss.log().Info("re-attached from its report", "stream", s.Stream, "parent", s.Parent)
			st.apply(res, ss.node+" re-attached from its report")
			continue
		}
		ss.log().Info("reported parent cannot take it back: reconnect", "stream", s.Stream, "parent", s.Parent, "err", err)
		st.sendReconnect(ss, &wire.Reconnect{Stream: s.Stream, Reason: wire.ReasonOrphaned, Parent: s.Parent})
	}
}

// apply emits the events of a tree mutation and sends (or schedules) its
// reconnects.
func (st *state) apply(res tree.Result, cause string) {
	st.recoveredBy(res)
	for _, c := range res.Changes {
		st.s.Events.Emit(event.TreeJoined{Stream: c.Stream, Node: c.Node, Parent: c.Parent,
			From: c.From, Level: c.Level, Subtree: c.Subtree})
	}
	for _, e := range res.Pending {
		st.s.Events.Emit(event.TreePending{Stream: e.Stream, Node: e.Node, Parent: e.Parent})
	}
	for _, m := range res.Orphaned {
		st.s.Events.Emit(event.TreeOrphaned{Stream: m.Stream, Node: m.Node, Cause: cause})
	}
	for _, m := range res.Removed {
		st.s.Events.Emit(event.TreeRemoved{Stream: m.Stream, Node: m.Node, Cause: cause})
	}
	for _, d := range res.Displaced {
		st.m.displacements.Inc()
		st.s.Events.Emit(event.TreeDisplaced{Stream: d.Stream, Node: d.Node, From: d.From, By: d.By,
			RTTMs: d.RTT, WorstMs: d.Worst})
		st.s.Log.Info("displaced", "stream", d.Stream, "node", d.Node, "from", d.From, "by", d.By,
			"rtt_ms", d.RTT, "worst_ms", d.Worst)
	}
	if len(res.Groups) > 0 {
		st.notify(res.Groups[0], false)
		if len(res.Groups) > 1 {
			st.cascades = append(st.cascades, &cascade{groups: res.Groups[1:], last: res.Groups[0],
				due: time.Now().Add(st.s.ReconnectStep)})
		}
	}
	st.progress()
}

// progress advances what the last change may have completed: a cascade
// whose last level has rejoined sends its next one at once, a handover
// whose children have all switched ends. It repeats until nothing moves
// (ending a handover changes the tree too).
func (st *state) progress() {
	if st.stepping {
		return // the running loop will see the change
	}
	st.stepping = true
	defer func() { st.stepping = false }()
	for moved := true; moved; {
		moved = false
		for _, c := range st.cascades {
			if len(c.groups) > 0 && st.rejoined(c.last) {
				st.fire(c)
				moved = true
			}
			st.tellEarly(c)
		}
		st.dropFinishedCascades()
		for _, h := range st.sortedHandovers() {
			if st.stepHandover(h) {
				moved = true
			}
		}
	}
}

// rejoined reports whether every node of a group told to reconnect is
// attached again (or gone: failed, disconnected, or out of the stream
// for good).
func (st *state) rejoined(g []tree.Notice) bool {
	for _, n := range g {
		if st.sessions[n.Node] != nil && st.forest.HasNode(n.Node) && !st.forest.Attached(n.Stream, n.Node) {
			return false
		}
	}
	return true
}

// fire sends a cascade's next group, skipping the nodes that rejoined or
// were told early.
func (st *state) fire(c *cascade) {
	g := c.groups[0]
	c.groups = c.groups[1:]
	c.last = g
	c.due = time.Now().Add(st.s.ReconnectStep)
	var rest []tree.Notice
	for _, n := range g {
		if !c.early[n.Node] {
			rest = append(rest, n)
		}
	}
	st.notify(rest, true)
}

// tellEarly sends the notices of later groups whose old parent is back in
// the tree. It changes no tree, so progress need not loop again for it.
func (st *state) tellEarly(c *cascade) {
	for _, g := range c.groups {
		for _, n := range g {
			if n.Home == "" || c.early[n.Node] || !st.forest.Attached(n.Stream, n.Home) {
				continue
			}
			if c.early == nil {
				c.early = map[string]bool{}
			}
			c.early[n.Node] = true
			st.notify([]tree.Notice{n}, true)
		}
	}
}

func (st *state) dropFinishedCascades() {
	kept := st.cascades[:0]
	for _, c := range st.cascades {
		if len(c.groups) > 0 {
			kept = append(kept, c)
		}
	}
	clear(st.cascades[len(kept):])
	st.cascades = kept
}

// notify sends reconnects. A delayed notice is skipped if its node has
// rejoined the stream in the meantime.
func (st *state) notify(g []tree.Notice, delayed bool) {
	for _, n := range g {
		if delayed && st.forest.Attached(n.Stream, n.Node) {
			continue
		}
		ss := st.sessions[n.Node]
		if ss == nil {
			continue
		}
		rc := &wire.Reconnect{Stream: n.Stream, Reason: n.Reason, Parent: n.Parent}
		st.setTarget(rc, n.Target, "")
		st.sendReconnect(ss, rc)
	}
}

// setTarget names target (a relay, or tree.Origin) as rc's new parent,
// with its RTSP address (rtsp, or looked up when empty): a relay told
// where to go switches make-before-break. Without an address to give, rc
// is left to resolve through candidates.
func (st *state) setTarget(rc *wire.Reconnect, target, rtsp string) {
	if target == "" {
		return
	}
	switch {
	case target == tree.Origin:
		rtsp, _ = streamurl.KeyAddr(rc.Stream)
	case rtsp == "":
		if n, ok := st.forest.Node(target); ok {
			rtsp = n.RTSP
		}
	}
	if rtsp != "" {
		rc.Target, rc.TargetRTSP = target, rtsp
	}
}

func (st *state) sendReconnect(ss *session, r *wire.Reconnect) {
	ss.push(r)
	st.movedUpstream(tree.Member{Stream: r.Stream, Node: ss.node})
	st.m.reconnects.inc(r.Reason)
	st.s.Events.Emit(event.ReconnectSent{Stream: r.Stream, Node: ss.node, Reason: r.Reason, Target: r.Target})
	ss.log().Info("reconnect sent", "stream", r.Stream, "reason", r.Reason, "target", r.Target)
}

// promiseHold is how long the slot a requester will most likely take
// stays promised to it: its probe round (probe.DefaultTimeout) and join,
// with room for a loaded host.
const promiseHold = 2 * time.Second

// likelyPick returns the candidate a relay with the default weights picks
// when every RTT is alike, among those with a free slot: the lowest score of the load, level and CPU
// terms (probe.Weights), the server's order breaking ties.
func likelyPick(cs []tree.Candidate) (string, bool) {
	best, bestScore := "", 0.0
	for _, c := range cs {
		if c.Worst > 0 {
			continue // full, offered for displacement: no slot to promise under it
		}
		load := 1.0
		if c.Capacity > 0 {
			load = float64(c.Clients) / float64(c.Capacity)
		}
		s := probe.DefaultWLoad*load + probe.DefaultWLevel*float64(c.Level) + probe.DefaultWCPU*min(max(c.CPU, 0), 1)
		if best == "" || s < bestScore {
			best, bestScore = c.ID, s
		}
	}
	return best, best != ""
}

// errorCode maps a tree error to a wire error code.
func errorCode(err error) string {
	switch {
	case errors.Is(err, tree.ErrCycle):
		return wire.CodeCycle
	case errors.Is(err, tree.ErrFull):
		return wire.CodeFull
	case errors.Is(err, tree.ErrUnknownParent):
		return wire.CodeUnknownParent
	case errors.Is(err, tree.ErrNotActive):
		return wire.CodeNotActive
	case errors.Is(err, tree.ErrNotWilling):
		return wire.CodeNotWilling
	case errors.Is(err, tree.ErrUnknownNode):
		return wire.CodeUnknownNode
	case errors.Is(err, tree.ErrNotInStream):
		return wire.CodeNotInStream
	case errors.Is(err, tree.ErrQuarantined):
		return wire.CodeQuarantined
	}
	return wire.CodeInternal
}
