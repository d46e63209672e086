package main

// overlay/handover: a relay H with children and grandchildren leaves the
// overlay gracefully (issue 4): SIGTERM to its ocm-relay only. The relay
// tells the server it leaves; the server plans a new parent for each of
// H's children and sends it a reconnect with that target; each child's
// mediator switches make-before-break while H's rtsp-mediator (still
// running) keeps feeding it; once every child has moved (or the server's
// handover timeout passes) the server acks the left and H's relay exits.
//
// Measured, per repetition on a freshly built tree: the packets every
// player below H lost (sequence numbers never received) and received
// twice, from half a second before the SIGTERM until 2 s after the
// handover completed; SIGTERM -> H's relay exiting, and SIGTERM -> every
// child's mediator playing from its new upstream; whether H is gone from
// the server's tree and every other host attached.
//
// Environment: OCM_BENCH_KILLS, repetitions (default 3), as overlay/recovery.

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/ocm-overlay/ocm/internal/event"
	"github.com/ocm-overlay/ocm/internal/lab"
)

func init() {
	register("overlay/handover", runOverlayHandover)
}

var (
	hovHosts      = 9 // origin capacity 2, host capacity 2: levels of 2, 4, 3
	hovOriginCap  = 2
	hovHostCap    = 2
	hovSteady     = time.Second            // of normal play before the SIGTERM
	hovBefore     = 500 * time.Millisecond // the loss window starts this long before the SIGTERM
	hovAfter      = 2 * time.Second        // and ends this long after the handover completed
	hovLimit      = 12 * time.Second       // for the relay to exit and the children to switch (the relay's own leave gives up after 10 s)
	hovTreeLimit  = 3 * time.Second        // for the tree without H, after the window
	hovTailMargin = 250 * time.Millisecond // a packet the origin sent this long before the window's end must have reached every player
)

// hovRun is what one handover measured.
type hovRun struct {
	hosts    int
	leaving  string
	children []string // H's children before
	below    []string // H's descendants before
	depth    int

	exit       time.Duration // SIGTERM -> H's ocm-relay exited
	exitOK     bool
	exitErr    error
	left       time.Duration // SIGTERM -> H's relay read the server's ack of its left
	switched   []time.Duration
	lastSwitch time.Duration // SIGTERM -> the last child playing from its new upstream
	unswitched []string
	reconnect  []time.Duration // SIGTERM -> a child's relay got the server's reconnect
	complete   time.Duration   // max(exit, lastSwitch)

	serverResult   string // handover_done's result
	serverTime     time.Duration
	remaining      int
	moves          []string // "child: H -> new parent" by the tree after
	targetsMatched int      // children whose new parent is the target the server planned
	targetsPlanned int

	lost       map[string]int // per player below H
	dups       int
	silence    []time.Duration // per player below H: the longest silence in the window
	gaps       []string        // where the lost packets were
	othersLost int             // players elsewhere (not below H, not on H)
	hLost      int             // the player on H itself
	hMedAlive  bool
	ended      []string // players whose session ended

	hGone    bool
	detached int
	treeErr  string

	switches hovSwitches
	warnings []string
}

// hovSwitches counts how the children's mediators switched, and the
// upstreams they lost (a break, not a switch).
type hovSwitches struct {
	overlapped, stalled, forced, failed, lostUp int
}

func (s *hovSwitches) add(o hovSwitches) {
	s.overlapped += o.overlapped
	s.stalled += o.stalled
	s.forced += o.forced
	s.failed += o.failed
	s.lostUp += o.lostUp
}

