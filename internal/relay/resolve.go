package relay

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"time"

	"github.com/ocm-overlay/ocm/internal/control"
	"github.com/ocm-overlay/ocm/internal/event"
	"github.com/ocm-overlay/ocm/internal/probe"
	"github.com/ocm-overlay/ocm/internal/retry"
	"github.com/ocm-overlay/ocm/internal/streamurl"
	"github.com/ocm-overlay/ocm/internal/wire"
)

// resolveFor answers a mediator's resolve: where to pull the stream
// from. A redirect (light client) only picks: nothing joins, nothing is
// kept. Otherwise the relay takes the stream (within MaxStreams) until
// the mediator says it plays it, or ActiveTimeout passes.
func (r *Relay) resolveFor(ctx context.Context, owner *control.Conn, m *control.Resolve) (control.Upstream, error) {
	if m.Mode == control.ModeRedirect {
		return r.resolveExcluding(ctx, m.Stream, m.Exclude, true)
	}
	o, err := streamurl.Parse(m.Stream)
	if err != nil {
		return control.Upstream{}, fmt.Errorf("stream %q: %w", m.Stream, err)
	}
	stream := o.URL()
	// A mediator that lost its upstream says so (and names it in the
	// exclude list, unless it forgot what failed).
	afterLoss := m.Mode == control.ModeAfterLoss
	var b *wire.Reconnect
	if afterLoss {
		b = r.waitForReconnect(ctx, stream, m.Exclude)
	}
	release, err := r.acquire(ctx, stream)
	if err != nil {
		return control.Upstream{}, err
	}
	defer release()
	fresh := false
	if cerr := r.call(ctx, func(st *state) {
		var ss *streamState
		if ss, fresh, err = st.claim(stream, owner, r.MaxStreams); err != nil {
			return
		}
		ss.phase = phaseSwitching
		if fresh {
			ss.phase = phaseResolving
		}
	}); cerr != nil {
		return control.Upstream{}, cerr
	}
	if err != nil {
		return control.Upstream{}, err
	}
	var up control.Upstream
	if afterLoss {
		up, err = r.resolveAfterLoss(ctx, stream, m.Exclude, b)
	} else {
		up, err = r.resolveExcluding(ctx, stream, nil, false)
	}
	ok := err == nil
	_ = r.call(context.Background(), func(st *state) {
		ss := st.streams[stream]
		switch {
		case ss == nil:
		case fresh && !ok:
			// Only resolving for this request: forget it.
			delete(st.streams, stream)
		case fresh:
			// Reserved under its parent until the mediator plays it.
			ss.answered = time.Now()
			ss.settle()
		default:
			ss.settle()
		}
	})
	return up, err
}

// resolveAfterLoss answers a mediator that lost its upstream: with the
// RECONNECT it waited for, where it says; else where a RECONNECT handled
// meanwhile moved the stream; else a fresh resolve excluding what failed.
// Call it in the stream's turn.
func (r *Relay) resolveAfterLoss(ctx context.Context, stream string, exclude []string, b *wire.Reconnect) (control.Upstream, error) {
	if b != nil {
		up, err := r.reconnectUpstream(ctx, b)
		return up.Upstream, err
	}
	var moved control.Upstream
	if err := r.call(ctx, func(st *state) {
		if ss := st.streams[stream]; ss != nil && ss.parent != "" && ss.upstream.URL != "" && !slices.Contains(exclude, ss.upstream.Addr) {
			moved = ss.upstream
		}
	}); err != nil {
		return control.Upstream{}, err
	}
	if moved.URL != "" {
		return moved, nil
	}
	return r.resolveExcluding(ctx, stream, exclude, false)
}

func (r *Relay) resolveExcluding(ctx context.Context, stream string, exclude []string, redirect bool) (control.Upstream, error) {
	return r.resolveChoosing(ctx, stream, exclude, redirect, "")
}

