package mediator

import (
	"bufio"
	"fmt"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/bluenviron/gortsplib/v4"
	"github.com/bluenviron/gortsplib/v4/pkg/base"
	"github.com/pion/rtp"

	"github.com/ocm-overlay/ocm/internal/allow"
	"github.com/ocm-overlay/ocm/internal/lab"
	"github.com/ocm-overlay/ocm/internal/streamurl"
	"github.com/ocm-overlay/ocm/internal/testutil"
)

// startMediator starts a mediator on 127.0.0.1:0 with TCP only.
func startMediator(t *testing.T, configure func(m *Mediator)) *Mediator {
	t.Helper()
	m := &Mediator{Listen: "127.0.0.1:0", StallTimeout: 500 * time.Millisecond}
	if configure != nil {
		configure(m)
	}
	if err := m.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.Close)
	return m
}

// reader is an RTSP client that records the sequence numbers it receives.
type reader struct {
	c    *lab.Reader
	mu   sync.Mutex
	seqs []uint16
	done chan error
}

func startReader(t *testing.T, url string) *reader {
	t.Helper()
	r := &reader{done: make(chan error, 1)}
	r.c = testutil.Play(t, url, func(pkt *rtp.Packet) {
		r.mu.Lock()
		r.seqs = append(r.seqs, pkt.SequenceNumber)
		r.mu.Unlock()
	})
	go func() { r.done <- r.c.Wait() }()
	return r
}

func (r *reader) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.seqs)
}