func runOverlayHandover(ctx context.Context, o options) ([]result, error) {
	// The reference player on the origin tells up to which packet every
	// player must have received by the window's end.
	n, reps, err := startOvlRuns(ctx, o)
	if err != nil {
		return nil, err
	}
	defer n.close()
	var runs []hovRun
	for k := range reps {
		run, err := hovHandoverRun(ctx, n)
		if err != nil {
			return nil, fmt.Errorf("handover %d: %w", k+1, err)
		}
		total := 0
		for _, l := range run.lost {
			total += l
		}
		progressf("overlay/handover %d: %s left (%d children, %d below); relay exited after %.1f ms, "+
			"children switched after %.1f ms; %d packets lost below it",
			k+1, run.leaving, len(run.children), len(run.below), ms(run.exit), ms(run.lastSwitch), total)
		runs = append(runs, run)
	}
	return []result{hovResult(runs)}, nil
}

// hovHandoverRun builds the tree on a fresh server, makes H leave and measures.
func hovHandoverRun(ctx context.Context, n *ovlNet) (hovRun, error) {
	run := hovRun{lost: map[string]int{}}
	ref := n.ref
	tr, err := n.startTree(hovOriginCap, "")
	if err != nil {
		return run, err
	}
	defer tr.close()
	for i := range hovHosts {
		if _, err := tr.add(ctx, fmt.Sprintf("h%d", i+1), hovHostCap); err != nil {
			return run, err
		}
	}
	hosts, srv := tr.hosts, tr.srv
	run.hosts = len(hosts)
	before, err := tr.built(ctx)
	if err != nil {
		return run, fmt.Errorf("tree before the handover: %w", err)
	}
	run.depth = before.Depth
	eb := before.Parents()
	kids := map[string][]string{}
	for c, p := range eb {
		kids[p] = append(kids[p], c)
	}

	// H: among the relays with at least two children and a grandchild,
	// the one with the most descendants.
	for _, nd := range before.Nodes {
		id := nd.Node
		d := before.Below(id)
		if len(kids[id]) < 2 || len(d) <= len(kids[id]) {
			continue
		}
		if run.leaving == "" || len(d) > len(run.below) || (len(d) == len(run.below) && id < run.leaving) {
			run.leaving, run.below = id, d
		}
	}
	if run.leaving == "" {
		return run, fmt.Errorf("no relay has two children and a grandchild: edges %v", eb)
	}
	run.children = slices.Clone(kids[run.leaving])
	sort.Strings(run.children)
	byID := tr.byID()
	H := byID[run.leaving]

	if err := sleepCtx(ctx, hovSteady); err != nil {
		return run, err
	}
	for _, h := range hosts {
		if a, ok := h.player.Last(); !ok || time.Since(a.At) > 500*time.Millisecond {
			return run, fmt.Errorf("the player on %s is not receiving before the handover", h.id)
		}
	}

	// SIGTERM to H's ocm-relay only: its mediator keeps serving. At a
	// random phase of the frames, so repetitions are independent.
	if err := sleepCtx(ctx, rand.N(ovlFrameInterval)); err != nil {
		return run, err
	}
	exited := make(chan time.Time, 1)
	sigterm := time.Now()
	if err := syscall.Kill(H.relay.PID(), syscall.SIGTERM); err != nil {
		return run, fmt.Errorf("SIGTERM %s's relay: %w", H.id, err)
	}
	go func() {
		select {
		case <-H.relay.Done():
			exited <- time.Now()
		case <-time.After(hovLimit):
		}
	}()

	// Wait for the relay's exit and every child's new upstream.
	newUpstream := func(e event.Upstream) bool {
		return e.State == "playing" && e.Node != H.id && !strings.Contains(e.Upstream, H.rtsp)
	}
	switchedAt := map[string]time.Duration{}
	deadline := sigterm.Add(hovLimit)
	for {
		if !run.exitOK {
			select {
			case t := <-exited:
				run.exitOK, run.exit = true, t.Sub(sigterm)
			default:
			}
		}
		for _, c := range run.children {
			if _, ok := switchedAt[c]; ok {
				continue
			}
			for _, e := range lab.EventsSince[event.Upstream](byID[c].med, sigterm) {
				if newUpstream(e.E) {
					switchedAt[c] = e.At.Sub(sigterm)
					break
				}
			}
		}
		if (run.exitOK && len(switchedAt) == len(run.children)) || time.Now().After(deadline) {
			break
		}
		if err := sleepCtx(ctx, 2*time.Millisecond); err != nil {
			return run, err
		}
	}
	if !run.exitOK {
		run.exit = hovLimit
	} else {
		run.exitErr = H.relay.Err()
	}
	for _, c := range run.children {
		if d, ok := switchedAt[c]; ok {
			run.switched = append(run.switched, d)
			run.lastSwitch = max(run.lastSwitch, d)
		} else {
			run.unswitched = append(run.unswitched, c)
			run.lastSwitch = hovLimit
		}
	}
	run.complete = max(run.exit, run.lastSwitch)
	end := sigterm.Add(run.complete + hovAfter)
	if err := sleepCtx(ctx, time.Until(end)); err != nil {
		return run, err
	}

	// The tree: H gone, everyone else attached.
	others := len(hosts) - 1
	after, terr := waitTree(ctx, srv, n.stream(), hovTreeLimit, func(t lab.Tree) bool {
		for _, nd := range t.Nodes {
			if nd.Node == H.id {
				return false
			}
		}
		return t.Attached() == others
	})
	if after == nil {
		return run, fmt.Errorf("cannot read the tree after the handover: %v", terr)
	}
	if terr != nil {
		run.treeErr = terr.Error()
	}
	run.hGone = true
	for _, nd := range after.Nodes {
		if nd.Node == H.id {
			run.hGone = false
		}
	}
	ea := after.Parents()
	for _, h := range hosts {
		if h.id != H.id && ea[h.id] == "" {
			run.detached++
		}
	}
	for _, c := range run.children {
		run.moves = append(run.moves, fmt.Sprintf("%s: %s -> %s", c, H.id, orDash(ea[c])))
	}

	// The server's side: the handover's end, and the targets it planned.
	for _, e := range lab.EventsSince[event.HandoverDone](srv, sigterm) {
		if e.E.Node == H.id {
			run.serverResult = e.E.Result
			run.serverTime = e.At.Sub(sigterm)
			run.remaining = len(e.E.Remaining)
			break
		}
	}
	for _, e := range lab.EventsSince[event.HandoverStarted](srv, sigterm) {
		if e.E.Node != H.id {
			continue
		}
		for _, mv := range e.E.Children {
			run.targetsPlanned++
			if mv.Target != "" && ea[mv.Node] == mv.Target {
				run.targetsMatched++
			}
		}
		break
	}
	// The first "left" line: of one stream, or of the overlay.
	if l := lab.EventsSince[event.Left](H.relay, sigterm); len(l) > 0 {
		run.left = l[0].At.Sub(sigterm)
	}
	if l := lab.EventsSince[event.LeftOverlay](H.relay, sigterm); len(l) > 0 && (run.left == 0 || l[0].At.Sub(sigterm) < run.left) {
		run.left = l[0].At.Sub(sigterm)
	}
	for _, c := range run.children {
		for _, e := range lab.EventsSince[event.Reconnect](byID[c].relay, sigterm) {
			if e.E.Parent == H.id {
				run.reconnect = append(run.reconnect, e.At.Sub(sigterm))
				break
			}
		}
	}

	// The players: loss, duplicates and silence over the window.
	from := sigterm.Add(-hovBefore)
	expect, haveExpect := lastBefore(ref.Arrivals(), end.Add(-hovTailMargin))
	below := map[string]bool{}
	for _, id := range run.below {
		below[id] = true
	}
	for _, h := range hosts {
		ps := analyseHandover(h.player.Arrivals(), from, end, expect.Seq, haveExpect)
		switch {
		case h.id == H.id:
			run.hLost = ps.lost
		case below[h.id]:
			run.lost[h.id] = ps.lost
			run.dups += ps.dups
			run.silence = append(run.silence, ps.silence)
			for _, g := range ps.gaps {
				run.gaps = append(run.gaps, fmt.Sprintf("%s (below %s): %s",
					h.id, eb[h.id], g.describe(sigterm)))
			}
		default:
			run.othersLost += ps.lost
		}
		if err := h.player.Failed(); err != nil && h.id != H.id {
			run.ended = append(run.ended, fmt.Sprintf("%s: %v", h.id, err))
		}
	}
	run.hMedAlive = !H.med.Exited()

	// How the children's mediators switched, from their logs.
	for _, c := range run.children {
		tail := logSince(byID[c].med.Stderr(), from)
		run.switches.add(hovSwitches{
			overlapped: countLines(tail, `msg="switching upstream"`),
			lostUp:     countLines(tail, `msg="upstream lost"`),
			stalled:    countLines(tail, "old upstream stalled"),
			forced:     countLines(tail, "switch did not overlap in time"),
			failed:     countLines(tail, "switch failed"),
		})
		if l := lastLogLine(tail, "level=WARN"); l != "" {
			run.warnings = append(run.warnings, c+" mediator: "+l)
		}
	}
	run.switches.overlapped -= run.switches.stalled + run.switches.forced + run.switches.failed
	if l := lastLogLine(logSince(H.relay.Stderr(), from), "level=WARN"); l != "" {
		run.warnings = append(run.warnings, H.id+" relay: "+l)
	}
	// Losing its relay is what H's mediator is expected to log; anything else is news.
	var hMed []string
	for _, l := range strings.Split(logSince(H.med.Stderr(), from), "\n") {
		if !strings.Contains(l, `msg="lost the connection to ocm-relay"`) {
			hMed = append(hMed, l)
		}
	}
	if l := lastLogLine(strings.Join(hMed, "\n"), "level=WARN"); l != "" {
		run.warnings = append(run.warnings, H.id+" mediator: "+l)
	}
	if run.exitErr != nil {
		run.warnings = append(run.warnings, fmt.Sprintf("%s relay exited with %v", H.id, run.exitErr))
	}
	return run, nil
}

