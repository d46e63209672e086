package server

import (
	"fmt"
	"io"
	"sort"
	"strings"

	"github.com/ocm-overlay/ocm/internal/api"
)

// metrics are the state goroutine's counters. They are written in the
// Prometheus text format by hand: a dozen series do not justify a
// dependency.
type metrics struct {
	hellos, joins, reports, candidates uint64
	joinErrors, reconnects, failures   labelled
	rejected, handovers                labelled
	stalls                             labelled // children's stalls, by verdict
	quarantines                        uint64
}

// labelled is a counter with one label.
type labelled map[string]uint64

func (l labelled) inc(v string) { l[v]++ }

func newMetrics() metrics {
	m := metrics{joinErrors: labelled{}, reconnects: labelled{}, failures: labelled{}, rejected: labelled{},
		handovers: labelled{}, stalls: labelled{stallCounted: 0, stallExcused: 0}}
	for _, c := range failureCauses { // a fixed set: every series exists from the start
		m.failures[c] = 0
	}
	return m
}

// snapshot is what /metrics needs, copied out of the state goroutine.
type metricsSnapshot struct {
	m           metrics
	nodes       int
	sessions    int
	handovers   int // under way
	quarantined int
	streams     []api.Stream
}

func (st *state) metricsSnapshot() metricsSnapshot {
	cp := func(l labelled) labelled {
		out := make(labelled, len(l))
		for k, v := range l {
			out[k] = v
		}
		return out
	}
	m := st.m
	m.joinErrors, m.reconnects, m.failures, m.rejected = cp(m.joinErrors), cp(m.reconnects), cp(m.failures), cp(m.rejected)
	m.handovers, m.stalls = cp(m.handovers), cp(m.stalls)
	return metricsSnapshot{m: m, nodes: st.forest.NumNodes(), sessions: len(st.sessions), streams: st.forest.Streams(),
		handovers: len(st.handovers), quarantined: st.quarantinedCount()}
}

func (ms metricsSnapshot) write(w io.Writer) {
	counter := func(name, help string, v uint64) {
		fmt.Fprintf(w, "# HELP %s %s\n# TYPE %s counter\n%s %d\n", name, help, name, name, v)
	}
	gauge := func(name, help string, v int) {
		fmt.Fprintf(w, "# HELP %s %s\n# TYPE %s gauge\n%s %d\n", name, help, name, name, v)
	}
	vec := func(name, help, label string, l labelled) {
		fmt.Fprintf(w, "# HELP %s %s\n# TYPE %s counter\n", name, help, name)
		keys := make([]string, 0, len(l))
		for k := range l {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			fmt.Fprintf(w, "%s{%s=\"%s\"} %d\n", name, label, escapeLabel(k), l[k])
		}
	}
	gauge("ocm_nodes", "Registered relay nodes.", ms.nodes)
	gauge("ocm_connections", "Open relay connections.", ms.sessions)
	gauge("ocm_streams", "Streams with a tree.", len(ms.streams))
	counter("ocm_hellos_total", "Hellos accepted.", ms.m.hellos)
	counter("ocm_joins_total", "Joins accepted.", ms.m.joins)
	counter("ocm_reports_total", "Reports received.", ms.m.reports)
	counter("ocm_candidate_requests_total", "Candidate requests answered.", ms.m.candidates)
	vec("ocm_join_errors_total", "Joins refused, by error code.", "code", ms.m.joinErrors)
	vec("ocm_reconnects_sent_total", "Reconnects sent, by reason.", "reason", ms.m.reconnects)
	vec("ocm_node_failures_total", "Nodes failed, by cause.", "cause", ms.m.failures)
	vec("ocm_rejected_inputs_total", "Bad inputs rejected, by error code.", "code", ms.m.rejected)
	vec("ocm_handovers_total", "Graceful handovers started, and ended by result (switched, timeout, gone).", "result", ms.m.handovers)
	gauge("ocm_handovers_active", "Graceful handovers under way.", ms.handovers)
	vec("ocm_child_stalls_total", "Relays that lost their stream under a connected parent, by verdict (counted against the parent, or excused).", "verdict", ms.m.stalls)
	counter("ocm_quarantines_total", "Relays quarantined because their children stalled under them.", ms.m.quarantines)
	gauge("ocm_nodes_quarantined", "Relays quarantined now: not offered as parents.", ms.quarantined)
	series := []struct {
		name, help string
		v          func(api.Stream) int
	}{
		{"ocm_tree_nodes", "Members of a stream's tree.", func(s api.Stream) int { return s.Nodes }},
		{"ocm_tree_orphans", "Detached members of a stream's tree.", func(s api.Stream) int { return s.Orphans }},
		{"ocm_tree_depth", "Deepest attached level of a stream's tree.", func(s api.Stream) int { return s.Depth }},
		{"ocm_origin_children", "Relays pulling a stream from the origin.", func(s api.Stream) int { return s.OriginChildren }},
	}
	for _, se := range series {
		fmt.Fprintf(w, "# HELP %s %s\n# TYPE %s gauge\n", se.name, se.help, se.name)
		for _, s := range ms.streams {
			fmt.Fprintf(w, "%s{stream=\"%s\"} %d\n", se.name, escapeLabel(s.Stream), se.v(s))
		}
	}
}

var labelEscaper = strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`)

func escapeLabel(s string) string { return labelEscaper.Replace(s) }
