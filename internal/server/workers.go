package server

import (
	"context"
	"sync"
	"sync/atomic"
	"time"
)

// workers runs the short tasks of relay connections (a parked
// connection's next messages, a send queue's drain) on goroutines that
// stay a while after their task for the next one. A goroutine started per
// task would begin with a small stack and grow it (copying it, twice) for
// every JSON message it decodes or encodes; at thousands of messages a
// second that copying was a fifth of the server's CPU.
type workers struct {
	ctx     context.Context
	tasks   chan func() // taken only by an idle worker
	idle    time.Duration
	waiting atomic.Int32 // idle workers
	wg      sync.WaitGroup
}

// workerIdle is how long a worker waits for another task before it ends:
// about a heartbeat interval, so that a steady load keeps its workers;
// maxIdleWorkers how many may wait at once (more end at once): after a
// flash crowd's burst of tasks, its workers' stacks are not all kept.
const (
	workerIdle     = 2 * time.Second
	maxIdleWorkers = 16
)

func newWorkers(ctx context.Context) *workers {
	return &workers{ctx: ctx, tasks: make(chan func()), idle: workerIdle}
}

// do runs fn on an idle worker, or a new one. A nil w starts a goroutine.
func (w *workers) do(fn func()) {
	if w == nil {
		go fn()
		return
	}
	select {
	case w.tasks <- fn:
	default:
		w.wg.Add(1)
		go w.work(fn)
	}
}

func (w *workers) work(fn func()) {
	defer w.wg.Done()
	t := time.NewTimer(w.idle)
	defer t.Stop()
	for {
		fn()
		if w.waiting.Add(1) > maxIdleWorkers {
			w.waiting.Add(-1)
			return
		}
		t.Reset(w.idle)
		select {
		case fn = <-w.tasks:
			w.waiting.Add(-1)
		case <-t.C:
			w.waiting.Add(-1)
			return
		case <-w.ctx.Done():
			w.waiting.Add(-1)
			return
		}
	}
}

// wait waits for every worker to end (after the server's context).
func (w *workers) wait() {
	if w != nil {
		w.wg.Wait()
	}
}