// resolveChoosing is resolveExcluding that takes the candidate prefer
// whenever it is eligible, whatever its score.
func (r *Relay) resolveChoosing(ctx context.Context, stream string, exclude []string, redirect bool, prefer string) (control.Upstream, error) {
	o, err := streamurl.Parse(stream)
	if err != nil {
		return control.Upstream{}, fmt.Errorf("stream %q: %w", stream, err)
	}
	stream = o.URL()
	if !r.serverFor(ctx, o) {
		return originUpstream(o), nil
	}
	excludeNodes := make([]string, 0, len(exclude))
	if err := r.call(ctx, func(st *state) {
		var known map[string]string
		if ss := st.streams[stream]; ss != nil {
			known = ss.nodes
		}
		for _, a := range exclude {
			if n, ok := known[a]; ok {
				excludeNodes = append(excludeNodes, n)
			} else if a == o.Addr() {
				excludeNodes = append(excludeNodes, wire.OriginID)
			}
		}
	}); err != nil {
		return control.Upstream{}, err
	}

	sess, err := r.ensureSession(ctx)
	if sess == nil {
		r.Log.Warn("ocm-server unreachable: pulling from the origin directly", "stream", stream, "err", err)
		r.Events.Emit(event.Fallback{Stream: stream, Reason: fmt.Sprint(err)})
		r.m.fellBack()
		return originUpstream(o), nil
	}
	return r.joinSome(ctx, sess, o, excludeNodes, redirect, prefer)
}

// Waits between two candidate rounds of one resolve (joinSome): the
// first about a join's round trip, so that relays that were just
// accepted are offered next; jittered, so that a crowd refused together
// does not ask together again.
const (
	joinRetryMin = 50 * time.Millisecond
	joinRetryMax = 800 * time.Millisecond
)

// ErrNoRoom is why a resolve failed when every round found the parents
// offered without room, up to JoinAttempts rounds or JoinWait.
var ErrNoRoom = errors.New("no parent with room")

// joinSome takes a parent for stream among the server's candidates. A
// round in which no parent took us only for want of room (one filled
// up between the candidate list and our join, the same few being
// offered to a whole flash crowd; or none had a free slot yet) is not
// the viewer's failure: the relays that just joined are parents a
// moment later, so it asks again, without the parents found full, up
// to JoinAttempts rounds within JoinWait. Anything else ends the
// resolve at once.
func (r *Relay) joinSome(ctx context.Context, sess *session, o streamurl.Origin, exclude []string, redirect bool, prefer string) (control.Upstream, error) {
	stream := o.URL()
	start := time.Now()
	backoff := retry.Backoff{Min: joinRetryMin, Max: joinRetryMax, Jitter: true}
	var full []string // found full in earlier rounds
	for attempt := 1; ; attempt++ {
		up, err := r.joinRound(ctx, sess, o, slices.Concat(exclude, full), redirect, prefer)
		var nr *noRoomError
		if !errors.As(err, &nr) {
			return up, err
		}
		if len(nr.full) == 0 && len(exclude) > 0 {
			// After a loss, nothing is offered once what failed is left
			// out: that may be the only way (the origin restarted, or a
			// parent whose own upstream came back). The mediator asks
			// again at once without it; waiting here for room would only
			// hold its readers' gap open.
			return control.Upstream{}, err
		}
		elapsed := time.Since(start)
		if attempt >= r.JoinAttempts || elapsed >= r.JoinWait {
			return control.Upstream{}, fmt.Errorf("%w for %s after %d candidate rounds in %v (ocm-relay --join-attempts %d, --join-wait %v): %w",
				ErrNoRoom, stream, attempt, elapsed.Round(time.Millisecond), r.JoinAttempts, r.JoinWait, err)
		}
		if len(nr.full) == 0 {
			// Nothing offered: those found full may have room again.
			full = nil
		}
		for _, n := range nr.full {
			if !slices.Contains(full, n) {
				full = append(full, n)
			}
		}
		d := min(backoff.Next(), r.JoinWait-elapsed)
		r.Log.Debug("no parent with room: asking again", "stream", stream, "attempt", attempt, "retry_in", d, "full", full)
		if !retry.Sleep(ctx, d) {
			return control.Upstream{}, fmt.Errorf("%w for %s: gave up waiting: %w (last round: %w)", ErrNoRoom, stream, ctx.Err(), err)
		}
	}
}

// noRoomError is a candidate round in which no parent took the relay
// and at least one refused only for want of room, or none was offered.
// full lists the parents found full.
type noRoomError struct {
	full []string
	msg  string
}

func (e *noRoomError) Error() string { return e.msg }

