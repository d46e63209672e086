package server

import (
	"sort"
	"time"

	"github.com/ocm-overlay/ocm/internal/api"
	"github.com/ocm-overlay/ocm/internal/event"

	"github.com/ocm-overlay/ocm/internal/tree"
	"github.com/ocm-overlay/ocm/internal/wire"
)

// Graceful handover (see the wire package doc): a relay leaving a stream
// it still serves children on (left, or a drain the operator asked for)
// is marked leaving; each child is sent a reconnect naming the new parent
// tree.Forest.Handover planned and reserved for it; the relay stays their
// parent in the tree until their joined moves them. The handover ends
// when no child is left below it, or at its deadline (then the recovery
// policy deals with the children still below): the relay is taken out of
// the stream and its left requests are acked, which tells it to stop.

// left answers a relay's left: at once when it has no children on the
// stream, else when its handover ends.
func (st *state) left(ss *session, re uint64, stream string) {
	key := tree.Member{Stream: stream, Node: ss.node}
	if h := st.handovers[key]; h != nil { // a drain started it, or a repeated left
		h.waiters = append(h.waiters, waiter{ss, re})
		st.progress()
		return
	}
	if _, member := st.forest.Level(stream, ss.node); !member && ss.drained {
		ss.reply(re, &wire.Ack{}) // the drain took it out already
		return
	}
	if len(st.forest.Children(stream, ss.node)) > 0 {
		st.startHandover(ss, stream, &waiter{ss, re})
		return
	}
	res, err := st.forest.Leave(stream, ss.node, st.policy, st.s.Now())
	if err != nil {
		ss.reply(re, &wire.Error{Code: errorCode(err), Message: err.Error()})
		return
	}
	ss.reply(re, &wire.Ack{})
	st.s.Events.Emit(event.TreeLeft{Stream: stream, Node: ss.node})
	st.apply(res, ss.node+" left")
}

// startHandover plans the new parents of ss's children on stream, tells
// each child, and waits for them; w, if any, is the left to ack at the
// end. It returns the reconnects sent.
func (st *state) startHandover(ss *session, stream string, w *waiter) []api.Target {
	moves, err := st.forest.Handover(stream, ss.node)
	if err != nil {
		if w != nil {
			w.ss.reply(w.re, &wire.Error{Code: errorCode(err), Message: err.Error()})
		}
		return nil
	}
	h := &handover{stream: stream, node: ss.node, deadline: time.Now().Add(st.s.HandoverTimeout)}
	if w != nil {
		h.waiters = append(h.waiters, *w)
	}
	st.handovers[tree.Member{Stream: stream, Node: ss.node}] = h
	planned := make([]event.HandoverMove, 0, len(moves))
	sent := []api.Target{}
	for _, mv := range moves {
		rc := &wire.Reconnect{Stream: stream, Reason: wire.ReasonParentLeft, Parent: ss.node}
		st.setTarget(rc, mv.Target, mv.RTSP)
		planned = append(planned, event.HandoverMove{Node: mv.Node, Target: rc.Target, Level: mv.Level})
		if cs := st.sessions[mv.Node]; cs != nil {
			st.sendReconnect(cs, rc)
			sent = append(sent, api.Target{Node: mv.Node, Stream: stream, Type: wire.TypeReconnect, Target: rc.Target})
		}
	}
	st.m.handovers.inc("started")
	st.s.Events.Emit(event.HandoverStarted{Stream: stream, Node: ss.node, Children: planned,
		TimeoutMs: st.s.HandoverTimeout.Milliseconds()})
	ss.log().Info("handover started", "stream", stream, "children", len(moves))
	st.progress()
	return sent
}

// stepHandover ends h if it is over: every child switched away, or the
// leaving node is out of the stream already (failed, or removed with a
// failed ancestor's subtree). It reports whether h ended.
func (st *state) stepHandover(h *handover) bool {
	if _, member := st.forest.Level(h.stream, h.node); member && len(st.forest.Children(h.stream, h.node)) > 0 {
		return false
	}
	st.endHandover(h, "switched")
	return true
}

// endHandover takes the leaving node out of the stream (the policy deals
// with children still below it) and acks its left requests.
func (st *state) endHandover(h *handover, result string) {
	key := tree.Member{Stream: h.stream, Node: h.node}
	if st.handovers[key] != h {
		return
	}
	delete(st.handovers, key)
	remaining := st.forest.Children(h.stream, h.node)
	var res tree.Result
	_, member := st.forest.Level(h.stream, h.node)
	if member {
		res, _ = st.forest.Leave(h.stream, h.node, st.policy, st.s.Now()) // a registered member: no error
	} else if result == "switched" {
		result = "gone"
	}
	for _, w := range h.waiters {
		if st.sessions[w.ss.node] == w.ss {
			w.ss.reply(w.re, &wire.Ack{})
		}
	}
	st.m.handovers.inc(result)
	st.s.Events.Emit(event.HandoverDone{Stream: h.stream, Node: h.node, Result: result, Remaining: remaining})
	if member {
		st.s.Events.Emit(event.TreeLeft{Stream: h.stream, Node: h.node})
	}
	st.s.Log.Info("handover done", "stream", h.stream, "node", h.node, "result", result, "remaining", len(remaining))
	st.apply(res, h.node+" handover "+result)
}

func (st *state) sortedHandovers() []*handover {
	out := make([]*handover, 0, len(st.handovers))
	for _, h := range st.handovers {
		out = append(out, h)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].stream != out[j].stream {
			return out[i].stream < out[j].stream
		}
		return out[i].node < out[j].node
	})
	return out
}

// drain asks a node to leave the overlay: it starts the handover of every
// stream the node is in and sends it drain. It returns what was sent.
func (st *state) drain(ss *session) api.Sent {
	ss.drained = true
	ss.push(&wire.Drain{Reason: wire.ReasonOperator})
	st.s.Events.Emit(event.DrainSent{Node: ss.node})
	out := api.Sent{Sent: []api.Target{{Node: ss.node, Type: wire.TypeDrain}}}
	for _, s := range st.forest.StreamsOf(ss.node) {
		if st.handovers[tree.Member{Stream: s, Node: ss.node}] == nil {
			out.Sent = append(out.Sent, st.startHandover(ss, s, nil)...)
		}
	}
	return out
}
