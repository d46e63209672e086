package server

import (
	"context"
	"fmt"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/ocm-overlay/ocm/internal/event"
)

// TestHeartbeatAnsweredWhileStateBusy: a relay's heartbeat is answered by
// its connection's goroutine, not queued behind the state goroutine's work
// (a flash crowd's joins), and it still keeps the relay alive in the sweep.
func TestHeartbeatAnsweredWhileStateBusy(t *testing.T) {
	ts := startServer(t, nil)
	r := newRelay(t, "a", 4).dial(ts.Addr(), "")

	held, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	free := func() { once.Do(func() { close(release) }) }
	t.Cleanup(free)
	go func() { _ = ts.call(context.Background(), func(*state) { close(held); <-release }) }()
	<-held
	ts.clock.Advance((MissedHeartbeats - 1) * ts.Heartbeat)
	r.c.SetReadTimeout(5 * time.Second) // the state goroutine stays held longer than that
	r.sync()
	free()

	// Silent since that heartbeat for less than the limit, but since its
	// hello for more: the heartbeat counted.
	ts.clock.Advance(2 * ts.Heartbeat)
	ts.sweep(t)
	ts.check(t, func(st *state) {
		if st.sessions["a"] == nil {
			t.Fatal("the sweep failed a relay whose heartbeat was answered within the limit")
		}
	})
}

// TestIdleRelaysHoldNoGoroutine: a relay connection with nothing to read
// is parked, no goroutine waiting in its read (their stacks were most of
// a loaded server's memory). A parked relay is still answered, joins, is
// seen leaving when it closes, and is failed and disconnected by the sweep
// when silent.
func TestIdleRelaysHoldNoGoroutine(t *testing.T) {
	ts := startServer(t, nil)
	base := runtime.NumGoroutine()
	const n = 40
	rs := make([]*relay, n)
	for i := range rs {
		rs[i] = newRelay(t, fmt.Sprintf("r%02d", i), 4).dial(ts.Addr(), "")
		rs[i].sync()
	}
	deadline := time.Now().Add(10 * time.Second)
	for runtime.NumGoroutine() >= base+n/2 {
		if time.Now().After(deadline) {
			t.Fatalf("%d goroutines with %d idle relays connected, %d before", runtime.NumGoroutine(), n, base)
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Logf("%d goroutines with %d idle relays connected, %d before", runtime.NumGoroutine(), n, base)

	for _, r := range rs {
		r.sync()
	}
	rs[0].mustJoin(stream, "origin")
	rs[1].mustJoin(stream, rs[0].id)

	rs[2].c.Close()
	waitEvent[event.NodeLeft](t, ts, rs[2].id)

	// Everyone but r03 speaks after the clock moved past the limit.
	ts.clock.Advance((MissedHeartbeats + 1) * ts.Heartbeat)
	for _, r := range rs[4:] {
		r.sync()
	}
	rs[0].sync()
	rs[1].sync()
	ts.sweep(t)
	waitEvent[event.NodeFailed](t, ts, rs[3].id)
	rs[3].waitClosed()
	ts.validate(t)
}
