package mediator

import (
	"context"
	"errors"
	"slices"
	"sync/atomic"
	"testing"
	"time"
)

// resolverFunc is a Resolver made of a function.
type resolverFunc func(ctx context.Context, req ResolveRequest) (Upstream, error)

func (f resolverFunc) Resolve(ctx context.Context, req ResolveRequest) (Upstream, error) {
	return f(ctx, req)
}

// TestOriginRestartOnlyRoute: the origin is the only way to the stream, as
// in an overlay whose origin takes one relay (the server offers nothing
// else while the origin is excluded), and it restarts on the same address.
// The relay must try the origin again, and its reader, whose session
// stayed open, receive again: an upstream that failed is never excluded
// for good.
func TestOriginRestartOnlyRoute(t *testing.T) {
	origin := startMediator(t, func(m *Mediator) { m.TestSource = "test" })
	addr := origin.Addr()
	o := testSourceAt(addr)
	var refused atomic.Int32 // resolves asked with the origin excluded
	onlyOrigin := resolverFunc(func(ctx context.Context, req ResolveRequest) (Upstream, error) {
		if slices.Contains(req.Exclude, o.Addr()) {
			refused.Add(1)
			return Upstream{}, errors.New("no parent with free capacity")
		}
		return Direct{}.Resolve(ctx, req)
	})
	relay := startMediator(t, func(m *Mediator) { m.Resolver = onlyOrigin })
	r := startReader(t, o.EnhancedURL(relay.Addr()))
	r.waitPackets(t, 50)

	origin.Close()
	deadline := time.Now().Add(20 * time.Second)
	for refused.Load() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the relay never resolved with the lost origin excluded")
		}
		time.Sleep(10 * time.Millisecond)
	}
	startMediator(t, func(m *Mediator) { m.Listen = addr; m.TestSource = "test" })
	r.waitPackets(t, 50)
	if got := relay.Streams()[o.URL()]; got != o.URL() {
		t.Fatalf("relay upstream = %q, want the origin %s", got, o.URL())
	}
}
