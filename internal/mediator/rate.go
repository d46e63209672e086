package mediator

import (
	"sync"
	"time"
)

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
