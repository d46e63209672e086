package relay

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/ocm-overlay/ocm/internal/control"
	"github.com/ocm-overlay/ocm/internal/event"
	"github.com/ocm-overlay/ocm/internal/probe"
	"github.com/ocm-overlay/ocm/internal/streamurl"
)

// Improvement rounds. A relay picks its parent once, among the few the
// server offers at that moment: in a crowd arriving together the best
// ones may be full, and the tree changes as relays come and go. So for
// each stream it receives, playing, under a parent the server accepted,
// every ImproveEvery (jittered by a quarter either way, so a crowd does
// not ask together) it asks for candidates again (its parent among
// them: the server offers it while it is attached), probes them, and
// moves when probe.Improve says another parent brings the stream enough
// sooner (RTT plus the parent's path from the origin). The move is a
// handover's: the relay joins the new parent (with its RTT, and the ask
// to displace if the parent is full), then pushes a switch to the
// mediator, which is make-before-break there, so readers see nothing.
// A round without a move doubles the stream's wait, up to
// MaxImproveEvery; a move starts it over. A round runs in the stream's
// turn, so it never races a resolve, a RECONNECT or a leave; it is
// skipped while another of those holds the turn.
//
// bench/scale/sim's Adapt models these rounds for the tree-quality
// numbers.

// improveLoop starts the improvement rounds that are due, until the
// relay closes.
func (r *Relay) improveLoop() {
	r.every(r.ImproveEvery, func(now time.Time) bool {
		var due []string
		if r.call(r.ctx, func(st *state) { due = st.dueImprovements(now, r.ImproveEvery) }) != nil {
			return false
		}
		for _, s := range due {
			r.wg.Add(1)
			go func() {
				defer r.wg.Done()
				r.improve(s)
			}()
		}
		return true
	})
}

// improvable reports whether a round may look at ss: it plays under a
// parent the current session accepted and nothing else is under way.
func (st *state) improvable(ss *streamState) bool {
	sess := st.session()
	return sess != nil && ss.playing && ss.phase == phaseJoined && ss.parent != "" && ss.joinedIn == sess
}

// dueImprovements schedules the first round of streams that have none,
// and returns those whose round is due, each given its turn (the round
// passes it on): a stream whose turn another operation holds waits for
// a later tick.
func (st *state) dueImprovements(now time.Time, base time.Duration) []string {
	var due []string
	for s, ss := range st.streams {
		if !st.improvable(ss) {
			continue
		}
		if ss.improveAt.IsZero() {
			if ss.improveWait == 0 {
				ss.improveWait = base
			}
			ss.improveAt = now.Add(jittered(ss.improveWait))
			continue
		}
		if now.Before(ss.improveAt) || st.turns[s] != nil {
			continue
		}
		st.turns[s] = &turn{} // acquire's, without the wait
		due = append(due, s)
	}
	return due
}

// jittered is d give or take a quarter, at random.
func jittered(d time.Duration) time.Duration {
	return time.Duration(float64(d) * (0.75 + 0.5*rand.Float64()))
}

// improve runs one round for stream, in the stream's turn, which it then
// passes on, and schedules the next.
func (r *Relay) improve(stream string) {
	result, up := r.improveRound(stream)
	if result != "" {
		r.m.improved(result)
	}
	maxWait := max(MaxImproveEvery, r.ImproveEvery)
	_ = r.call(context.Background(), func(st *state) {
		if ss := st.streams[stream]; ss != nil {
			switch result {
			case improveMoved:
				ss.improveWait = r.ImproveEvery
			case improveStayed:
				ss.improveWait = min(2*ss.improveWait, maxWait)
			}
			ss.improveWait = max(ss.improveWait, r.ImproveEvery)
			ss.improveAt = time.Now().Add(jittered(ss.improveWait))
		}
	})
	if result == improveMoved {
		// In the turn still, so that a switch a later operation pushes
		// comes after this one.
		r.pushSwitch(stream, up)
	}
	_ = r.call(context.Background(), func(st *state) { st.pass(stream) })
}

// improveRound asks for candidates, probes them and moves stream to a
// better parent if probe.Improve finds one; it returns the round's
// result (improveMoved...) and, moved, the new upstream.
func (r *Relay) improveRound(stream string) (string, control.Upstream) {
	var sess *session
	var cur string
	if r.call(r.ctx, func(st *state) {
		if ss := st.streams[stream]; ss != nil && st.improvable(ss) {
			sess, cur = st.session(), ss.parent
		}
	}) != nil || sess == nil {
		return "", control.Upstream{} // changed since it was due: no round
	}
	o, err := streamurl.Parse(stream)
	if err != nil {
		return improveFailed, control.Upstream{}
	}
	ctx, cancel := context.WithTimeout(r.ctx, 2*DefaultCallTimeout+r.Weights.Timeout)
	defer cancel()
	cands, err := sess.cl.Candidates(ctx, stream, nil)
	if err != nil {
		r.Log.Debug("improvement round: no candidates", "stream", stream, "err", err)
		return improveFailed, control.Upstream{}
	}
	sel := probe.Select(ctx, cands, stream, r.Weights, "")
	r.m.probed(sel.Choices)
	i := slices.IndexFunc(sel.Choices, func(c probe.Choice) bool { return c.Candidate.Node == cur })
	var from probe.Choice
	if i >= 0 && sel.Choices[i].Result.Err == nil {
		from = sel.Choices[i]
	}
	ch, better := probe.Improve(sel, cur)
	stillThere := false
	_ = r.call(r.ctx, func(st *state) {
		ss := st.streams[stream]
		if ss == nil || ss.parent != cur || !st.improvable(ss) {
			return
		}
		stillThere = true
		if rtt := rttMs(from.Result); rtt > 0 {
			ss.rttMs = rtt // the next reports carry the fresh measure
		}
		if better {
			ss.phase = phaseSwitching
			ss.knowNodes(cands)
		}
	})
	if !stillThere {
		return "", control.Upstream{}
	}
	if !better {
		r.Log.Debug("improvement round: staying", "stream", stream, "parent", cur,
			"latency_ms", fmt.Sprintf("%.2f", from.Latency()), "candidates", len(cands))
		return improveStayed, control.Upstream{}
	}
	defer func() {
		_ = r.call(context.Background(), func(st *state) {
			if ss := st.streams[stream]; ss != nil {
				ss.settle()
			}
		})
	}()
	level, err := joinChoice(ctx, sess, stream, ch)
	if err != nil {
		r.Log.Info("improvement round: the better parent refused, staying", "stream", stream, "parent", cur,
			"better", ch.Candidate.Node, "err", err)
		return improveRefused, control.Upstream{}
	}
	up := upstreamFor(o, ch.Candidate)
	if !r.setParent(stream, ch.Candidate, up, level, sess, rttMs(ch.Result)) {
		return "", control.Upstream{}
	}
	r.Log.Info("moved to a better parent", "stream", stream, "from", cur, "to", ch.Candidate.Node, "level", level,
		"from_ms", fmt.Sprintf("%.2f", from.Latency()), "to_ms", fmt.Sprintf("%.2f", ch.Latency()),
		"rtt_ms", fmt.Sprintf("%.2f", rttMs(ch.Result)), "path_ms", fmt.Sprintf("%.2f", ch.Candidate.PathMs),
		"displace", ch.Displace)
	r.Events.Emit(event.Improved{Stream: stream, From: cur, To: ch.Candidate.Node, FromMs: from.Latency(),
		ToMs: ch.Latency(), Level: level, Displace: ch.Displace})
	return improveMoved, up
}
