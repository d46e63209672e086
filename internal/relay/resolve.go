package relay

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/ocm-overlay/ocm/internal/control"
	"github.com/ocm-overlay/ocm/internal/mediator"
	"github.com/ocm-overlay/ocm/internal/probe"
	"github.com/ocm-overlay/ocm/internal/wire"
)

// resolve picks an upstream for stream: candidates from the server,
// probed in parallel and scored; the first that the server accepts as our
// parent wins. Without a server it falls back to the origin and says so.
// A redirect (light client) only picks: nothing joins.
func (r *Relay) resolve(ctx context.Context, stream string, exclude []string, redirect bool) (control.Upstream, error) {
	if !redirect {
		if o, err := mediator.ParseOriginURL(stream); err == nil {
			defer r.lockStream(o.URL())()
		}
	}
	return r.resolveExcluding(ctx, stream, exclude, redirect)
}

// resolveAfterLoss answers a mediator that lost its upstream: under the
// reconnect and gradual policies it first waits for the server's
// RECONNECT.
func (r *Relay) resolveAfterLoss(ctx context.Context, stream string, exclude []string) (control.Upstream, error) {
	o, err := mediator.ParseOriginURL(stream)
	if err != nil {
		return control.Upstream{}, fmt.Errorf("stream %q: %w", stream, err)
	}
	var b *wire.Reconnect
	r.mu.Lock()
	recent := time.Since(r.lastReconnect[o.URL()]) < 2*time.Second
	r.mu.Unlock()
	if !recent {
		// Not told yet: under reconnect and gradual, wait to be told.
		b = r.waitForReconnect(ctx, o.URL())
	}
	defer r.lockStream(o.URL())()
	if b != nil {
		up, err := r.reconnectUpstream(ctx, b)
		return up.Upstream, err
	}
	// A server reconnect handled while we waited for the lock may have
	// found the new parent already.
	r.mu.Lock()
	st := r.streams[o.URL()]
	var moved control.Upstream
	if st != nil && st.parent != "" && st.upstream.URL != "" && !slices.Contains(exclude, st.upstream.Addr) {
		moved = st.upstream
	}
	r.mu.Unlock()
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
	o, err := mediator.ParseOriginURL(stream)
	if err != nil {
		return control.Upstream{}, fmt.Errorf("stream %q: %w", stream, err)
	}
	stream = o.URL()
	if !r.serverFor(ctx, o) {
		return originUpstream(o), nil
	}
	r.mu.Lock()
	excludeNodes := make([]string, 0, len(exclude))
	for _, a := range exclude {
		if n, ok := r.addrNode[a]; ok {
			excludeNodes = append(excludeNodes, n)
		} else if a == o.Addr() {
			excludeNodes = append(excludeNodes, wire.OriginID)
		}
	}
	r.mu.Unlock()

	sess, err := r.ensureSession(ctx)
	if sess == nil {
		r.Log.Warn("ocm-server unreachable: pulling from the origin directly", "stream", stream, "err", err)
		r.Events.Emit("fallback", map[string]any{"stream": stream, "reason": fmt.Sprint(err)})
		return originUpstream(o), nil
	}
	m, err := sess.call(ctx, &wire.GetCandidates{Stream: stream, Exclude: excludeNodes})
	if err != nil {
		var we *wire.Error
		if errors.As(err, &we) {
			return control.Upstream{}, fmt.Errorf("ocm-server: %w", err)
		}
		r.Log.Warn("ocm-server did not answer: pulling from the origin directly", "stream", stream, "err", err)
		return originUpstream(o), nil
	}
	cands, _ := m.Body.(*wire.Candidates)
	if cands == nil || len(cands.Candidates) == 0 {
		return control.Upstream{}, fmt.Errorf("ocm-server offers no parent with free capacity for %s", stream)
	}
	r.mu.Lock()
	for _, c := range cands.Candidates {
		r.addrNode[c.RTSP] = c.Node
	}
	r.mu.Unlock()

	choices := probe.Select(ctx, cands.Candidates, stream, r.Weights)
	if prefer != "" {
		for i, ch := range choices {
			if ch.Candidate.Node == prefer && ch.Eligible() {
				choices = append([]probe.Choice{ch}, append(choices[:i:i], choices[i+1:]...)...)
				break
			}
		}
	}
	if busy := probe.LastResort(choices); len(busy) > 0 {
		r.Log.Warn("every candidate is over the CPU ceiling: taking the best of them", "stream", stream,
			"max_cpu", r.Weights.MaxCPU, "best", busy[0].Candidate.Node)
		for i := range busy {
			busy[i].Rejected = ""
		}
		choices = append(busy, choices...)
	}
	var reasons []string
	for _, ch := range choices {
		if ch.Rejected != "" {
			reasons = append(reasons, ch.Candidate.Node+": "+ch.Rejected)
			continue
		}
		up := upstreamFor(o, ch.Candidate)
		if redirect {
			return up, nil
		}
		am, err := sess.call(ctx, &wire.Joined{Stream: stream, Parent: ch.Candidate.Node})
		if err != nil {
			reasons = append(reasons, ch.Candidate.Node+": "+err.Error())
			r.Log.Info("parent refused", "stream", stream, "parent", ch.Candidate.Node, "err", err)
			continue
		}
		level := ch.Candidate.Level + 1
		if ack, ok := am.Body.(*wire.Ack); ok && ack.Level > 0 {
			level = ack.Level
		}
		r.setParent(stream, ch.Candidate, up, level)
		r.Log.Info("joined", "stream", stream, "parent", ch.Candidate.Node, "level", level,
			"score", fmt.Sprintf("%.1f", ch.Score), "rtt_ms", fmt.Sprintf("%.2f", float64(ch.Result.RTT.Microseconds())/1000))
		r.Events.Emit("joined", map[string]any{"stream": stream, "parent": ch.Candidate.Node, "upstream": up.URL,
			"level": level, "score": ch.Score, "candidates": len(choices)})
		return up, nil
	}
	return control.Upstream{}, fmt.Errorf("no usable parent for %s: %s", stream, strings.Join(reasons, "; "))
}