// joinRound asks the server for candidates once, probes them, and joins
// the best one that accepts.
func (r *Relay) joinRound(ctx context.Context, sess *session, o streamurl.Origin, excludeNodes []string, redirect bool, prefer string) (control.Upstream, error) {
	stream := o.URL()
	cands, err := sess.cl.Candidates(ctx, stream, excludeNodes)
	if err != nil {
		var we *wire.Error
		if errors.As(err, &we) {
			return control.Upstream{}, fmt.Errorf("ocm-server: %w", err)
		}
		r.Log.Warn("ocm-server did not answer: pulling from the origin directly", "stream", stream, "err", err)
		r.m.fellBack()
		return originUpstream(o), nil
	}
	if len(cands) == 0 {
		return control.Upstream{}, &noRoomError{msg: "ocm-server offers no parent with free capacity for " + stream}
	}
	if !redirect {
		_ = r.call(ctx, func(st *state) {
			if ss := st.streams[stream]; ss != nil {
				ss.knowNodes(cands)
			}
		})
	}

	// The candidate list carries the server's level and load of each
	// candidate; Select scores with them, not with what a candidate's
	// probe answer says about itself (see probe.Evaluate). It is the
	// ranking ocm-probe --explain prints.
	w := r.Weights
	if redirect {
		w.Displace = false // nothing joins: no slot to take
	}
	sel := probe.Select(ctx, cands, stream, w, prefer)
	choices := sel.Choices
	r.m.probed(choices)
	for _, ch := range choices {
		if ch.Overridden != "" {
			r.Log.Info("candidate's probe answer contradicts ocm-server: scored with the server's view",
				"stream", stream, "candidate", ch.Candidate.Node, "overridden", ch.Overridden)
		}
	}
	if sel.LastResort {
		r.Log.Warn("every candidate is over the CPU ceiling: taking the best of them", "stream", stream,
			"max_cpu", r.Weights.MaxCPU, "best", choices[0].Candidate.Node)
	}
	var reasons, full []string
	for _, ch := range choices {
		if ch.Rejected != "" {
			reasons = append(reasons, ch.Candidate.Node+": "+ch.Rejected)
			if ch.Full() {
				full = append(full, ch.Candidate.Node)
			}
			continue
		}
		up := upstreamFor(o, ch.Candidate)
		if redirect {
			return up, nil
		}
		level, err := joinChoice(ctx, sess, stream, ch)
		if err != nil {
			reasons = append(reasons, ch.Candidate.Node+": "+err.Error())
			var we *wire.Error
			if errors.As(err, &we) && we.Code == wire.CodeFull {
				full = append(full, ch.Candidate.Node)
			}
			r.Log.Info("parent refused", "stream", stream, "parent", ch.Candidate.Node, "err", err)
			continue
		}
		if !r.setParent(stream, ch.Candidate, up, level, sess, rttMs(ch.Result)) {
			return control.Upstream{}, errLeftMeanwhile(stream)
		}
		r.Log.Info("joined", "stream", stream, "parent", ch.Candidate.Node, "level", level,
			"score", fmt.Sprintf("%.1f", ch.Score), "rtt_ms", fmt.Sprintf("%.2f", rttMs(ch.Result)),
			"path_ms", fmt.Sprintf("%.2f", ch.Candidate.PathMs), "displace", ch.Displace)
		r.Events.Emit(event.Joined{Stream: stream, Parent: ch.Candidate.Node, Upstream: up.URL,
			Level: level, Score: ch.Score, Candidates: len(choices)})
		return up, nil
	}
	msg := fmt.Sprintf("no usable parent for %s: %s", stream, strings.Join(reasons, "; "))
	if len(full) > 0 {
		return control.Upstream{}, &noRoomError{full: full, msg: msg}
	}
	return control.Upstream{}, errors.New(msg)
}

// joinChoice tells the server the relay takes ch as its parent for
// stream, with the RTT its probe measured and, for a full candidate the
// relay may take a slot of (Choice.Displace), the ask to displace; it
// returns the relay's level.
func joinChoice(ctx context.Context, sess *session, stream string, ch probe.Choice) (int, error) {
	level, err := sess.cl.JoinWith(ctx, &wire.Joined{Stream: stream, Parent: ch.Candidate.Node,
		RTTMs: rttMs(ch.Result), Displace: ch.Displace})
	if err == nil && level <= 0 {
		level = ch.Candidate.Level + 1
	}
	return level, err
}

// rttMs is a probe's RTT in ms as the wire carries it (0: no answer).
func rttMs(res probe.Result) float64 {
	if res.Err != nil || res.RTT <= 0 {
		return 0
	}
	return min(float64(res.RTT)/float64(time.Millisecond), wire.MaxMs)
}

