package server

import (
	"sort"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ocm-overlay/ocm/internal/api"
	"github.com/ocm-overlay/ocm/internal/metrics"
	"github.com/ocm-overlay/ocm/internal/tree"
)

// counters are the state goroutine's counters, incremented in place (an
// atomic add each); the gauges are read from the state once per scrape
// (stateCollector).
type counters struct {
	hellos, joins, reports, candidates prometheus.Counter
	joinErrors, reconnects, failures   labelled
	rejected, handovers                labelled
	stalls                             labelled // children's stalls, by verdict
	quarantines                        prometheus.Counter
	displacements                      prometheus.Counter // slots taken by displacement (tree.Forest.JoinVia)

	// A get_candidates' wait for the state goroutine, and its decision
	// there: what a relay's round trip is made of, server side.
	candidateQueue, candidateDecision prometheus.Histogram

	recoveries      labelled // failures with children, by policy
	unfinished      labelled // recoveries whose orphans did not all come back within RecoveryBound
	recoverySeconds *prometheus.HistogramVec
}

// labelled is a counter with one label, whose values are a fixed set
// (codes, causes, reasons, verdicts, policies): never an address or text.
type labelled struct{ *prometheus.CounterVec }

func (l labelled) inc(v string) { l.WithLabelValues(v).Inc() }

// DecisionBuckets are ocm_candidate_{queue,decision}_seconds' buckets:
// 10 µs to 2 s, each about 1.5 times the one before, so that a p99 read
// from them is within half a bucket.
var DecisionBuckets = prometheus.ExponentialBucketsRange(1e-5, 2, 31)

// RecoveryBuckets are ocm_recovery_seconds' buckets: from a repair on one
// host (10 ms) to a gradual rebuild of a deep tree (30 s, RecoveryBound).
var RecoveryBuckets = []float64{.01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 20, 30}

func newCounters(reg prometheus.Registerer) counters {
	counter := func(name, help string) prometheus.Counter {
		c := prometheus.NewCounter(prometheus.CounterOpts{Name: name, Help: help})
		reg.MustRegister(c)
		return c
	}
	vec := func(name, help, label string, values ...string) labelled {
		c := prometheus.NewCounterVec(prometheus.CounterOpts{Name: name, Help: help}, []string{label})
		reg.MustRegister(c)
		for _, v := range values { // a fixed set: these series exist from the start
			c.WithLabelValues(v)
		}
		return labelled{c}
	}
	policies := make([]string, 0, len(tree.Policies))
	for _, p := range tree.Policies {
		policies = append(policies, string(p))
	}
	m := counters{
		hellos:     counter("ocm_hellos_total", "Hellos accepted."),
		joins:      counter("ocm_joins_total", "Joins accepted."),
		reports:    counter("ocm_reports_total", "Reports received."),
		candidates: counter("ocm_candidate_requests_total", "Candidate requests answered."),
		joinErrors: vec("ocm_join_errors_total", "Joins refused, by error code.", "code"),
		reconnects: vec("ocm_reconnects_sent_total", "Reconnects sent, by reason.", "reason"),
		failures:   vec("ocm_node_failures_total", "Nodes failed, by cause.", "cause", failureCauses...),
		rejected:   vec("ocm_rejected_inputs_total", "Bad inputs rejected, by error code.", "code"),
		handovers: vec("ocm_handovers_total",
			"Graceful handovers started, and ended by result (switched, timeout, gone).", "result"),
		stalls: vec("ocm_child_stalls_total",
			"Relays that lost their stream under a connected parent, by verdict (counted against the parent, or excused).",
			"verdict", stallCounted, stallExcused),
		quarantines: counter("ocm_quarantines_total", "Relays quarantined because their children stalled under them."),
		displacements: counter("ocm_displacements_total",
			"Slots taken by displacement: a relay much closer to a full parent than its farthest child joined it, the child moving under that relay."),
		recoveries: vec("ocm_recoveries_total",
			"Failures of a node with children (recoveries started), by the policy in force.", "policy", policies...),
		unfinished: vec("ocm_recoveries_unfinished_total",
			"Recoveries whose orphans were not all attached again within 30 s (not in ocm_recovery_seconds), by policy.",
			"policy", policies...),
		recoverySeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "ocm_recovery_seconds",
			Help: "From a node's failure detected to every relay it orphaned attached again under a new parent, " +
				"once per failure with children, by policy.",
			Buckets: RecoveryBuckets,
		}, []string{"policy"}),
	}
	m.candidateQueue = prometheus.NewHistogram(prometheus.HistogramOpts{Name: "ocm_candidate_queue_seconds",
		Help:    "From a get_candidates read and decoded to the state goroutine taking it up (queueing behind other work).",
		Buckets: DecisionBuckets})
	m.candidateDecision = prometheus.NewHistogram(prometheus.HistogramOpts{Name: "ocm_candidate_decision_seconds",
		Help:    "The candidate decision in the state goroutine: selection, promise and the answer queued.",
		Buckets: DecisionBuckets})
	reg.MustRegister(m.recoverySeconds, m.candidateQueue, m.candidateDecision)
	for _, p := range policies {
		m.recoverySeconds.WithLabelValues(p)
	}
	return m
}