func (r *Relay) setParent(stream string, c wire.Candidate, up control.Upstream, level int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	st := r.streams[stream]
	if st == nil {
		st = &streamState{}
		r.streams[stream] = st
	}
	st.parent, st.parentRTSP, st.level, st.upstream = c.Node, c.RTSP, level, up
}

// serverFor makes sure a server is known, taking the origin's host when
// none was given and the origin is in AllowOrigin; it reports whether the
// relay has a server to ask. The server is the address the allow list
// checked, so a name that resolves elsewhere later gains nothing.
func (r *Relay) serverFor(ctx context.Context, o mediator.Origin) bool {
	r.mu.Lock()
	known := r.server != ""
	r.mu.Unlock()
	if known {
		return true
	}
	addrs, err := r.AllowOrigin.Check(ctx, o.Host)
	if err != nil {
		r.Log.Warn("no --server, and the origin's host may not serve as one: pulling from the origin directly "+
			"(give --server, or name the origin in --allow-origin)", "stream", o.URL(), "err", err)
		r.Events.Emit("fallback", map[string]any{"stream": o.URL(), "reason": "no --server, and the origin is not in --allow-origin"})
		return false
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.server == "" {
		r.server = net.JoinHostPort(addrs[0].String(), r.ServerPort)
		r.Log.Info("no --server given: using the origin host", "server", r.server, "origin", o.Addr())
	}
	return true
}

func originUpstream(o mediator.Origin) control.Upstream {
	return control.Upstream{URL: o.URL(), Addr: o.Addr(), Node: wire.OriginID}
}

// upstreamFor is the URL to pull stream from candidate c: the origin's own
// URL, or the enhanced URL on a relay.
func upstreamFor(o mediator.Origin, c wire.Candidate) control.Upstream {
	if c.Node == wire.OriginID {
		return control.Upstream{URL: o.URL(), Addr: c.RTSP, Node: c.Node}
	}
	return control.Upstream{URL: o.EnhancedURL(c.RTSP), Addr: c.RTSP, Node: c.Node}
}

// onReconnect obeys the server. A resolve from the mediator that is waiting
// for this RECONNECT (under the reconnect and gradual policies) takes it
// over; otherwise the relay finds the new upstream and pushes the switch
// to the mediator (make-before-break there).
func (r *Relay) onReconnect(b *wire.Reconnect) {
	r.Log.Info("reconnect", "stream", b.Stream, "reason", b.Reason, "target", b.Target, "parent", b.Parent)
	if o, err := mediator.ParseOriginURL(b.Stream); err == nil {
		r.mu.Lock()
		r.lastReconnect[o.URL()] = time.Now()
		r.mu.Unlock()
	}
	r.Events.Emit("reconnect", map[string]any{"stream": b.Stream, "reason": b.Reason, "target": b.Target, "parent": b.Parent})
	if r.deliverReconnect(b) {
		return
	}
	o, err := mediator.ParseOriginURL(b.Stream)
	if err != nil {
		r.Log.Warn("reconnect for a bad stream", "stream", b.Stream, "err", err)
		return
	}
	unlock := r.lockStream(o.URL())
	if r.stale(o.URL(), b) {
		unlock()
		r.Log.Info("reconnect is stale: already moved to another parent", "stream", b.Stream, "parent", b.Parent)
		return
	}
	ctx, cancel := context.WithTimeout(r.ctx, 2*DefaultCallTimeout)
	defer cancel()
	up, err := r.reconnectUpstream(ctx, b)
	unlock()
	if err != nil {
		r.Log.Warn("reconnect: no new parent", "stream", b.Stream, "err", err)
		return
	}
	r.pushSwitch(up.stream, up.Upstream)
}

// stale reports whether a reconnect is for a stream the relay no longer
// receives, or about the parent b.Parent when the relay already moved to
// another one (its own recovery was faster than the server's message).
func (r *Relay) stale(stream string, b *wire.Reconnect) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	st := r.streams[stream]
	if st == nil {
		return true // not relayed here (any more): nothing to move
	}
	if b.Parent == "" || b.Target != "" {
		return false
	}
	return st.parent != "" && st.parent != b.Parent
}

