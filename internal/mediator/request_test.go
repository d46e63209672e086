package mediator

import (
	"context"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/pion/rtp"

	"github.com/ocm-overlay/ocm/internal/allow"
	"github.com/ocm-overlay/ocm/internal/testutil"
)

// A player's DESCRIBE, its SETUPs (one per track) and PLAY are one request
// for one stream: the origin named by name is looked up once to admit it
// (and once more by the dial to the origin, which connects only to what it
// checked), not again at every SETUP.
func TestSetupReusesDescribeAdmission(t *testing.T) {
	origin := startMediator(t, func(m *Mediator) { m.Publish = true })
	testutil.PublishAV(t, "rtsp://"+origin.Addr()+"/av", nil)

	var mu sync.Mutex
	var lookups []string
	allow, err := allow.Parse("origin.test")
	if err != nil {
		t.Fatal(err)
	}
	allow.Lookup = func(_ context.Context, host string) ([]netip.Addr, error) {
		mu.Lock()
		lookups = append(lookups, host)
		mu.Unlock()
		return []netip.Addr{netip.MustParseAddr("127.0.0.1")}, nil
	}
	leaf := startMediator(t, func(m *Mediator) { m.Allow = allow })

	got := make(chan struct{}, 1)
	testutil.Play(t, "rtsp://"+leaf.Addr()+"/av?origin.test:"+portOf(origin.Addr()), func(*rtp.Packet) {
		select {
		case got <- struct{}{}:
		default:
		}
	})
	select { // the two tracks were set up and play
	case <-got:
	case <-time.After(20 * time.Second):
		t.Fatal("no packet through the leaf in 20 s")
	}
	mu.Lock()
	defer mu.Unlock()
	t.Logf("lookups: %v", lookups)
	// One to admit the DESCRIBE, one for the dial to the origin.
	if len(lookups) != 2 {
		t.Fatalf("origin.test looked up %d times for one player of a two-track stream, want 2 (DESCRIBE's admission and the dial): the SETUPs repeated the allow-list lookup", len(lookups))
	}
}

// With a linger shorter than a player's round trips, the relay closes
// between a reader's DESCRIBE and its SETUP, and between readers: each
// reader still plays, from the relay it finds or a new one. The linger
// counts only once the relay serves: a relay still opening its first
// upstream is what the DESCRIBE waits for (it used to close under it, and
// the DESCRIBE got a 502).
func TestReadersAcrossLingerExpiry(t *testing.T) {
	_, o := startOrigin(t)
	leaf := startMediator(t, func(m *Mediator) { m.Linger = time.Millisecond })
	for i := range 10 {
		r := startReader(t, o.EnhancedURL(leaf.Addr()))
		r.waitPackets(t, 5)
		r.c.Close()
		t.Logf("reader %d played", i)
	}
}
