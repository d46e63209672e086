package relay

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/ocm-overlay/ocm/internal/control"
	"github.com/ocm-overlay/ocm/internal/wire"
)

// state is everything the state goroutine (Relay.run) owns: the streams
// the relay receives and what acts on each, the mediators connected to
// the control socket, the server session and the RECONNECTs waited for.
// Nothing else touches it; other goroutines send it requests with
// Relay.call, as ocm-server's state does. Requests are short: network
// calls (the server, probes, the mediators) run outside, between
// requests, and the phase of a stream says which one is under way.
type state struct {
	streams map[string]*streamState // at most MaxStreams
	// turns holds the streams an operation acts on (a resolve, an
	// active, an inactive, a RECONNECT, a leave), with the operations on
	// hold until it ends: one at a time per stream, in arrival order.
	turns     map[string]*turn
	mediators map[*control.Conn]bool // at most MaxControlClients
	// medRTSP is the RTSP address the first mediator said it listens on:
	// without --rtsp, the address the relay advertises, for good.
	medRTSP string
	server  string // the server's address in use; "" until known
	// servers is the list server comes from, in order (one entry with a
	// single --server, or the origin's host): a lost session moves
	// server on to the next, wrapping around (see failover).
	servers []string
	sess    *session // the current session, nil while there is none
	// dialing is closed when the connection to the server under way is
	// made or failed; nil when none is.
	dialing chan struct{}
	// waiting holds the resolves waiting for a RECONNECT, by stream.
	waiting    map[string][]chan *wire.Reconnect
	reportFrom int // where the next report starts when not every stream fits
	closed     bool
}

// streamPhase is what is under way on a stream the relay receives.
type streamPhase int

const (
	// phaseIdle: nothing under way, and no parent the server accepted
	// (the upstream came from elsewhere: the origin pulled directly while
	// the server was away, or one the server refused).
	phaseIdle streamPhase = iota
	// phaseResolving: choosing a parent for the mediator's first
	// resolve; nothing is promised yet (not in the hello, not left).
	phaseResolving
	// phaseJoined: nothing under way; the server accepted parent (in
	// joinedIn, or is told in the next hello).
	phaseJoined
	// phaseSwitching: moving to another parent, after a RECONNECT or a
	// resolve of the mediator that lost its upstream.
	phaseSwitching
	// phaseLeaving: telling the server the relay leaves the stream; it is
	// forgotten when the server answers.
	phaseLeaving
)

// streamState is what the relay knows of one stream it receives.
type streamState struct {
	phase streamPhase
	// playing: the mediator said active; the stream is in the hello and
	// the reports until the mediator says inactive or disconnects.
	playing bool
	// answered is when a resolve answered the mediator an upstream it has
	// not said it plays yet (zero otherwise): the slot reserved under the
	// parent is left if no active comes within ActiveTimeout.
	answered   time.Time
	owner      *control.Conn // the mediator that resolved or plays it
	parent     string        // node id, or wire.OriginID
	parentRTSP string
	level      int
	// rttMs is the last RTT to parent the relay measured, in ms (0:
	// unknown): at the join, then at every improvement round (improve.go).
	// Every report carries it: the server's paths are sums of these.
	rttMs    float64
	upstream control.Upstream
	// joinedIn is the server session that accepted parent; in another
	// session (the server restarted or we reconnected) the server may not
	// know it.
	joinedIn *session
	// nodes maps the RTSP addresses of the last candidates offered for
	// this stream to their node ids: the mediator names upstreams by
	// address.
	nodes map[string]string
	// reconnectedFrom is the upstream address a RECONNECT moved (or tried
	// to move) the stream away from: a mediator that lost that upstream
	// has its answer already and waits for no other RECONNECT.
	reconnectedFrom string
	stats           control.StreamStats
	reported        control.StreamStats // at the last report, for rates
	// improveWait is the wait between two improvement rounds, improveAt
	// when the next is due (zero: not scheduled yet); see improve.go.
	improveWait time.Duration
	improveAt   time.Time
}

// turn is an operation acting on a stream and the ones on hold behind it.
type turn struct {
	next []chan struct{} // closed when it is their turn
}

// errTooManyStreams answers a mediator asking for one stream more than
// MaxStreams.
var errTooManyStreams = errors.New("stream limit reached")

