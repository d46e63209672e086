package mediator

import (
	"context"
	"testing"
	"time"

	"github.com/pion/rtp"

	"github.com/ocm-overlay/ocm/internal/metrics"
)

// TestForwarderGaps: each upstream change is observed once, as the
// longest silence of its medias, from the last packet of the old upstream
// to the first of the new; a make-before-break switch shows no silence.
func TestForwarderGaps(t *testing.T) {
	at := time.Unix(1000, 0)
	f := newForwarder(2, func(int, *rtp.Packet) {})
	f.now = func() time.Time { return at }
	step := func(d time.Duration) { at = at.Add(d) }
	both := func(src uint64, seq uint16) {
		f.packet(src, 0, pk(seq))
		f.packet(src, 1, pk(seq))
	}
	f.attach(1)
	both(1, 10)
	step(40 * time.Millisecond)
	both(1, 11)
	if g := f.gapCounts(); g.count != 0 {
		t.Fatalf("first upstream observed as a gap: %+v", g)
	}

	// Break: upstream 1 is lost; 2 starts 300 ms later on media 0 and
	// 500 ms later on media 1: one gap, 0.5 s.
	step(20 * time.Millisecond)
	f.detach(1)
	f.attach(2)
	step(280 * time.Millisecond)
	f.packet(2, 0, pk(12))
	if g := f.gapCounts(); g.count != 0 {
		t.Fatalf("observed before every media resumed: %+v", g)
	}
	step(200 * time.Millisecond)
	f.packet(2, 1, pk(12))
	g := f.gapCounts()
	if g.count != 1 || g.sum != 0.5 {
		t.Fatalf("after a break: %d gaps, %.3f s; want 1, 0.5 s", g.count, g.sum)
	}
	if cum := g.cumulative(); cum[0.25] != 0 || cum[0.5] != 1 {
		t.Errorf("buckets %v", cum)
	}

	// Make before break: 3 overlaps 2, packets 10 ms apart.
	step(10 * time.Millisecond)
	both(2, 13)
	f.attach(3)
	step(5 * time.Millisecond)
	both(3, 13) // held, overlaps: cut over, 13 is a duplicate
	both(3, 14)
	g = f.gapCounts()
	if g.count != 2 || g.sum-0.5 > 0.0051 {
		t.Fatalf("after make-before-break: %d gaps, %.4f s; want 2, the second 5 ms", g.count, g.sum)
	}
}

// TestMediatorMetrics scrapes a relaying mediator over HTTP with
// Prometheus' parser: per-stream readers, packets, bitrate, and a lost
// upstream counted as a loss, a switch and one upstream gap.
func TestMediatorMetrics(t *testing.T) {
	o, origin, relayA, _, leaf := failoverLeaf(t)
	serve := func(m *Mediator) string {
		reg := metrics.NewRegistry()
		reg.MustRegister(m.Collector(0))
		srv := &metrics.Server{Addr: "127.0.0.1:0", Reg: reg}
		if err := srv.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { srv.Close() })
		return "http://" + srv.Addr + "/metrics"
	}
	leafURL, originURL := serve(leaf), serve(origin)
	scrape := func(url string) metrics.Families {
		t.Helper()
		f, err := metrics.Scrape(context.Background(), url)
		if err != nil {
			t.Fatal(err)
		}
		return f
	}
	get := func(f metrics.Families, name string) float64 {
		t.Helper()
		v, ok := f.Value(name, "stream", o.URL())
		if !ok {
			t.Fatalf("no %s{stream=%q}", name, o.URL())
		}
		return v
	}

	r := startReader(t, o.EnhancedURL(leaf.Addr()))
	r.waitPackets(t, 50)
	time.Sleep(1100 * time.Millisecond) // a bitrate is measured over a second or more
	f := scrape(leafURL)
	for name, typ := range map[string]string{"ocm_mediator_readers": "gauge", "ocm_mediator_packets_received_total": "counter",
		"ocm_mediator_packets_sent_total": "counter", "ocm_mediator_packets_lost_total": "counter",
		"ocm_mediator_upstream_switches_total": "counter", "ocm_mediator_upstream_gap_seconds": "histogram",
		"ocm_mediator_bitrate_bits_per_second": "gauge", "ocm_mediator_streams": "gauge", "ocm_build_info": "gauge",
		"go_goroutines": "gauge", "process_cpu_seconds_total": "counter"} {
		if got := f.Type(name); got != typ {
			t.Errorf("%s: type %q, want %q", name, got, typ)
		}
	}
	if got := get(f, "ocm_mediator_readers"); got != 1 {
		t.Errorf("readers = %v, want 1", got)
	}
	if get(f, "ocm_mediator_packets_received_total") < 50 || get(f, "ocm_mediator_packets_sent_total") < 50 {
		t.Errorf("packets in %v, out %v: want 50 or more", get(f, "ocm_mediator_packets_received_total"),
			get(f, "ocm_mediator_packets_sent_total"))
	}
	if got := get(f, "ocm_mediator_bitrate_bits_per_second"); got <= 0 {
		t.Errorf("bitrate = %v", got)
	}
	if got := get(f, "ocm_mediator_upstream_switches_total") + get(f, "ocm_mediator_upstream_gap_seconds"); got != 0 {
		t.Errorf("switches and gaps before any change: %v", got)
	}
	if v, ok := scrape(originURL).Value("ocm_mediator_packets_received_total", "stream", "/test"); !ok || v <= 0 {
		t.Errorf("origin's test stream: packets in %v %v", v, ok)
	}

	relayA.Close() // the upstream goes away: leaf moves to relayB
	r.waitPackets(t, 50)
	f = scrape(leafURL)
	for _, name := range []string{"ocm_mediator_upstream_losses_total", "ocm_mediator_upstream_switches_total",
		"ocm_mediator_upstream_gap_seconds"} {
		if got := get(f, name); got != 1 {
			t.Errorf("%s = %v after one loss, want 1", name, got)
		}
	}
	for _, m := range f["ocm_mediator_upstream_gap_seconds"].GetMetric() {
		t.Logf("upstream gap after losing relay A: %.3f s", m.GetHistogram().GetSampleSum())
	}
}