// setParent records the parent the server accepted in sess, and the RTT
// to it the relay measured (ms, 0: unknown). Call it in the stream's
// turn. It reports false, having told the server we leave, when the
// relay no longer receives the stream.
func (r *Relay) setParent(stream string, c wire.Candidate, up control.Upstream, level int, sess *session, rtt float64) bool {
	found := false
	_ = r.call(context.Background(), func(st *state) {
		if ss := st.streams[stream]; ss != nil {
			found = true
			ss.parent, ss.parentRTSP, ss.level, ss.upstream, ss.joinedIn = c.Node, c.RTSP, level, up, sess
			ss.rttMs = rtt
			ss.reconnectedFrom = ""
		}
	})
	if !found {
		ctx, cancel := context.WithTimeout(r.ctx, DefaultCallTimeout)
		defer cancel()
		_ = sess.cl.Leave(ctx, stream)
	}
	return found
}

// errLeftMeanwhile: the stream was left while its new parent was chosen.
func errLeftMeanwhile(stream string) error {
	return fmt.Errorf("%s was left meanwhile: not joining it", stream)
}

// serverFor makes sure a server is known, taking the origin's host when
// none was given and the origin is in AllowOrigin; it reports whether the
// relay has a server to ask. The server is the address the allow list
// checked, so a name that resolves elsewhere later gains nothing.
func (r *Relay) serverFor(ctx context.Context, o streamurl.Origin) bool {
	known := false
	if err := r.call(ctx, func(st *state) { known = st.server != "" }); err != nil {
		return false
	}
	if known {
		return true
	}
	addrs, err := r.AllowOrigin.Check(ctx, o.Host)
	if err != nil {
		r.Log.Warn("no --server, and the origin's host may not serve as one: pulling from the origin directly "+
			"(give --server, or name the origin in --allow-origin)", "stream", o.URL(), "err", err)
		r.Events.Emit(event.Fallback{Stream: o.URL(), Reason: "no --server, and the origin is not in --allow-origin"})
		return false
	}
	_ = r.call(ctx, func(st *state) {
		if st.server == "" {
			st.server = net.JoinHostPort(addrs[0].String(), r.ServerPort)
			r.Log.Info("no --server given: using the origin host", "server", st.server, "origin", o.Addr())
		}
	})
	return true
}

func originUpstream(o streamurl.Origin) control.Upstream {
	return control.Upstream{URL: o.URL(), Addr: o.Addr(), Node: wire.OriginID}
}

// upstreamFor is the URL to pull stream from candidate c: the origin's own
// URL, or the enhanced URL on a relay.
func upstreamFor(o streamurl.Origin, c wire.Candidate) control.Upstream {
	if c.Node == wire.OriginID {
		return control.Upstream{URL: o.URL(), Addr: c.RTSP, Node: c.Node}
	}
	return control.Upstream{URL: o.EnhancedURL(c.RTSP), Addr: c.RTSP, Node: c.Node}
}

// onReconnect obeys the server. A resolve from the mediator that is waiting
// for this RECONNECT (under the reconnect and gradual policies) takes it
// over; otherwise the relay finds the new upstream, in the stream's turn,
// and pushes the switch to the mediator (make-before-break there).
func (r *Relay) onReconnect(b *wire.Reconnect) {
	r.Log.Info("reconnect", "stream", b.Stream, "reason", b.Reason, "target", b.Target, "parent", b.Parent)
	r.Events.Emit(event.Reconnect{Stream: b.Stream, Reason: b.Reason, Target: b.Target, Parent: b.Parent})
	o, err := streamurl.Parse(b.Stream)
	if err != nil {
		r.Log.Warn("reconnect for a bad stream", "stream", b.Stream, "err", err)
		return
	}
	stream := o.URL()
	delivered := false
	if r.call(r.ctx, func(st *state) {
		if ss := st.streams[stream]; ss != nil {
			// The server has answered the loss of this upstream: a
			// mediator that lost it waits for nothing more.
			ss.reconnectedFrom = ss.upstream.Addr
		}
		delivered = st.deliverReconnect(stream, b)
	}) != nil || delivered {
		return
	}
	release, err := r.acquire(r.ctx, stream)
	if err != nil {
		return
	}
	stale := true
	_ = r.call(r.ctx, func(st *state) {
		if ss := st.streams[stream]; ss != nil && !movedOn(ss, b) {
			stale, ss.phase = false, phaseSwitching
		}
	})
	if stale {
		release()
		r.Log.Info("reconnect is stale: already moved to another parent", "stream", b.Stream, "parent", b.Parent)
		return
	}
	ctx, cancel := context.WithTimeout(r.ctx, 2*DefaultCallTimeout)
	defer cancel()
	start := time.Now()
	up, err := r.reconnectUpstream(ctx, b)
	r.m.resolved(modeReconnect, start, err)
	_ = r.call(context.Background(), func(st *state) {
		if ss := st.streams[stream]; ss != nil {
			ss.settle()
		}
	})
	release()
	if err != nil {
		r.Log.Warn("reconnect: no new parent", "stream", b.Stream, "err", err)
		return
	}
	r.pushSwitch(up.stream, up.Upstream)
}

