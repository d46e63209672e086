package systest

import (
	"context"
	"testing"
	"time"

	"github.com/ocm-overlay/ocm/internal/event"
	"github.com/ocm-overlay/ocm/internal/lab"
	"github.com/ocm-overlay/ocm/internal/metrics"
)

// metricsHost is a viewer host whose relay and mediator serve /metrics.
type metricsHost struct {
	*host
	medURL, relayURL string
}

// scrapeOK scrapes url with Prometheus' text parser, failing the test on
// any error.
func scrapeOK(t *testing.T, url string) metrics.Families {
	t.Helper()
	f, err := metrics.Scrape(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// awaitMetric scrapes url until name{labels} reaches want: a liveness
// bound (patience), not a timing assertion. It returns the last value.
func awaitMetric(t *testing.T, url, name string, want float64, labels ...string) float64 {
	t.Helper()
	deadline := time.Now().Add(patience)
	for {
		v, _ := scrapeOK(t, url).Value(name, labels...)
		if v >= want {
			return v
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s%v at %s is %v after %s, want %v", name, labels, url, v, patience, want)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestMetricsRecovery is issue 8's metrics proof with real processes: an
// ocm-server and three viewer hosts whose relays and mediators serve
// --metrics on 127.0.0.1:0 (the address from their ready lines). The
// host under the origin, with children, is SIGKILLed: the server counts one failure,
// one recovery under repair and exactly one ocm_recovery_seconds
// observation; each orphan's mediator counts an upstream switch and an
// upstream gap; every endpoint parses with Prometheus' text parser.
func TestMetricsRecovery(t *testing.T) {
	systemTest(t)
	o := newOverlay(t, "--origin-capacity", "1", "--recovery", "repair")
	serverURL := "http://" + o.srv.HTTP + "/metrics"
	var hosts []*metricsHost
	// m1 takes the origin's one slot, so m2 joins under it; m3, passive,
	// joins under m1 or m2; m2 can take the origin's slot and m3 after m1
	// dies.
	for i, name := range []string{"m1", "m2", "m3"} {
		role := "--capacity=2"
		if name == "m3" {
			role = "--willing=false"
		}
		h := &metricsHost{host: startHostWith(t, name, o.srv.OCM, []string{"--metrics", "127.0.0.1:0"},
			"--metrics", "127.0.0.1:0", role)}
		mr, err := lab.Ready[event.MediatorReady](context.Background(), h.Med, patience)
		if err != nil {
			t.Fatal(err)
		}
		rr, err := lab.Ready[event.RelayReady](context.Background(), h.Relay, patience)
		if err != nil {
			t.Fatal(err)
		}
		if mr.Metrics == "" || rr.Metrics == "" {
			t.Fatalf("%s: ready lines without a metrics address: mediator %+v, relay %+v", name, mr, rr)
		}
		h.medURL, h.relayURL = "http://"+mr.Metrics+"/metrics", "http://"+rr.Metrics+"/metrics"
		h.player = startPlayer(t, name+"/player", enhanced(h.Med.Addr, "test", o.origin.Addr))
		waitEvent(t, h.player, "its first packets", 0, progressAtLeast(10))
		o.hosts, o.byName[name] = append(o.hosts, h.host), h.host
		hosts = append(hosts, h)
		// Every join is counted as it happens.
		awaitMetric(t, serverURL, "ocm_joins_total", float64(i+1))
	}
	tv := o.srv.waitTree(t, o.stream, o.names())
	var orphans []*metricsHost // m1's children: m2, and m3 if it joined there
	for _, h := range hosts[1:] {
		if tv.Parents()[h.Name] == "m1" {
			orphans = append(orphans, h)
		}
	}
	if len(orphans) == 0 {
		t.Fatalf("m1 has no children:\n%s", tv)
	}
	t.Logf("tree before the kill:\n%s", tv)

	before := scrapeOK(t, serverURL)
	recoveries, _ := before.Value("ocm_recovery_seconds", "policy", "repair")
	failures, _ := before.Value("ocm_node_failures_total")
	switches := map[string]float64{}
	for _, h := range orphans {
		f := scrapeOK(t, h.medURL)
		switches[h.Name], _ = f.Value("ocm_mediator_upstream_switches_total", "stream", o.stream)
		if r, _ := f.Value("ocm_mediator_readers", "stream", o.stream); r < 1 {
			t.Errorf("%s's mediator counts %v readers of %s", h.Name, r, o.stream)
		}
	}

	// The relay first: a relay that outlives its mediator for a moment
	// sees it go and leaves gracefully, which is no failure.
	hosts[0].Relay.Kill()
	hosts[0].Med.Kill()
	if _, err := o.srv.awaitTree(t, o.stream, o.names("m1"), patience); err != nil {
		t.Fatalf("tree not repaired: %v", err)
	}
	got := awaitMetric(t, serverURL, "ocm_recovery_seconds", recoveries+1, "policy", "repair")
	after := scrapeOK(t, serverURL)
	if got != recoveries+1 {
		t.Errorf("ocm_recovery_seconds_count{policy=repair} went from %v to %v, want one more", recoveries, got)
	}
	if v, _ := after.Value("ocm_node_failures_total"); v != failures+1 {
		t.Errorf("ocm_node_failures_total went from %v to %v, want one more", failures, v)
	}
	if v, _ := after.Value("ocm_recoveries_total", "policy", "repair"); v != 1 {
		t.Errorf("ocm_recoveries_total{policy=repair} = %v, want 1", v)
	}
	for _, m := range after["ocm_recovery_seconds"].GetMetric() {
		if h := m.GetHistogram(); h.GetSampleCount() > 0 {
			t.Logf("server: recovery after the SIGKILL observed at %.3f s (sum over %d)", h.GetSampleSum(), h.GetSampleCount())
		}
	}
	for _, h := range orphans {
		awaitMetric(t, h.medURL, "ocm_mediator_upstream_switches_total", switches[h.Name]+1, "stream", o.stream)
		// The gap ends with the new upstream's first packet, just after
		// the switch.
		awaitMetric(t, h.medURL, "ocm_mediator_upstream_gap_seconds", 1, "stream", o.stream)
		f := scrapeOK(t, h.medURL)
		for _, m := range f["ocm_mediator_upstream_gap_seconds"].GetMetric() {
			t.Logf("%s: upstream gaps %d, %.3f s in all", h.Name, m.GetHistogram().GetSampleCount(), m.GetHistogram().GetSampleSum())
		}
		rf := scrapeOK(t, h.relayURL)
		if v, _ := rf.Value("ocm_relay_resolves_total", "result", "ok"); v < 1 {
			t.Errorf("%s's relay counts %v resolves", h.Name, v)
		}
		if v, _ := rf.Value("ocm_relay_server_connected"); v != 1 {
			t.Errorf("%s's relay: ocm_relay_server_connected = %v", h.Name, v)
		}
		if v, _ := rf.Value("ocm_build_info"); v != 1 {
			t.Errorf("%s's relay: ocm_build_info = %v", h.Name, v)
		}
	}
}
