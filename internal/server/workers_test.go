package server

import (
	"context"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestWorkersBurst: a burst of concurrent tasks all run; afterwards at most
// maxIdleWorkers workers wait for more, and none is left once the
// context ends.
func TestWorkersBurst(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	base := runtime.NumGoroutine()
	w := newWorkers(ctx)
	w.idle = time.Hour // only the cap ends the burst's workers
	const n = 100
	var ran atomic.Int32
	var started sync.WaitGroup
	release := make(chan struct{})
	started.Add(n)
	for range n {
		w.do(func() { started.Done(); <-release; ran.Add(1) })
	}
	started.Wait() // n at once: no task waited for another
	close(release)
	deadline := time.Now().Add(10 * time.Second)
	for ran.Load() < n || runtime.NumGoroutine() > base+maxIdleWorkers {
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d tasks ran; %d goroutines, %d before", ran.Load(), n, runtime.NumGoroutine(), base)
		}
		time.Sleep(5 * time.Millisecond)
	}
	w.do(func() { ran.Add(1) }) // an idle worker (or a new one) takes it
	cancel()
	w.wait()
	if got := ran.Load(); got != n+1 {
		t.Errorf("%d tasks ran, want %d", got, n+1)
	}
	for deadline := time.Now().Add(10 * time.Second); runtime.NumGoroutine() > base; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) { // a worker past wg.Done is still counted until it returns
			t.Fatalf("%d goroutines after the workers ended, %d before", runtime.NumGoroutine(), base)
		}
	}
}