// lockStream serialises the relay's decisions about one stream: its own
// recovery and the server's reconnects must not join two parents at once.
func (r *Relay) lockStream(stream string) (unlock func()) {
	r.mu.Lock()
	l := r.resolving[stream]
	if l == nil {
		l = &sync.Mutex{}
		r.resolving[stream] = l
	}
	r.mu.Unlock()
	l.Lock()
	return l.Unlock
}

type streamUpstream struct {
	stream string
	control.Upstream
}

// reconnectUpstream is where a RECONNECT sends the stream: the target it
// names (joined there), or a fresh resolve that excludes the parent the
// reason says is gone.
func (r *Relay) reconnectUpstream(ctx context.Context, b *wire.Reconnect) (streamUpstream, error) {
	o, err := mediator.ParseOriginURL(b.Stream)
	if err != nil {
		return streamUpstream{}, fmt.Errorf("reconnect for a bad stream %q: %w", b.Stream, err)
	}
	stream := o.URL()
	if b.Target != "" && b.TargetRTSP != "" {
		c := wire.Candidate{Node: b.Target, RTSP: b.TargetRTSP}
		up := upstreamFor(o, c)
		r.mu.Lock()
		sess := r.sess
		r.mu.Unlock()
		if sess != nil {
			am, err := sess.call(ctx, &wire.Joined{Stream: stream, Parent: b.Target})
			if err == nil {
				level := 0
				if ack, ok := am.Body.(*wire.Ack); ok {
					level = ack.Level
				}
				r.setParent(stream, c, up, level)
				r.Events.Emit("joined", map[string]any{"stream": stream, "parent": b.Target, "upstream": up.URL, "level": level, "handover": true})
				return streamUpstream{stream, up}, nil
			}
			r.Log.Warn("handover target refused, resolving instead", "target", b.Target, "err", err)
		}
	}
	r.mu.Lock()
	var exclude []string
	var prefer string
	if st := r.streams[stream]; st != nil && st.upstream.Addr != "" {
		switch b.Reason {
		case wire.ReasonAncestorFailed:
			// Our parent lives; an ancestor died. Going back under the
			// same parent once it has rejoined keeps the tree's shape.
			prefer = st.parent
		case wire.ReasonOperator:
		default:
			exclude = append(exclude, st.upstream.Addr)
		}
	}
	r.mu.Unlock()
	up, err := r.resolveChoosing(ctx, stream, exclude, false, prefer)
	return streamUpstream{stream, up}, err
}

