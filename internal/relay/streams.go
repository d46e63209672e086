package relay

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/ocm-overlay/ocm/internal/control"
	"github.com/ocm-overlay/ocm/internal/event"
	"github.com/ocm-overlay/ocm/internal/wire"
)

// streamPhase is where a stream the relay receives stands.
type streamPhase int

const (
	// stateResolving: the mediator asked for an upstream and the relay
	// is choosing one; nothing is promised yet.
	stateResolving streamPhase = iota
	// statePending: the relay answered an upstream and reserved the slot
	// under it at the server, but the mediator has not said it plays:
	// not in the hello nor in reports, and left if no active comes
	// within ActiveTimeout.
	statePending
	// stateActive: the mediator plays it; listed in the hello and
	// reported, until the mediator says inactive or disconnects.
	stateActive
)

// streamState is what the relay knows of one stream it receives.
type streamState struct {
	phase      streamPhase
	since      time.Time     // when it became pending
	owner      *control.Conn // the mediator that resolved or plays it
	parent     string        // node id, or wire.OriginID
	parentRTSP string
	level      int
	upstream   control.Upstream
	// joinedIn is the server session that accepted parent; in another
	// session (the server restarted or we reconnected) the server may not
	// know it.
	joinedIn *session
	// nodes maps the RTSP addresses of the last candidates offered for
	// this stream to their node ids: the mediator names upstreams by
	// address.
	nodes         map[string]string
	lastReconnect time.Time // when the server last said reconnect
	stats         control.StreamStats
	reported      control.StreamStats // at the last report, for rates
}

// errTooManyStreams answers a mediator asking for one stream more than
// MaxStreams.
var errTooManyStreams = errors.New("stream limit reached")

// streamLock is a per-stream mutex that lives only while someone holds or
// waits for it.
type streamLock struct {
	mu   sync.Mutex
	refs int // holders and waiters, under Relay.mu
}

// lockStream serialises the relay's decisions about one stream: its own
// recovery, the server's reconnects and the mediator's active and
// inactive must not act on it at once. Streams enter and leave
// r.streams only under their lock.
func (r *Relay) lockStream(stream string) (unlock func()) {
	r.mu.Lock()
	l := r.resolving[stream]
	if l == nil {
		l = &streamLock{}
		r.resolving[stream] = l
	}
	l.refs++
	r.mu.Unlock()
	l.mu.Lock()
	return func() {
		l.mu.Unlock()
		r.mu.Lock()
		if l.refs--; l.refs == 0 {
			delete(r.resolving, stream)
		}
		r.mu.Unlock()
	}
}

// claim returns the state of stream for a mediator about to resolve or
// play it, making one (in phase resolving) if the relay has none and is
// under MaxStreams. Hold the stream's lock.
func (r *Relay) claim(stream string, owner *control.Conn) (*streamState, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if st := r.streams[stream]; st != nil {
		if owner != nil {
			st.owner = owner
		}
		return st, nil
	}
	if len(r.streams) >= r.MaxStreams {
		return nil, fmt.Errorf("%w: this relay already receives %d streams (--max-streams); not taking %s",
			errTooManyStreams, r.MaxStreams, stream)
	}
	st := &streamState{phase: stateResolving, owner: owner}
	r.streams[stream] = st
	return st, nil
}

// settle ends a mediator's resolve of st: a stream that got an upstream
// waits for the mediator's active; one the relay was only resolving for
// this request is forgotten if the resolve failed. Hold the stream's lock.
func (r *Relay) settle(stream string, st *streamState, ok bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if st.phase != stateResolving || r.streams[stream] != st {
		return
	}
	if !ok {
		delete(r.streams, stream)
		return
	}
	st.phase, st.since = statePending, time.Now()
}

// drop forgets stream and tells the server, which hands any children
// over. Hold the stream's lock.
func (r *Relay) drop(stream, why string) {
	r.mu.Lock()
	_, ok := r.streams[stream]
	delete(r.streams, stream)
	sess := r.sess
	r.mu.Unlock()
	if !ok {
		return
	}
	if sess != nil {
		// The handover of children may hold the ack a while.
		ctx, cancel := context.WithTimeout(r.ctx, max(sess.welcome.Handover()+time.Second, DefaultCallTimeout))
		defer cancel()
		if _, err := sess.call(ctx, &wire.Left{Stream: stream}); err != nil {
			r.Log.Info("left", "stream", stream, "why", why, "err", err)
		}
	}
	r.Log.Debug("stream left", "stream", stream, "why", why)
	r.Events.Emit(event.Left{Stream: stream, Reason: why})
}

// dropIf drops the streams for which cond holds (checked again under each
// stream's lock), all at once: a handover each may take a while.
func (r *Relay) dropIf(why string, cond func(*streamState) bool) {
	r.mu.Lock()
	var streams []string
	for s, st := range r.streams {
		if cond(st) {
			streams = append(streams, s)
		}
	}
	r.mu.Unlock()
	var wg sync.WaitGroup
	for _, s := range streams {
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer r.lockStream(s)()
			r.mu.Lock()
			st := r.streams[s]
			still := st != nil && cond(st)
			r.mu.Unlock()
			if still && r.ctx.Err() == nil {
				r.drop(s, why)
			}
		}()
	}
	wg.Wait()
}

// expirePending leaves the streams the mediator was given an upstream for
// and never said it plays: a resolve that does not lead to media leaves
// nothing behind, in the relay or at the server.
func (r *Relay) expirePending() {
	defer r.wg.Done()
	t := time.NewTicker(min(max(r.ActiveTimeout/4, 10*time.Millisecond), time.Second))
	defer t.Stop()
	for {
		select {
		case <-r.ctx.Done():
			return
		case now := <-t.C:
			r.dropIf("no active from the mediator within "+r.ActiveTimeout.String(), func(st *streamState) bool {
				return st.phase == statePending && now.Sub(st.since) >= r.ActiveTimeout
			})
		}
	}
}

// dropOwned leaves the streams of a mediator whose control connection
// closed: nobody plays them here any more.
func (r *Relay) dropOwned(c *control.Conn) {
	if r.ctx.Err() != nil {
		return // closing: the server drops us whole
	}
	r.dropIf("the mediator's control connection closed", func(st *streamState) bool { return st.owner == c })
}

// lineBudget is what a message to the server may take of its line, with
// room for the envelope's id.
const lineBudget = wire.MaxLineLen - 64

// fitLine returns the largest k <= n for which the message encoded with
// its first k list entries fits in a line (size returns its length, or
// -1 if it does not encode).
func fitLine(n int, size func(k int) int) int {
	fits := func(k int) bool { l := size(k); return l >= 0 && l <= lineBudget }
	if fits(n) {
		return n
	}
	lo, hi := 0, n // lo fits (the message without the list), hi does not
	for hi-lo > 1 {
		if mid := (lo + hi) / 2; fits(mid) {
			lo = mid
		} else {
			hi = mid
		}
	}
	return lo
}

// encodedLen is the length of b encoded as a message, or -1.
func encodedLen(b wire.Body) int {
	line, err := wire.Encode(wire.Msg{Body: b})
	if err != nil {
		return -1
	}
	return len(line)
}