// hovPlayer is one player's view of the handover window.
type hovPlayer struct {
	lost, dups int
	silence    time.Duration // the longest time without a packet in the window
	gaps       []hovGap
}

// hovGap is a run of sequence numbers a player never received.
type hovGap struct {
	first, last uint16
	after       time.Time // arrival of the packet before it (zero: at the window's start)
	resumed     time.Time // arrival of the packet after it (zero: none came)
}

func (g hovGap) describe(t0 time.Time) string {
	s := fmt.Sprintf("seq %d-%d (%d packets)", g.first, g.last, int(uint16(g.last-g.first))+1)
	if !g.after.IsZero() {
		s += fmt.Sprintf(", after a packet at %+.1f ms", ms(g.after.Sub(t0)))
	}
	if g.resumed.IsZero() {
		s += ", never resumed"
	} else {
		s += fmt.Sprintf(", resumed at %+.1f ms", ms(g.resumed.Sub(t0)))
	}
	return s
}

// analyseHandover reads the arrivals in [from, end]: the sequence numbers
// missing between the first one received and the last one expected
// (expectSeq, the last the origin had sent a margin before end, when
// haveExpect; else the last one received), the duplicates, and the longest
// silence, the window's edges included.
func analyseHandover(arr []lab.Arrival, from, end time.Time, expectSeq uint16, haveExpect bool) hovPlayer {
	var r hovPlayer
	var in []lab.Arrival
	for _, a := range arr {
		if !a.At.Before(from) && !a.At.After(end) {
			in = append(in, a)
		}
	}
	if len(in) == 0 {
		r.silence = end.Sub(from)
		return r
	}
	prev := from
	for _, a := range in {
		r.silence = max(r.silence, a.At.Sub(prev))
		prev = a.At
	}
	r.silence = max(r.silence, end.Sub(prev))

	base := in[0].Seq
	first := map[int]lab.Arrival{} // offset from base -> its first arrival
	hi := 0
	for _, a := range in {
		e := int(int16(a.Seq - base))
		if _, ok := first[e]; ok {
			r.dups++
			continue
		}
		first[e] = a
		hi = max(hi, e)
	}
	lo := 0
	for e := range first {
		lo = min(lo, e)
	}
	top := hi
	if haveExpect {
		top = max(top, int(int16(expectSeq-base)))
	}
	r.lost = (top - lo + 1) - len(first)
	// Where: runs of missing offsets.
	for e := lo; e <= top; e++ {
		if _, ok := first[e]; ok {
			continue
		}
		g := hovGap{first: base + uint16(e)}
		if a, ok := first[e-1]; ok {
			g.after = a.At
		}
		for e+1 <= top {
			if _, ok := first[e+1]; ok {
				break
			}
			e++
		}
		g.last = base + uint16(e)
		if a, ok := first[e+1]; ok {
			g.resumed = a.At
		}
		r.gaps = append(r.gaps, g)
	}
	return r
}