// waitPackets waits until the reader has n more packets than it had, or
// fails after a generous bound (a liveness check, not a timing assertion).
func (r *reader) waitPackets(t *testing.T, n int) {
	t.Helper()
	want := r.count() + n
	deadline := time.Now().Add(20 * time.Second)
	for r.count() < want {
		select {
		case err := <-r.done:
			t.Fatalf("reader session ended: %v", err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("reader got %d packets, want %d", r.count(), want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (r *reader) gaps() (gaps, dups int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for i := 1; i < len(r.seqs); i++ {
		d := int16(r.seqs[i] - r.seqs[i-1])
		switch {
		case d <= 0:
			dups++
		case d > 1:
			gaps += int(d - 1)
		}
	}
	return gaps, dups
}

func TestRelayChainAndMakeBeforeBreakSwitch(t *testing.T) {
	_, o := startOrigin(t)
	relayA := startMediator(t, nil)
	relayB := startMediator(t, nil)
	leaf := startMediator(t, func(m *Mediator) { m.Resolver = Parents{Addrs: []string{relayA.Addr()}} })

	r := startReader(t, o.EnhancedURL(leaf.Addr()))
	r.waitPackets(t, 50)

	for i, next := range []*Mediator{relayB, relayA, relayB} {
		if err := leaf.Switch(o.URL(), Upstream{URL: o.EnhancedURL(next.Addr()), Addr: next.Addr()}); err != nil {
			t.Fatal(err)
		}
		// Wait until the switch has happened, then for packets through the new path.
		deadline := time.Now().Add(20 * time.Second)
		for leaf.Streams()[o.URL()] != o.EnhancedURL(next.Addr()) {
			if time.Now().After(deadline) {
				t.Fatalf("switch %d to %s did not happen: %v", i, next.Addr(), leaf.Streams())
			}
			time.Sleep(10 * time.Millisecond)
		}
		r.waitPackets(t, 50)
	}
	if gaps, dups := r.gaps(); gaps != 0 || dups != 0 {
		t.Fatalf("reader saw %d missing and %d duplicate packets across make-before-break switches", gaps, dups)
	}
}

// failoverLeaf starts an origin with the test source, two relays A and B,
// and a leaf whose parents are A, then B.
func failoverLeaf(t *testing.T) (o streamurl.Origin, origin, relayA, relayB, leaf *Mediator) {
	t.Helper()
	origin, o = startOrigin(t)
	relayA = startMediator(t, nil)
	relayB = startMediator(t, nil)
	leaf = startMediator(t, func(m *Mediator) {
		m.Resolver = Parents{Addrs: []string{relayA.Addr(), relayB.Addr()}}
	})
	return o, origin, relayA, relayB, leaf
}

func TestUpstreamLossKeepsReaderSession(t *testing.T) {
	o, _, relayA, relayB, leaf := failoverLeaf(t)
	r := startReader(t, o.EnhancedURL(leaf.Addr()))
	r.waitPackets(t, 50)
	relayA.Close() // the upstream goes away: leaf must move to relayB
	r.waitPackets(t, 100)
	if got := leaf.Streams()[o.URL()]; got != o.EnhancedURL(relayB.Addr()) {
		t.Fatalf("leaf upstream = %q, want relay B", got)
	}
	if _, dups := r.gaps(); dups != 0 {
		t.Fatalf("reader saw %d duplicates after failover", dups)
	}
}

func TestBadRequests(t *testing.T) {
	origin := startMediator(t, func(m *Mediator) { m.TestSource = "test" })
	allow, _ := allow.Parse("192.0.2.0/24")
	strict := startMediator(t, func(m *Mediator) { m.Allow = allow })
	m := startMediator(t, nil)
	closed := testutil.ClosedTCP(t)

	// A reader that must not notice any of the bad requests below.
	r := startReader(t, "rtsp://"+origin.Addr()+"/test")
	r.waitPackets(t, 20)

	tests := []struct {
		name string
		url  string
		code base.StatusCode
	}{
		{"malformed query", "rtsp://" + m.Addr() + "/test?host:notaport", base.StatusBadRequest},
		{"unknown plain path", "rtsp://" + m.Addr() + "/nothing", base.StatusNotFound},
		{"origin not allowed", "rtsp://" + strict.Addr() + "/test?" + origin.Addr(), base.StatusForbidden},
		{"unreachable origin", "rtsp://" + m.Addr() + "/test?" + closed, base.StatusBadGateway},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			u, _ := base.ParseURL(tt.url)
			c := gortsplib.Client{Scheme: "rtsp", Host: u.Host}
			if err := c.Start2(); err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			_, res, err := c.Describe(u)
			if err == nil || res == nil || res.StatusCode != tt.code {
				t.Fatalf("DESCRIBE %s: res %v, err %v; want %d", tt.url, res, err, tt.code)
			}
			if res.StatusMessage == base.StatusMessages[tt.code] {
				t.Fatalf("status line %q gives no reason", res.StatusMessage)
			}
		})
	}

	// Junk bytes and a half-open connection on the RTSP port.
	junk, err := net.Dial("tcp", origin.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer junk.Close()
	fmt.Fprintf(junk, "\x00\xff GARBAGE \r\n\r\n$\x00\xff\xffjunk")
	half, err := net.Dial("tcp", origin.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer half.Close()
	fmt.Fprintf(half, "DESCRIBE rtsp://%s/test RTSP/1.0\r\nCSeq: 1\r\n", origin.Addr()) // never finished
	// Whatever the server answers the junk with (if anything), it must not
	// block; the point is what the reader sees.
	_ = junk.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
	_, _ = bufio.NewReader(junk).ReadString('\n')

	r.waitPackets(t, 50)
	if gaps, dups := r.gaps(); gaps != 0 || dups != 0 {
		t.Fatalf("reader disturbed: %d gaps, %d dups", gaps, dups)
	}
}

// startOrigin starts a mediator serving its built-in test stream and
// returns it with the stream's origin.
func startOrigin(t *testing.T) (*Mediator, streamurl.Origin) {
	t.Helper()
	m := startMediator(t, func(m *Mediator) { m.TestSource = "test" })
	return m, testSourceAt(m.Addr())
}

// testSourceAt is the origin of the built-in test stream of the mediator
// at addr.
func testSourceAt(addr string) streamurl.Origin {
	o := streamurl.Origin{Host: "127.0.0.1", Media: "test"}
	fmt.Sscan(portOf(addr), &o.Port)
	return o
}

func portOf(addr string) string {
	_, p, _ := net.SplitHostPort(addr)
	return p
}

// The upstream is shared by all readers and closes a linger after the
// last one leaves; a reader coming back opens it again.
func TestSharedUpstreamAndLinger(t *testing.T) {
	_, o := startOrigin(t)
	relay := startMediator(t, func(m *Mediator) { m.Linger = 200 * time.Millisecond })

	r1 := startReader(t, o.EnhancedURL(relay.Addr()))
	r2 := startReader(t, o.EnhancedURL(relay.Addr()))
	r1.waitPackets(t, 20)
	r2.waitPackets(t, 20)
	if n := len(relay.Streams()); n != 1 {
		t.Fatalf("%d upstreams for two readers of one stream, want 1", n)
	}
	r1.c.Close()
	r2.c.Close()
	deadline := time.Now().Add(20 * time.Second)
	for len(relay.Streams()) != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("upstream still open after the last reader left: %v", relay.Streams())
		}
		time.Sleep(20 * time.Millisecond)
	}
	r3 := startReader(t, o.EnhancedURL(relay.Addr()))
	r3.waitPackets(t, 20)
}
