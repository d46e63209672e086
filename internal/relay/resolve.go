package relay

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"

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
	o, err := mediator.ParseOriginURL(stream)
	if err != nil {
		return control.Upstream{}, fmt.Errorf("stream %q: %w", stream, err)
	}
	stream = o.URL()
	r.mu.Lock()
	if r.server == "" {
		r.server = net.JoinHostPort(o.Host, DefaultServerPort)
		r.Log.Info("no --server given: using the origin host", "server", r.server)
	}
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

// onReconnect obeys the server: switch to the target it names, or resolve
// again excluding the parent that failed, and push the switch to the
// mediator (make-before-break there).
func (r *Relay) onReconnect(b *wire.Reconnect) {
	o, err := mediator.ParseOriginURL(b.Stream)
	if err != nil {
		r.Log.Warn("reconnect for a bad stream", "stream", b.Stream, "err", err)
		return
	}
	r.Log.Info("reconnect", "stream", b.Stream, "reason", b.Reason, "target", b.Target)
	r.Events.Emit("reconnect", map[string]any{"stream": b.Stream, "reason": b.Reason, "target": b.Target})
	ctx, cancel := context.WithTimeout(r.ctx, 2*DefaultCallTimeout)
	defer cancel()

	var up control.Upstream
	if b.Target != "" && b.TargetRTSP != "" {
		c := wire.Candidate{Node: b.Target, RTSP: b.TargetRTSP}
		up = upstreamFor(o, c)
		r.mu.Lock()
		sess := r.sess
		r.mu.Unlock()
		level := 0
		if sess != nil {
			if am, err := sess.call(ctx, &wire.Joined{Stream: o.URL(), Parent: b.Target}); err != nil {
				r.Log.Warn("handover target refused, resolving instead", "target", b.Target, "err", err)
				b.Target = ""
			} else if ack, ok := am.Body.(*wire.Ack); ok {
				level = ack.Level
			}
		}
		if b.Target != "" {
			r.setParent(o.URL(), c, up, level)
		}
	}
	if b.Target == "" {
		r.mu.Lock()
		var exclude []string
		if st := r.streams[o.URL()]; st != nil && st.upstream.Addr != "" &&
			b.Reason != wire.ReasonOperator && b.Reason != wire.ReasonAncestorFailed {
			exclude = append(exclude, st.upstream.Addr)
		}
		r.mu.Unlock()
		up, err = r.resolve(ctx, o.URL(), exclude, false)
		if err != nil {
			r.Log.Warn("reconnect: no new parent", "stream", b.Stream, "err", err)
			return
		}
	}
	r.pushSwitch(o.URL(), up)
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