// waitForReconnect is how a relay rejoins under the reconnect and gradual
// policies: after losing its upstream it waits for the server's RECONNECT
// (which orders the rebuild level by level) instead of racing its
// siblings, up to a fallback timeout. It returns the RECONNECT, or nil
// when the relay should resolve on its own.
func (r *Relay) waitForReconnect(ctx context.Context, stream string) *wire.Reconnect {
	r.mu.Lock()
	sess := r.sess
	if sess == nil {
		r.mu.Unlock()
		return nil
	}
	level := 0
	if st := r.streams[stream]; st != nil {
		level = st.level
	}
	fallback := sess.welcome.StallWait(level)
	if !sess.welcome.WaitsForReconnect() || fallback <= 0 {
		r.mu.Unlock()
		return nil
	}
	ch := make(chan *wire.Reconnect, 1)
	r.waiting[stream] = append(r.waiting[stream], ch)
	r.mu.Unlock()
	defer r.forgetWaiter(stream, ch)
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

func (r *Relay) forgetWaiter(stream string, ch chan *wire.Reconnect) {
	r.mu.Lock()
	defer r.mu.Unlock()
	ws := r.waiting[stream]
	for i, w := range ws {
		if w == ch {
			r.waiting[stream] = append(ws[:i], ws[i+1:]...)
			break
		}
	}
	if len(r.waiting[stream]) == 0 {
		delete(r.waiting, stream)
	}
}

// deliverReconnect hands b to resolves waiting for it, if any.
func (r *Relay) deliverReconnect(b *wire.Reconnect) bool {
	o, err := mediator.ParseOriginURL(b.Stream)
	if err != nil {
		return false
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	ws := r.waiting[o.URL()]
	if len(ws) == 0 {
		return false
	}
	for _, ch := range ws {
		select {
		case ch <- b:
		default:
		}
	}
	delete(r.waiting, o.URL())
	return true
}

// pushSwitch tells every connected mediator to move stream to up.
func (r *Relay) pushSwitch(stream string, up control.Upstream) {
	r.mu.Lock()
	meds := make([]*control.Conn, 0, len(r.mediators))
	for c := range r.mediators {
		meds = append(meds, c)
	}
	r.mu.Unlock()
	for _, c := range meds {
		if err := c.Write(control.Msg{Op: control.OpSwitch, Stream: stream, Upstream: &up}); err != nil {
			r.Log.Warn("cannot push switch to mediator", "err", err)
		}
	}
}

// onDrain hands the children over and leaves.
func (r *Relay) onDrain(b *wire.Drain) {
	r.Log.Info("drain requested by ocm-server", "reason", b.Reason)
	r.Events.Emit("drain", map[string]any{"reason": b.Reason})
	r.Leave(r.ctx)
}