// metricsSnapshot is what the gauges need, copied out of the state
// goroutine once per scrape.
type metricsSnapshot struct {
	nodes       int
	sessions    int
	handovers   int // under way
	quarantined int
	streams     []api.Stream
}

func (st *state) metricsSnapshot() metricsSnapshot {
	return metricsSnapshot{nodes: st.forest.NumNodes(), sessions: len(st.sessions), streams: st.forest.Streams(),
		handovers: len(st.handovers), quarantined: st.quarantinedCount()}
}

// stateCollector collects the gauges: one call to the state goroutine per
// scrape.
type stateCollector struct {
	s                                             *Server
	nodes, conns, streams, handovers, quarantined *prometheus.Desc
	treeNodes, orphans, depth, originChildren     *prometheus.Desc
}

func newStateCollector(s *Server) *stateCollector {
	d := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc(name, help, labels, nil)
	}
	return &stateCollector{
		s:              s,
		nodes:          d("ocm_nodes", "Registered relay nodes."),
		conns:          d("ocm_connections", "Open relay connections."),
		streams:        d("ocm_streams", "Streams with a tree."),
		handovers:      d("ocm_handovers_active", "Graceful handovers under way."),
		quarantined:    d("ocm_nodes_quarantined", "Relays quarantined now: not offered as parents."),
		treeNodes:      d("ocm_tree_nodes", "Members of a stream's tree.", "stream"),
		orphans:        d("ocm_tree_orphans", "Detached members of a stream's tree.", "stream"),
		depth:          d("ocm_tree_depth", "Deepest attached level of a stream's tree (the deepest of them for stream=\"other\").", "stream"),
		originChildren: d("ocm_origin_children", "Relays pulling a stream from the origin.", "stream"),
	}
}

func (c *stateCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.nodes, c.conns, c.streams, c.handovers, c.quarantined,
		c.treeNodes, c.orphans, c.depth, c.originChildren} {
		ch <- d
	}
}

func (c *stateCollector) Collect(ch chan<- prometheus.Metric) {
	var ms metricsSnapshot
	if err := c.s.call(c.s.ctx, func(st *state) { ms = st.metricsSnapshot() }); err != nil {
		return // stopping: the gauges are left out of this scrape
	}
	gauge := func(d *prometheus.Desc, v int, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, float64(v), labels...)
	}
	gauge(c.nodes, ms.nodes)
	gauge(c.conns, ms.sessions)
	gauge(c.streams, len(ms.streams))
	gauge(c.handovers, ms.handovers)
	gauge(c.quarantined, ms.quarantined)
	for _, s := range capStreams(ms.streams, MetricsMaxStreams) {
		gauge(c.treeNodes, s.Nodes, s.Stream)
		gauge(c.orphans, s.Orphans, s.Stream)
		gauge(c.depth, s.Depth, s.Stream)
		gauge(c.originChildren, s.OriginChildren, s.Stream)
	}
}

// MetricsMaxStreams is how many streams have ocm_tree_* series of their
// own: the largest trees; the others are summed under stream="other".
const MetricsMaxStreams = metrics.DefaultMaxStreams

// capStreams keeps the limit-1 largest trees when there are more than limit,
// and sums the rest into one under metrics.Other (depth: the deepest).
func capStreams(streams []api.Stream, limit int) []api.Stream {
	keep := metrics.Capped(len(streams), limit)
	if keep == len(streams) {
		return streams
	}
	sorted := append([]api.Stream(nil), streams...)
	sort.SliceStable(sorted, func(i, j int) bool { return sorted[i].Nodes > sorted[j].Nodes })
	other := api.Stream{Stream: metrics.Other}
	for _, s := range sorted[keep:] {
		other.Nodes += s.Nodes
		other.Orphans += s.Orphans
		other.OriginChildren += s.OriginChildren
		other.Depth = max(other.Depth, s.Depth)
	}
	return append(sorted[:keep], other)
}

// registerMetrics builds the server's registry: the shared collectors, the
// state's counters and the gauges' collector.
func (s *Server) registerMetrics() (*prometheus.Registry, counters) {
	reg := metrics.NewRegistry()
	m := newCounters(reg)
	reg.MustRegister(newStateCollector(s))
	return reg, m
}
