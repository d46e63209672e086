package relay

import (
	"context"
	"testing"

	"github.com/ocm-overlay/ocm/internal/control"
	"github.com/ocm-overlay/ocm/internal/metrics"
	"github.com/ocm-overlay/ocm/internal/server"
	"github.com/ocm-overlay/ocm/internal/tree"
)

// serveMetrics serves r's metrics on 127.0.0.1:0 and returns a scraper
// that parses them with Prometheus' text parser.
func serveMetrics(t *testing.T, r *Relay) func() metrics.Families {
	t.Helper()
	ms, err := metrics.Serve("127.0.0.1:0", r.Collector())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ms.Close() })
	return func() metrics.Families {
		t.Helper()
		f, err := metrics.Scrape(context.Background(), "http://"+ms.Addr+"/metrics")
		if err != nil {
			t.Fatal(err)
		}
		return f
	}
}

// TestRelayMetrics: a relay's probes, resolves (by mode and result) and
// their latency, its streams by phase and its server session, scraped
// over HTTP.
func TestRelayMetrics(t *testing.T) {
	origin := startRTSP(t)
	stream := streamOn(origin.Addr())
	srv := startServer(t, tree.Repair, func(s *server.Server) { s.OriginCapacity = 1 })
	a, _ := join(t, "a", srv.Addr(), stream, nil)
	scrapeA := serveMetrics(t, a.Relay)
	answeredBefore, _ := scrapeA().Value("ocm_relay_probes_answered_total")

	b := startRelay(t, "b", srv.Addr(), nil)
	scrapeB := serveMetrics(t, b.Relay)
	f := scrapeB()
	for name, typ := range map[string]string{"ocm_relay_probes_total": "counter", "ocm_relay_resolve_seconds": "histogram",
		"ocm_relay_streams": "gauge", "ocm_relay_server_connected": "gauge", "ocm_relay_probes_answered_total": "counter",
		"ocm_build_info": "gauge", "go_goroutines": "gauge", "process_cpu_seconds_total": "counter"} {
		if got := f.Type(name); got != typ {
			t.Errorf("%s: type %q, want %q", name, got, typ)
		}
	}
	if v, _ := f.Value("ocm_relay_resolve_seconds"); v != 0 {
		t.Errorf("resolves observed before any: %v", v)
	}

	med := dialMediator(t, b.ControlAddr())
	med.hello(startRTSP(t).Addr())
	up := med.resolve(stream)
	med.send(&control.Active{Stream: stream, Upstream: up})
	med.sync()
	if bad := med.call(&control.Resolve{Stream: "rtsp://", Mode: control.ModeJoin}); bad.Error == "" {
		t.Fatalf("a resolve of a bad stream answered %+v", bad)
	}

	f = scrapeB()
	check := func(name string, want float64, labels ...string) {
		t.Helper()
		if v, _ := f.Value(name, labels...); v != want {
			t.Errorf("%s%v = %v, want %v", name, labels, v, want)
		}
	}
	check("ocm_relay_resolves_total", 1, "mode", "join", "result", "ok")
	check("ocm_relay_resolves_total", 1, "mode", "join", "result", "error")
	check("ocm_relay_resolve_seconds", 2, "mode", "join")
	check("ocm_relay_streams", 1, "phase", "joined")
	check("ocm_relay_streams_playing", 1)
	check("ocm_relay_server_connected", 1)
	// The origin is full (one child): b was offered a alone, and probed it.
	check("ocm_relay_probes_total", 1, "result", "answered")
	if v, _ := scrapeA().Value("ocm_relay_probes_answered_total"); v-answeredBefore < 1 {
		t.Errorf("a answered %v probes while b resolved, want 1 or more", v-answeredBefore)
	}
}
