package main

import (
	"context"
	"sync"
	"time"
)

// A line is one direction of the delay: a FIFO of packets stamped on
// arrival, each handed to write once it is delay old. Every packet gets the
// same delay, so the head is always the next one due: one timer for the
// head, not a sleep per packet. At most max packets wait; more are dropped
// and counted, so a sender faster than the link cannot make us hold more.
type line struct {
	delay time.Duration
	max   int
	now   func() time.Time

	mu      sync.Mutex
	q       []stamped
	drops   uint64
	written uint64
	wake    chan struct{}
}

type stamped struct {
	due time.Time
	pkt []byte
}

func newLine(delay time.Duration, max int) *line {
	return &line{delay: delay, max: max, now: time.Now, wake: make(chan struct{}, 1)}
}

// push queues a copy of pkt; false when the queue is full (counted as a drop).
func (l *line) push(pkt []byte) bool {
	l.mu.Lock()
	if len(l.q) >= l.max {
		l.drops++
		l.mu.Unlock()
		return false
	}
	l.q = append(l.q, stamped{due: l.now().Add(l.delay), pkt: append([]byte(nil), pkt...)})
	l.mu.Unlock()
	select {
	case l.wake <- struct{}{}:
	default:
	}
	return true
}

// run hands each packet to write when it is due, until ctx ends. A write
// error drops that packet (counted) and the line goes on.
func (l *line) run(ctx context.Context, write func([]byte) error) {
	t := time.NewTimer(time.Hour)
	defer t.Stop()
	for {
		l.mu.Lock()
		if len(l.q) == 0 {
			l.mu.Unlock()
			select {
			case <-ctx.Done():
				return
			case <-l.wake:
			}
			continue
		}
		head := l.q[0]
		if wait := head.due.Sub(l.now()); wait > 0 {
			l.mu.Unlock()
			t.Reset(wait)
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			continue
		}
		l.q[0] = stamped{}
		l.q = l.q[1:]
		l.mu.Unlock()
		err := write(head.pkt)
		l.mu.Lock()
		if err != nil {
			l.drops++
		} else {
			l.written++
		}
		l.mu.Unlock()
	}
}

// counts returns the packets written and dropped so far.
func (l *line) counts() (written, drops uint64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.written, l.drops
}