// movedOn reports whether a reconnect is about the parent b.Parent when the
// relay already moved to another one (its own recovery was faster than
// the server's message).
func movedOn(ss *streamState, b *wire.Reconnect) bool {
	if b.Parent == "" || b.Target != "" {
		return false
	}
	return ss.parent != "" && ss.parent != b.Parent
}

type streamUpstream struct {
	stream string
	control.Upstream
}

// reconnectUpstream is where a RECONNECT sends the stream: the target it
// names (joined there), or a fresh resolve that excludes the parent the
// reason says is gone.
func (r *Relay) reconnectUpstream(ctx context.Context, b *wire.Reconnect) (streamUpstream, error) {
	o, err := streamurl.Parse(b.Stream)
	if err != nil {
		return streamUpstream{}, fmt.Errorf("reconnect for a bad stream %q: %w", b.Stream, err)
	}
	stream := o.URL()
	if b.Target != "" && b.TargetRTSP != "" {
		c := wire.Candidate{Node: b.Target, RTSP: b.TargetRTSP}
		up := upstreamFor(o, c)
		var sess *session
		_ = r.call(ctx, func(st *state) { sess = st.sess })
		if sess != nil {
			// The joined carries the RTT to the target: probed once here
			// (its path below the origin counts it); a target that does
			// not answer is joined anyway, its RTT unknown.
			ch := probe.Choice{Candidate: c, Result: probe.ProbeCandidate(ctx, c, stream, r.Weights.Timeout)}
			if ch.Result.Err != nil {
				r.Log.Info("handover target did not answer its probe: joining it anyway", "stream", stream,
					"target", b.Target, "err", ch.Result.Err)
			}
			level, err := joinChoice(ctx, sess, stream, ch)
			if err == nil {
				if !r.setParent(stream, c, up, level, sess, rttMs(ch.Result)) {
					return streamUpstream{}, errLeftMeanwhile(stream)
				}
				r.Events.Emit(event.Joined{Stream: stream, Parent: b.Target, Upstream: up.URL, Level: level, Handover: true})
				return streamUpstream{stream, up}, nil
			}
			r.Log.Warn("handover target refused, resolving instead", "target", b.Target, "err", err)
		}
	}
	var exclude []string
	var prefer string
	if err := r.call(ctx, func(st *state) {
		if ss := st.streams[stream]; ss != nil && ss.upstream.Addr != "" {
			switch b.Reason {
			case wire.ReasonAncestorFailed:
				// Our parent lives; an ancestor died. Going back under the
				// same parent once it has rejoined keeps the tree's shape.
				prefer = ss.parent
			case wire.ReasonOperator:
			default:
				exclude = append(exclude, ss.upstream.Addr)
			}
		}
	}); err != nil {
		return streamUpstream{}, err
	}
	up, err := r.resolveChoosing(ctx, stream, exclude, false, prefer)
	return streamUpstream{stream, up}, err
}

