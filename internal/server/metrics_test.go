package server

import (
	"context"
	"fmt"
	"slices"
	"testing"

	"github.com/ocm-overlay/ocm/internal/api"
	"github.com/ocm-overlay/ocm/internal/event"
	"github.com/ocm-overlay/ocm/internal/metrics"
)

// scrape reads /metrics over HTTP with Prometheus' text parser.
func (ts *testServer) scrape(t *testing.T) metrics.Families {
	t.Helper()
	f, err := metrics.Scrape(context.Background(), ts.url("/metrics"))
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func value(t *testing.T, f metrics.Families, name string, labels ...string) float64 {
	t.Helper()
	v, ok := f.Value(name, labels...)
	if !ok {
		t.Fatalf("no series %s%v", name, labels)
	}
	return v
}

// TestMetricsPrometheus scrapes the server as Prometheus does: every
// series parses, has its type and labels, and the counters move as relays
// join and fail; a failure with children is observed in
// ocm_recovery_seconds once its orphans are all attached again.
func TestMetricsPrometheus(t *testing.T) {
	ts := startServer(t, nil)
	f := ts.scrape(t)
	types := map[string]string{
		"ocm_build_info": "gauge", "ocm_nodes": "gauge", "ocm_connections": "gauge", "ocm_streams": "gauge",
		"ocm_hellos_total": "counter", "ocm_joins_total": "counter", "ocm_reports_total": "counter",
		"ocm_candidate_requests_total": "counter", "ocm_node_failures_total": "counter",
		"ocm_recoveries_total": "counter", "ocm_recoveries_unfinished_total": "counter",
		"ocm_recovery_seconds": "histogram", "ocm_child_stalls_total": "counter", "ocm_quarantines_total": "counter",
		"ocm_handovers_active": "gauge", "ocm_nodes_quarantined": "gauge",
		"go_goroutines": "gauge", "process_cpu_seconds_total": "counter",
	}
	for name, typ := range types {
		if got := f.Type(name); got != typ {
			t.Errorf("%s: type %q, want %q", name, got, typ)
		}
	}
	if got := f.Labels("ocm_build_info"); !slices.Equal(got, []string{"goversion", "revision", "version"}) {
		t.Errorf("ocm_build_info labels %v", got)
	}
	if got := f.Labels("ocm_recovery_seconds"); !slices.Equal(got, []string{"policy"}) {
		t.Errorf("ocm_recovery_seconds labels %v", got)
	}
	if v := value(t, f, "ocm_build_info"); v != 1 {
		t.Errorf("ocm_build_info = %v", v)
	}

	rs := ts.build(t, "a<origin b<a c<a")
	f2 := ts.scrape(t)
	for name, want := range map[string]float64{"ocm_joins_total": 3, "ocm_hellos_total": 3, "ocm_nodes": 3} {
		if got := value(t, f2, name) - value(t, f, name); got != want {
			t.Errorf("%s moved by %v, want %v", name, got, want)
		}
	}
	if got := value(t, f2, "ocm_tree_nodes", "stream", stream); got != 3 {
		t.Errorf("ocm_tree_nodes{stream} = %v, want 3", got)
	}
	if got := value(t, f2, "ocm_tree_depth", "stream", stream); got != 2 {
		t.Errorf("ocm_tree_depth{stream} = %v, want 2", got)
	}

	// a fails with two children: a recovery starts, and ends when both
	// are attached again.
	rs["a"].c.Close()
	waitEvent[event.NodeFailed](t, ts, "a")
	f3 := ts.scrape(t)
	if got := value(t, f3, "ocm_node_failures_total") - value(t, f2, "ocm_node_failures_total"); got != 1 {
		t.Errorf("ocm_node_failures_total moved by %v, want 1", got)
	}
	if got := value(t, f3, "ocm_recoveries_total", "policy", "repair"); got != 1 {
		t.Errorf("ocm_recoveries_total{policy=repair} = %v, want 1", got)
	}
	rs["b"].mustJoin(stream, "origin")
	if got := value(t, ts.scrape(t), "ocm_recovery_seconds", "policy", "repair"); got != 0 {
		t.Errorf("observed with c still orphaned: count %v", got)
	}
	rs["c"].mustJoin(stream, "b")
	f4 := ts.scrape(t)
	if got := value(t, f4, "ocm_recovery_seconds", "policy", "repair"); got != 1 {
		t.Errorf("ocm_recovery_seconds_count{policy=repair} = %v, want 1", got)
	}
	t.Logf("recovery took %.3f s (two fake relays rejoining in turn)",
		f4["ocm_recovery_seconds"].GetMetric()[0].GetHistogram().GetSampleSum())

	// A leaf's failure starts no recovery.
	rs["c"].c.Close()
	waitEvent[event.NodeFailed](t, ts, "c")
	if got := value(t, ts.scrape(t), "ocm_recoveries_total"); got != 1 {
		t.Errorf("ocm_recoveries_total = %v after a leaf failed, want 1", got)
	}
}

// TestRecoveryUnfinished: a failure whose orphan never comes back is
// counted apart once RecoveryBound has passed, not observed.
func TestRecoveryUnfinished(t *testing.T) {
	ts := startServer(t, func(s *Server) { s.Recovery = "reconnect" })
	rs := ts.build(t, "a<origin b<a")
	rs["a"].c.Close()
	waitEvent[event.NodeFailed](t, ts, "a")
	ts.sweep(t)
	f := ts.scrape(t)
	if got := value(t, f, "ocm_recoveries_unfinished_total", "policy", "reconnect"); got != 0 {
		t.Fatalf("unfinished = %v before the bound", got)
	}
	ts.check(t, func(st *state) {
		for _, r := range st.recovering {
			r.start = r.start.Add(-RecoveryBound)
		}
	})
	ts.sweep(t)
	f = ts.scrape(t)
	if got := value(t, f, "ocm_recoveries_unfinished_total", "policy", "reconnect"); got != 1 {
		t.Errorf("ocm_recoveries_unfinished_total{policy=reconnect} = %v, want 1", got)
	}
	if got := value(t, f, "ocm_recovery_seconds", "policy", "reconnect"); got != 0 {
		t.Errorf("an unfinished recovery was observed: count %v", got)
	}
	// b joining later observes nothing either.
	rs["b"].mustJoin(stream, "origin")
	if got := value(t, ts.scrape(t), "ocm_recovery_seconds", "policy", "reconnect"); got != 0 {
		t.Errorf("observed after giving up: count %v", got)
	}
}

// TestMetricsStreamCap: beyond MetricsMaxStreams streams, the largest
// keep their series and the rest are summed under stream="other".
func TestMetricsStreamCap(t *testing.T) {
	var in []api.Stream
	for i := range 150 {
		in = append(in, api.Stream{Stream: fmt.Sprintf("rtsp://h:1/s%03d", i), Nodes: i + 1, Orphans: 1, Depth: i % 7,
			OriginChildren: 1})
	}
	out := capStreams(in, 100)
	if len(out) != 100 {
		t.Fatalf("%d series, want 100", len(out))
	}
	other := out[99]
	if other.Stream != metrics.Other || other.Orphans != 51 || other.OriginChildren != 51 || other.Depth != 6 {
		t.Errorf("other = %+v", other)
	}
	if out[0].Nodes != 150 || other.Nodes != (1+51)*51/2 {
		t.Errorf("largest first %+v, other nodes %d", out[0], other.Nodes)
	}
	if len(capStreams(in[:100], 100)) != 100 || capStreams(in[:100], 100)[99].Stream == metrics.Other {
		t.Error("100 streams fit under a cap of 100")
	}
}

// TestMetricsCandidateTimes: every get_candidates answered is observed
// twice, its wait for the state goroutine and its decision there, so a
// relay's round trip can be split into the server's share and the rest.
func TestMetricsCandidateTimes(t *testing.T) {
	ts := startServer(t, nil)
	f := ts.scrape(t)
	for _, name := range []string{"ocm_candidate_queue_seconds", "ocm_candidate_decision_seconds"} {
		if got := f.Type(name); got != "histogram" {
			t.Errorf("%s: type %q, want histogram", name, got)
		}
	}
	r := newRelay(t, "a", 4).dial(ts.Addr(), "")
	for range 3 {
		r.candidates(stream)
	}
	r.sync()
	f2 := ts.scrape(t)
	for _, name := range []string{"ocm_candidate_queue_seconds", "ocm_candidate_decision_seconds"} {
		if got := value(t, f2, name) - value(t, f, name); got != 3 {
			t.Errorf("%s_count moved by %v, want 3 (one per get_candidates, none per heartbeat)", name, got)
		}
		t.Logf("%s: sum %.6f s", name, f2[name].GetMetric()[0].GetHistogram().GetSampleSum())
	}
}
