package relay

import (
	"context"
	"sync"
	"time"

	"github.com/ocm-overlay/ocm/internal/control"
	"github.com/ocm-overlay/ocm/internal/event"
	"github.com/ocm-overlay/ocm/internal/wire"
)

// drop forgets stream and tells the server, which hands any children
// over. Call it in the stream's turn.
func (r *Relay) drop(stream, why string) {
	var sess *session
	found := false
	if r.call(r.ctx, func(st *state) {
		if s := st.streams[stream]; s != nil {
			found, sess = true, st.sess
			s.phase = phaseLeaving
		}
	}) != nil || !found {
		return
	}
	if sess != nil {
		// The handover of children may hold the ack a while.
		ctx, cancel := context.WithTimeout(r.ctx, max(sess.welcome.Handover()+time.Second, DefaultCallTimeout))
		defer cancel()
		if err := sess.cl.Leave(ctx, stream); err != nil {
			r.Log.Info("left", "stream", stream, "why", why, "err", err)
		}
	}
	_ = r.call(context.Background(), func(st *state) { delete(st.streams, stream) })
	r.Log.Debug("stream left", "stream", stream, "why", why)
	r.Events.Emit(event.Left{Stream: stream, Reason: why})
}

// dropIf drops the streams for which cond holds (checked again in each
// stream's turn), all at once: a handover each may take a while.
func (r *Relay) dropIf(why string, cond func(*streamState) bool) {
	var streams []string
	_ = r.call(r.ctx, func(st *state) {
		for s, ss := range st.streams {
			if cond(ss) {
				streams = append(streams, s)
			}
		}
	})
	var wg sync.WaitGroup
	for _, s := range streams {
		wg.Add(1)
		go func() {
			defer wg.Done()
			release, err := r.acquire(r.ctx, s)
			if err != nil {
				return
			}
			defer release()
			still := false
			_ = r.call(r.ctx, func(st *state) {
				ss := st.streams[s]
				still = ss != nil && cond(ss)
			})
			if still {
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
	r.every(r.ActiveTimeout, func(now time.Time) bool {
		r.dropIf("no active from the mediator within "+r.ActiveTimeout.String(), func(ss *streamState) bool {
			return !ss.playing && !ss.answered.IsZero() && now.Sub(ss.answered) >= r.ActiveTimeout
		})
		return true
	})
}

// every calls fn on a ticker of a quarter of d (10 ms to 1 s), until the
// relay closes or fn returns false; it is one of the relay's goroutines
// (r.wg).
func (r *Relay) every(d time.Duration, fn func(now time.Time) bool) {
	defer r.wg.Done()
	t := time.NewTicker(min(max(d/4, 10*time.Millisecond), time.Second))
	defer t.Stop()
	for {
		select {
		case <-r.ctx.Done():
			return
		case now := <-t.C:
			if !fn(now) {
				return
			}
		}
	}
}

// dropOwned leaves the streams of a mediator whose control connection
// closed: nobody plays them here any more.
func (r *Relay) dropOwned(c *control.Conn) {
	if r.ctx.Err() != nil {
		return // closing: the server drops us whole
	}
	r.dropIf("the mediator's control connection closed", func(ss *streamState) bool { return ss.owner == c })
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
