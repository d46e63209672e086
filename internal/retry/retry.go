// Package retry is the wait between a tool's attempts to reach something
// that went away (an upstream, the ocm-server, an RTSP input): doubling,
// bounded, and cut short when the tool stops.
package retry

import (
	"context"
	"math/rand/v2"
	"time"
)

// Backoff doubles a delay from Min to Max. Immediate makes the first retry
// go at once (another upstream may be there already); Jitter spreads each
// wait over [d/2, d], so relays that lost the same parent do not retry in
// lockstep. The zero value of the unexported state starts afresh.
type Backoff struct {
	Min, Max  time.Duration
	Immediate bool
	Jitter    bool

	cur   time.Duration
	tried bool
}

// Next returns how long to wait before the next attempt.
func (b *Backoff) Next() time.Duration {
	if b.Immediate && !b.tried {
		b.tried = true
		return 0
	}
	if b.cur == 0 {
		b.cur = b.Min
	} else {
		b.cur = min(b.cur*2, b.Max)
	}
	if b.Jitter {
		return b.cur/2 + rand.N(b.cur/2+1)
	}
	return b.cur
}

// Reset starts again from the first wait, after a success.
func (b *Backoff) Reset() { b.cur, b.tried = 0, false }

// Sleep waits d, or less if ctx ends first; it reports whether the whole
// wait passed.
func Sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
