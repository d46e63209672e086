package server

import (
	"context"
	"sync"
	"testing"
	"time"
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
