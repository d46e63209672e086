package relay

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ocm-overlay/ocm/internal/control"
	"github.com/ocm-overlay/ocm/internal/probe"
)

// ResolveBuckets are ocm_relay_resolve_seconds' buckets: from a candidate
// list and one probe round on a LAN (a few ms) to a resolve that waits for
// the server's RECONNECT or times out (seconds).
var ResolveBuckets = []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}

// Resolve modes as labelled: the mediator's (control.ModeJoin,
// ModeAfterLoss, ModeRedirect) and a RECONNECT from the server.
const modeReconnect = "reconnect"

// relayMetrics are the counters the resolves increment (an atomic add
// each, never per packet); the gauges are read once per scrape.
type relayMetrics struct {
	probes         *prometheus.CounterVec   // result
	resolves       *prometheus.CounterVec   // mode, result
	resolveSeconds *prometheus.HistogramVec // mode
	fallbacks      prometheus.Counter
	improvements   *prometheus.CounterVec // result
}

// Improvement round results as labelled (improve.go).
const (
	improveMoved   = "moved"   // joined a better parent and switched
	improveStayed  = "stayed"  // no parent enough better
	improveRefused = "refused" // the better parent refused the join
	improveFailed  = "failed"  // no candidates (the server did not answer)
)

func newRelayMetrics() *relayMetrics {
	m := &relayMetrics{
		probes: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "ocm_relay_probes_total",
			Help: "Probes this relay sent to candidate parents, by result (answered, unanswered)."}, []string{"result"}),
		resolves: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "ocm_relay_resolves_total",
			Help: "Upstreams chosen, by mode (join, after_loss, redirect, reconnect) and result (ok, error)."},
			[]string{"mode", "result"}),
		resolveSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "ocm_relay_resolve_seconds",
			Help:    "How long choosing an upstream took (candidates, probes, join), by mode.",
			Buckets: ResolveBuckets}, []string{"mode"}),
		fallbacks: prometheus.NewCounter(prometheus.CounterOpts{Name: "ocm_relay_fallbacks_total",
			Help: "Resolves answered with the origin itself because ocm-server was unreachable or did not answer."}),
		improvements: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "ocm_relay_improvements_total",
			Help: "Improvement rounds (a better parent looked for), by result (moved, stayed, refused, failed)."},
			[]string{"result"}),
	}
	for _, r := range []string{improveMoved, improveStayed, improveRefused, improveFailed} {
		m.improvements.WithLabelValues(r)
	}
	for _, r := range []string{"answered", "unanswered"} {
		m.probes.WithLabelValues(r)
	}
	for _, mode := range []string{control.ModeJoin, control.ModeAfterLoss, control.ModeRedirect, modeReconnect} {
		m.resolveSeconds.WithLabelValues(mode)
	}
	return m
}

// probed counts a probe round's answers.
func (m *relayMetrics) probed(choices []probe.Choice) {
	if m == nil {
		return
	}
	for _, ch := range choices {
		if ch.Result.Err == nil {
			m.probes.WithLabelValues("answered").Inc()
		} else {
			m.probes.WithLabelValues("unanswered").Inc()
		}
	}
}

// resolved counts a resolve that began at start.
func (m *relayMetrics) resolved(mode string, start time.Time, err error) {
	if m == nil {
		return
	}
	switch mode {
	case control.ModeJoin, control.ModeAfterLoss, control.ModeRedirect, modeReconnect:
	default:
		mode = control.ModeJoin // what the mediator means by none
	}
	result := "ok"
	if err != nil {
		result = "error"
	}
	m.resolves.WithLabelValues(mode, result).Inc()
	m.resolveSeconds.WithLabelValues(mode).Observe(time.Since(start).Seconds())
}

// improved counts an improvement round's result.
func (m *relayMetrics) improved(result string) {
	if m != nil {
		m.improvements.WithLabelValues(result).Inc()
	}
}

// fellBack counts a resolve answered with the origin because ocm-server
// was unreachable or did not answer.
func (m *relayMetrics) fellBack() {
	if m != nil {
		m.fallbacks.Inc()
	}
}

// Collector returns the relay's metrics: the resolve counters and, read
// from the state goroutine once per scrape, the streams by phase and the
// server session; with the probe responder's answers.
func (r *Relay) Collector() prometheus.Collector {
	return &relayCollector{r: r,
		streams: prometheus.NewDesc("ocm_relay_streams", "Streams this relay receives, by phase "+
			"(idle, resolving, joined, switching, leaving).", []string{"phase"}, nil),
		playing: prometheus.NewDesc("ocm_relay_streams_playing", "Streams the mediator says it plays.", nil, nil),
		session: prometheus.NewDesc("ocm_relay_server_connected", "1 while a session with ocm-server is up, else 0.", nil, nil),
		served: prometheus.NewDesc("ocm_relay_probes_answered_total",
			"Probes from other relays this relay answered.", nil, nil),
		mediators: prometheus.NewDesc("ocm_relay_control_clients", "Mediators connected to the control socket.", nil, nil),
	}
}

type relayCollector struct {
	r                                            *Relay
	streams, playing, session, served, mediators *prometheus.Desc
}

var phaseNames = map[streamPhase]string{phaseIdle: "idle", phaseResolving: "resolving", phaseJoined: "joined",
	phaseSwitching: "switching", phaseLeaving: "leaving"}

func (c *relayCollector) Describe(ch chan<- *prometheus.Desc) {
	c.r.m.probes.Describe(ch)
	c.r.m.resolves.Describe(ch)
	c.r.m.resolveSeconds.Describe(ch)
	c.r.m.fallbacks.Describe(ch)
	c.r.m.improvements.Describe(ch)
	for _, d := range []*prometheus.Desc{c.streams, c.playing, c.session, c.served, c.mediators} {
		ch <- d
	}
}

func (c *relayCollector) Collect(ch chan<- prometheus.Metric) {
	c.r.m.probes.Collect(ch)
	c.r.m.resolves.Collect(ch)
	c.r.m.resolveSeconds.Collect(ch)
	c.r.m.fallbacks.Collect(ch)
	c.r.m.improvements.Collect(ch)
	ch <- prometheus.MustNewConstMetric(c.served, prometheus.CounterValue, float64(c.r.resp.Stats().Answered))
	phases := map[string]int{}
	for _, n := range phaseNames {
		phases[n] = 0
	}
	playing, connected, mediators := 0, 0, 0
	ctx, cancel := context.WithTimeout(c.r.ctx, DefaultCallTimeout)
	defer cancel()
	if err := c.r.call(ctx, func(st *state) {
		for _, ss := range st.streams {
			phases[phaseNames[ss.phase]]++
			if ss.playing {
				playing++
			}
		}
		if st.sess != nil {
			connected = 1
		}
		mediators = len(st.mediators)
	}); err != nil {
		return // closing: the gauges are left out of this scrape
	}
	for n, v := range phases {
		ch <- prometheus.MustNewConstMetric(c.streams, prometheus.GaugeValue, float64(v), n)
	}
	ch <- prometheus.MustNewConstMetric(c.playing, prometheus.GaugeValue, float64(playing))
	ch <- prometheus.MustNewConstMetric(c.session, prometheus.GaugeValue, float64(connected))
	ch <- prometheus.MustNewConstMetric(c.mediators, prometheus.GaugeValue, float64(mediators))
}