func newState(servers []string) *state {
	st := &state{
		streams:   map[string]*streamState{},
		turns:     map[string]*turn{},
		mediators: map[*control.Conn]bool{},
		waiting:   map[string][]chan *wire.Reconnect{},
		servers:   servers,
	}
	if len(servers) > 0 {
		st.server = servers[0]
	}
	return st
}

// run is the state goroutine: it applies requests in order until the
// relay closes.
func (r *Relay) run(st *state) {
	defer r.wg.Done()
	defer close(r.loopEnd)
	for {
		select {
		case fn := <-r.reqs:
			fn(st)
		case <-r.ctx.Done():
			return
		}
	}
}

// call runs fn in the state goroutine and waits for it. It fails when ctx
// ends first or the relay has closed.
func (r *Relay) call(ctx context.Context, fn func(*state)) error {
	done := make(chan struct{})
	select {
	case r.reqs <- func(st *state) { fn(st); close(done) }:
	case <-ctx.Done():
		return ctx.Err()
	case <-r.loopEnd:
		return errClosed
	}
	<-done
	return nil
}

// acquire waits for stream's turn: the relay's own recovery, the
// server's RECONNECTs, the mediator's resolves, actives and inactives
// and the leaves act on a stream one at a time, in arrival order. Call
// release when done.
func (r *Relay) acquire(ctx context.Context, stream string) (release func(), err error) {
	var wait chan struct{}
	if err := r.call(ctx, func(st *state) {
		t := st.turns[stream]
		if t == nil {
			st.turns[stream] = &turn{}
			return
		}
		wait = make(chan struct{})
		t.next = append(t.next, wait)
	}); err != nil {
		return nil, err
	}
	release = func() { _ = r.call(context.Background(), func(st *state) { st.pass(stream) }) }
	if wait == nil {
		return release, nil
	}
	select {
	case <-wait:
		return release, nil
	case <-r.loopEnd:
		return nil, errClosed
	case <-ctx.Done():
	}
	_ = r.call(context.Background(), func(st *state) {
		t := st.turns[stream]
		if t == nil {
			return
		}
		for i, w := range t.next {
			if w == wait { // still on hold: stop waiting
				t.next = append(t.next[:i], t.next[i+1:]...)
				return
			}
		}
		st.pass(stream) // it was our turn already: hand it on
	})
	return nil, ctx.Err()
}

// pass ends the current operation on stream and starts the next on hold.
func (st *state) pass(stream string) {
	t := st.turns[stream]
	if t == nil {
		return
	}
	if len(t.next) == 0 {
		delete(st.turns, stream)
		return
	}
	close(t.next[0])
	t.next = t.next[1:]
}

// claim returns the state of stream for a mediator about to resolve or
// play it, making one (fresh) if the relay has none and is under
// MaxStreams. Call it in the stream's turn.
func (st *state) claim(stream string, owner *control.Conn, maxStreams int) (s *streamState, fresh bool, err error) {
	if s := st.streams[stream]; s != nil {
		if owner != nil {
			s.owner = owner
		}
		return s, false, nil
	}
	if len(st.streams) >= maxStreams {
		return nil, false, fmt.Errorf("%w: this relay already receives %d streams (--max-streams); not taking %s",
			errTooManyStreams, maxStreams, stream)
	}
	s = &streamState{owner: owner}
	st.streams[stream] = s
	return s, true, nil
}

// settle ends an operation that may have changed stream's parent: the
// phase says again whether the server has one for it.
func (s *streamState) settle() {
	s.phase = phaseIdle
	if s.parent != "" {
		s.phase = phaseJoined
	}
}

// session returns the current session if it is still up.
func (st *state) session() *session {
	if st.sess == nil {
		return nil
	}
	select {
	case <-st.sess.done:
		return nil
	default:
		return st.sess
	}
}

// knowNodes records the node ids of cands by RTSP address, so an active
// from the mediator naming one of these upstreams says which node it is.
func (ss *streamState) knowNodes(cands []wire.Candidate) {
	ss.nodes = make(map[string]string, len(cands))
	for _, c := range cands {
		ss.nodes[c.RTSP] = c.Node
	}
}