// waitForReconnect is how a relay rejoins under the reconnect and gradual
// policies: after losing its upstream to a node failure (the server no
// longer has its parent) it waits for the server's RECONNECT (which orders
// the rebuild level by level) instead of racing its siblings, up to a
// fallback timeout. It returns the RECONNECT, or nil when the relay should
// resolve on its own: also when a RECONNECT already answered the loss of
// what the mediator lost (exclude), or the stream has moved off it.
func (r *Relay) waitForReconnect(ctx context.Context, stream string, exclude []string) *wire.Reconnect {
	var sess *session
	var ch chan *wire.Reconnect
	var parent string
	var fallback time.Duration
	if err := r.call(ctx, func(st *state) {
		if sess = st.sess; sess == nil {
			return
		}
		level := 0
		if ss := st.streams[stream]; ss != nil {
			if slices.Contains(exclude, ss.reconnectedFrom) ||
				(ss.upstream.Addr != "" && !slices.Contains(exclude, ss.upstream.Addr)) {
				return
			}
			level, parent = ss.level, ss.parent
		}
		fallback = sess.welcome.StallWait(level)
		if !sess.welcome.WaitsForReconnect() || fallback <= 0 {
			return
		}
		ch = make(chan *wire.Reconnect, 1)
		st.waiting[stream] = append(st.waiting[stream], ch)
	}); err != nil || ch == nil {
		return nil
	}
	defer r.forgetWaiter(stream, ch)
	if !r.parentGone(ctx, sess, stream, parent) {
		select {
		case b := <-ch: // it came while we asked
			return b
		default:
		}
		r.Log.Info("upstream lost but the server has seen no failure above us: resolving at once", "stream", stream, "parent", parent)
		return nil
	}
	t := time.NewTimer(fallback)
	defer t.Stop()
	r.Log.Info("upstream lost: waiting for the server's reconnect", "stream", stream, "policy", sess.welcome.Recovery, "fallback", fallback)
	select {
	case b := <-ch:
		return b
	case <-t.C:
		r.Log.Warn("no reconnect from the server in time: resolving alone", "stream", stream, "fallback", fallback)
		return nil
	case <-ctx.Done():
		return nil
	}
}

// parentGone reports whether the server says parent is no longer in
// stream's tree: only then is a RECONNECT coming, since the server tells a
// relay to reconnect when a node above it failed or left. Otherwise the
// upstream went silent for another reason (the origin restarting: the
// origin is no node, and no server ever reports it failed), or the server
// cannot be asked right now and has nothing to send; waiting would only
// keep the readers waiting. The server offers a relay its own parent as a
// candidate for as long as that parent is attached. Without a known
// parent the relay waits, as it always did.
func (r *Relay) parentGone(ctx context.Context, sess *session, stream, parent string) bool {
	switch parent {
	case "":
		return true
	case wire.OriginID:
		return false
	}
	cands, err := sess.cl.Candidates(ctx, stream, nil)
	if err != nil {
		return false
	}
	return !slices.ContainsFunc(cands, func(c wire.Candidate) bool { return c.Node == parent })
}

func (r *Relay) forgetWaiter(stream string, ch chan *wire.Reconnect) {
	_ = r.call(context.Background(), func(st *state) {
		ws := st.waiting[stream]
		for i, w := range ws {
			if w == ch {
				st.waiting[stream] = append(ws[:i], ws[i+1:]...)
				break
			}
		}
		if len(st.waiting[stream]) == 0 {
			delete(st.waiting, stream)
		}
	})
}

// deliverReconnect hands b to the resolves of stream waiting for it, if
// any.
func (st *state) deliverReconnect(stream string, b *wire.Reconnect) bool {
	ws := st.waiting[stream]
	if len(ws) == 0 {
		return false
	}
	for _, ch := range ws {
		select {
		case ch <- b:
		default:
		}
	}
	delete(st.waiting, stream)
	return true
}

// pushSwitch tells the mediator that plays stream (every connected one if
// it is gone) to move it to up.
func (r *Relay) pushSwitch(stream string, up control.Upstream) {
	var meds []*control.Conn
	_ = r.call(r.ctx, func(st *state) {
		if ss := st.streams[stream]; ss != nil && st.mediators[ss.owner] {
			meds = append(meds, ss.owner)
			return
		}
		for c := range st.mediators {
			meds = append(meds, c)
		}
	})
	for _, c := range meds {
		if _, err := c.Send(&control.Switch{Stream: stream, Upstream: up}); err != nil {
			r.Log.Warn("cannot push switch to mediator", "err", err)
		}
	}
}

// onDrain hands the children over and leaves.
func (r *Relay) onDrain(b *wire.Drain) {
	r.Log.Info("drain requested by ocm-server", "reason", b.Reason)
	r.Events.Emit(event.Drain{Reason: b.Reason})
	r.Leave(r.ctx)
}