// logSince keeps the lines of a tool's stderr (slog text, time= first)
// logged at or after t; lines without a readable time are kept.
func logSince(tail string, t time.Time) string {
	var out []string
	for _, l := range strings.Split(tail, "\n") {
		if v, ok := strings.CutPrefix(l, "time="); ok {
			if i := strings.IndexByte(v, ' '); i > 0 {
				if at, err := time.Parse(time.RFC3339Nano, v[:i]); err == nil && at.Before(t.Truncate(time.Millisecond)) {
					continue
				}
			}
		}
		out = append(out, l)
	}
	return strings.Join(out, "\n")
}

func countLines(tail, substr string) int {
	c := 0
	for _, l := range strings.Split(tail, "\n") {
		if strings.Contains(l, substr) {
			c++
		}
	}
	return c
}

func hovResult(runs []hovRun) result {
	var exits, lastSwitch, switched, complete, reconnect, left, serverTime, silence, margin []time.Duration
	var lost []int
	lostTotal, dups, othersLost, hLost, detached, notGone, unswitched, ended := 0, 0, 0, 0, 0, 0, 0, 0
	planned, matched := 0, 0
	var sw hovSwitches
	minChildren, minBelow, maxDepth := runs[0].children, runs[0].below, 0
	results := map[string]int{}
	var notes, gaps, warnings, moves, other []string
	for i, r := range runs {
		exits = append(exits, r.exit)
		if r.exitOK && len(r.unswitched) == 0 {
			margin = append(margin, r.exit-r.lastSwitch)
		}
		lastSwitch = append(lastSwitch, r.lastSwitch)
		switched = append(switched, r.switched...)
		complete = append(complete, r.complete)
		reconnect = append(reconnect, r.reconnect...)
		if r.left > 0 {
			left = append(left, r.left)
		}
		if r.serverResult != "" {
			serverTime = append(serverTime, r.serverTime)
		}
		silence = append(silence, r.silence...)
		ids := make([]string, 0, len(r.lost))
		for id := range r.lost {
			ids = append(ids, id)
		}
		sort.Strings(ids)
		for _, id := range ids {
			lost = append(lost, r.lost[id])
			lostTotal += r.lost[id]
		}
		dups += r.dups
		othersLost += r.othersLost
		hLost += r.hLost
		detached += r.detached
		if !r.hGone {
			notGone++
		}
		unswitched += len(r.unswitched)
		ended += len(r.ended)
		sw.add(r.switches)
		planned += r.targetsPlanned
		matched += r.targetsMatched
		results[orDash(r.serverResult)]++
		if len(r.children) < len(minChildren) {
			minChildren = r.children
		}
		if len(r.below) < len(minBelow) {
			minBelow = r.below
		}
		maxDepth = max(maxDepth, r.depth)
		tag := fmt.Sprintf("run %d", i+1)
		moves = append(moves, fmt.Sprintf("%s: %s left, children %s", tag, r.leaving, strings.Join(r.moves, ", ")))
		for _, g := range r.gaps {
			gaps = append(gaps, tag+" "+g)
		}
		for _, w := range r.warnings {
			warnings = append(warnings, tag+" "+w)
		}
		for _, c := range r.unswitched {
			other = append(other, fmt.Sprintf("%s: %s's mediator never played from a new upstream within %v", tag, c, hovLimit))
		}
		for _, e := range r.ended {
			other = append(other, fmt.Sprintf("%s: player session ended: %s", tag, e))
		}
		if r.treeErr != "" {
			other = append(other, fmt.Sprintf("%s: tree after: %s (H gone %v, %d detached)", tag, r.treeErr, r.hGone, r.detached))
		}
		if !r.exitOK {
			other = append(other, fmt.Sprintf("%s: %s's relay did not exit within %v of the SIGTERM", tag, r.leaving, hovLimit))
		}
		if !r.hMedAlive {
			other = append(other, fmt.Sprintf("%s: %s's mediator exited", tag, r.leaving))
		}
	}
	maxLost := 0
	if len(lost) > 0 {
		maxLost = slices.Max(lost)
	}
	m := map[string]any{
		"repetitions":                 len(runs),
		"hosts":                       runs[0].hosts,
		"h_children_min":              len(minChildren),
		"h_descendants_min":           len(minBelow),
		"tree_depth_max":              maxDepth,
		"players_below_h_measured":    len(lost),
		"lost_packets_total":          lostTotal,
		"lost_packets_max_per_player": maxLost,
		"duplicates":                  dups,
		"child_switched_ms_p50":       ms(median(switched)),
		"children_unswitched":         unswitched,
		"switches_overlapped":         sw.overlapped,
		"switches_old_stalled":        sw.stalled,
		"switches_forced_by_timeout":  sw.forced,
		"switches_failed":             sw.failed,
		"children_upstream_lost":      sw.lostUp,
		"targets_planned":             planned,
		"targets_kept":                matched,
		"server_handover_results":     countsString(results),
		"h_gone_from_tree_runs":       len(runs) - notGone,
		"nodes_detached_after":        detached,
		"player_sessions_ended":       ended,
		"lost_packets_elsewhere":      othersLost,
		"lost_packets_player_on_h":    hLost,
	}
	putHost(m)
	putMs(m, "silence_per_player_ms_p50", "silence_per_player_ms_max", silence)
	putMs(m, "handover_ms_p50", "handover_ms_max", complete)
	putMs(m, "relay_exit_ms_p50", "relay_exit_ms_max", exits)
	putMs(m, "children_switched_ms_p50", "children_switched_ms_max", lastSwitch)
	putMedian(m, "child_reconnect_ms_p50", reconnect)
	if len(margin) > 0 {
		m["relay_exit_after_last_switch_ms_min"] = ms(slices.Min(margin))
	}
	putMedian(m, "relay_left_acked_ms_p50", left)
	putMedian(m, "server_handover_done_ms_p50", serverTime)
	ok := lostTotal == 0 && dups == 0 && unswitched == 0 && ended == 0 && notGone == 0 && detached == 0
	notes = append(notes, verdict(lostTotal == 0,
		fmt.Sprintf("handover loses %d packets in total over %d handovers (%d players below H measured, at most %d per player), target zero",
			lostTotal, len(runs), len(lost), maxLost)))
	children := len(switched) + unswitched
	mbb := sw.overlapped == children && sw.stalled+sw.forced+sw.failed+sw.lostUp == 0
	notes = append(notes, fmt.Sprintf("make-before-break: %d of %d children's switches overlapped; %d without overlap (old upstream stalled), "+
		"%d forced after the switch timeout, %d failed, %d upstreams lost (a break); a break shorter than the %v between "+
		"the test source's frames can lose nothing, so zero loss alone does not prove make-before-break; these counts and "+
		"the players' silence (a frame interval when nothing broke) tell (all overlapped: %v)", sw.overlapped, children, sw.stalled, sw.forced, sw.failed, sw.lostUp, ovlFrameInterval, mbb))
	if !ok {
		var why []string
		if dups > 0 {
			why = append(why, fmt.Sprintf("%d duplicate packets", dups))
		}
		if unswitched > 0 {
			why = append(why, fmt.Sprintf("%d children never switched", unswitched))
		}
		if ended > 0 {
			why = append(why, fmt.Sprintf("%d player sessions ended", ended))
		}
		if notGone > 0 {
			why = append(why, fmt.Sprintf("H still in the tree after %d handovers", notGone))
		}
		if detached > 0 {
			why = append(why, fmt.Sprintf("%d nodes detached after", detached))
		}
		if len(why) > 0 {
			notes = append(notes, "also: "+strings.Join(why, "; "))
		}
	}
	if len(gaps) > 0 {
		if len(gaps) > 12 {
			gaps = append(gaps[:12], fmt.Sprintf("... %d more", len(gaps)-12))
		}
		notes = append(notes, "sequence gaps (times from the SIGTERM, as the player read them): "+strings.Join(gaps, " | "))
	}
	notes = append(notes, other...)
	if len(warnings) > 0 {
		if len(warnings) > 9 {
			warnings = append(warnings[:9], fmt.Sprintf("... %d more", len(warnings)-9))
		}
		notes = append(notes, "last warnings: "+strings.Join(warnings, " | "))
	}
	notes = append(notes, "moves: "+strings.Join(moves, "; "),
		fmt.Sprintf("tree: origin capacity %d, %d hosts of capacity %d, a player on every host; H = the relay with the most "+
			"descendants among those with two children or more and a grandchild; SIGTERM to H's ocm-relay only (its "+
			"rtsp-mediator keeps serving until its readers have moved, and logs that it lost its relay: not listed as a warning); ocm-server with its default recovery policy and "+
			"handover timeout", hovOriginCap, hovHosts, hovHostCap),
		fmt.Sprintf("loss = sequence numbers a player below H never received, from %v before the SIGTERM until %v after the "+
			"handover completed, up to the last packet the origin had sent %v before the window's end (seen by a player on the "+
			"origin); duplicates = packets received twice in that window; silence = the longest time without a packet in it",
			hovBefore, hovAfter, hovTailMargin),
		"the SIGTERM falls at a random phase between two frames; handover_ms = SIGTERM -> both H's ocm-relay exited and every child's mediator printed upstream playing from its "+
			"new parent; relay_exit and children_switched are the two parts; child_reconnect = SIGTERM -> the child's relay "+
			"printed the server's reconnect; relay_exit_after_last_switch_min = the least time H's relay outlived its children's "+
			"switches; times are when this process read the tools' stdout",
		"switches_* count how the children's mediators switched, from their logs since the SIGTERM: overlapped "+
			"(make-before-break: switching upstream logged with none of the others), old upstream stalled (switched without "+
			"overlap), forced after the switch timeout, failed (kept the old upstream); the mediator logs nothing when its old "+
			"upstream closes in the middle of a switch (the new one then takes over with the gap), so such a switch would count "+
			"as overlapped: the players' loss and silence are the measure, these counts explain them; "+
			"targets_kept = children whose parent after is the target the server planned",
		"lost_packets_elsewhere = the same count on players neither on nor below H (a control); the player on H itself "+
			"keeps playing through H's mediator, whose own upstream is untouched")
	return result{Case: "overlay/handover", Metrics: m, Notes: notes}
}
