package mediator

import (
	"math/rand/v2"
	"sync"
	"time"
)

// backoff doubles a delay from min to max, with jitter so relays that lost
// the same parent do not retry in lockstep. The first retry is immediate.
type backoff struct {
	min, max time.Duration
	cur      time.Duration
	tried    bool
}

func newBackoff(min, max time.Duration) *backoff { return &backoff{min: min, max: max} }

func (b *backoff) next() time.Duration {
	if !b.tried {
		b.tried = true
		return 0
	}
	if b.cur == 0 {
		b.cur = b.min
	} else {
		b.cur = min(b.cur*2, b.max)
	}
	return b.cur/2 + rand.N(b.cur/2+1)
}

func (b *backoff) reset() { b.cur, b.tried = 0, false }

// rateMeter turns a byte counter into bits per second between two calls.
type rateMeter struct {
	mu    sync.Mutex
	when  time.Time
	bytes uint64
}

// start sets the time the first rate is measured from.
func (m *rateMeter) start(now time.Time) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.when = now
}

func (m *rateMeter) rate(now time.Time, bytes uint64) uint64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	var bps uint64
	if !m.when.IsZero() && now.After(m.when) && bytes >= m.bytes {
		bps = uint64(float64(bytes-m.bytes) * 8 / now.Sub(m.when).Seconds())
	}
	m.when, m.bytes = now, bytes
	return bps
}
