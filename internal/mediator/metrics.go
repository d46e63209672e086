package mediator

import (
	"sort"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ocm-overlay/ocm/internal/metrics"
)

// GapBuckets are ocm_mediator_upstream_gap_seconds' buckets: from a
// make-before-break switch (a frame interval or less) to an upstream lost
// for seconds.
var GapBuckets = []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}

// gapHist is a histogram of upstream gaps, kept by the forwarder under its
// lock (one per upstream change, never per packet) and read per scrape.
type gapHist struct {
	counts []uint64 // per bucket of GapBuckets, not cumulative
	count  uint64
	sum    float64
}

func (h *gapHist) observe(d time.Duration) {
	if h.counts == nil {
		h.counts = make([]uint64, len(GapBuckets))
	}
	s := d.Seconds()
	if i := sort.SearchFloat64s(GapBuckets, s); i < len(GapBuckets) {
		h.counts[i]++
	}
	h.count++
	h.sum += s
}

func (h gapHist) clone() gapHist {
	h.counts = append([]uint64(nil), h.counts...)
	return h
}

// add sums o into h (streams summed under stream="other").
func (h *gapHist) add(o gapHist) {
	if h.counts == nil {
		h.counts = make([]uint64, len(GapBuckets))
	}
	for i, c := range o.counts {
		h.counts[i] += c
	}
	h.count += o.count
	h.sum += o.sum
}

// cumulative returns the buckets as Prometheus wants them.
func (h gapHist) cumulative() map[float64]uint64 {
	out := make(map[float64]uint64, len(GapBuckets))
	var n uint64
	for i, b := range GapBuckets {
		if i < len(h.counts) {
			n += h.counts[i]
		}
		out[b] = n
	}
	return out
}

// heldRate is a bitrate for scrapes: measured over at least a second, so
// two scrapers close together see the same figure, not a noisy one.
type heldRate struct {
	rateMeter
	bps uint64
}

func (h *heldRate) rate(now time.Time, bytes uint64) uint64 {
	h.mu.Lock()
	fresh := now.Sub(h.when) < time.Second
	bps := h.bps
	h.mu.Unlock()
	if fresh {
		return bps
	}
	bps = h.rateMeter.rate(now, bytes)
	h.mu.Lock()
	h.bps = bps
	h.mu.Unlock()
	return bps
}

// streamMetrics is one stream's figures in a scrape.
type streamMetrics struct {
	stream                         string
	readers                        int
	pktsIn, pktsOut, lost, bytesIn uint64
	switches, losses               uint64
	bitrate                        uint64
	gaps                           gapHist
}

func (a *streamMetrics) add(b streamMetrics) {
	a.readers += b.readers
	a.pktsIn += b.pktsIn
	a.pktsOut += b.pktsOut
	a.lost += b.lost
	a.bytesIn += b.bytesIn
	a.switches += b.switches
	a.losses += b.losses
	a.bitrate += b.bitrate
	a.gaps.add(b.gaps)
}

func (r *relay) metrics(now time.Time) (streamMetrics, bool) {
	if !r.isReady() {
		return streamMetrics{}, false
	}
	readers, _ := r.readerCounts()
	_, _, lost := r.fwd.counters()
	sm := streamMetrics{stream: r.origin.URL(), readers: readers, pktsIn: r.pktsIn.Load(),
		pktsOut: r.ss.Stats().RTPPacketsSent + r.fan.pktsOut.Load(), lost: lost, bytesIn: r.bytesIn.Load(),
		losses: r.losses.Load(), bitrate: r.scrapeRate.rate(now, r.bytesIn.Load()), gaps: r.fwd.gapCounts()}
	if n := r.upstreams.Load(); n > 1 {
		sm.switches = n - 1
	}
	return sm, true
}

func (l *local) metrics(now time.Time) streamMetrics {
	return streamMetrics{stream: "/" + l.name, readers: int(l.readers.Load()), pktsIn: l.pktsIn.Load(),
		pktsOut: l.ss.Stats().RTPPacketsSent + l.fan.pktsOut.Load(), lost: l.lost.Load(), bytesIn: l.bytesIn.Load(),
		bitrate: l.scrapeRate.rate(now, l.bytesIn.Load())}
}

// Collector returns the mediator's per-stream metrics, read from the
// counters the packet path already keeps, once per scrape. Streams are
// labelled by their origin URL (a local path for published and test
// streams), at most maxStreams of them (<= 0: metrics.DefaultMaxStreams),
// the first by name; the others are summed under stream="other".
func (m *Mediator) Collector(maxStreams int) prometheus.Collector {
	d := func(name, help string) *prometheus.Desc {
		return prometheus.NewDesc(name, help, []string{"stream"}, nil)
	}
	return &mediatorCollector{m: m, max: maxStreams,
		streams:  prometheus.NewDesc("ocm_mediator_streams", "Streams served: relayed, published and test.", nil, nil),
		conns:    prometheus.NewDesc("ocm_mediator_connections", "RTSP connections open.", nil, nil),
		refused:  prometheus.NewDesc("ocm_mediator_connections_refused_total", "RTSP connections refused over --max-conns.", nil, nil),
		readers:  d("ocm_mediator_readers", "Sessions playing a stream (players and downstream relays)."),
		pktsIn:   d("ocm_mediator_packets_received_total", "RTP packets received from a stream's upstream or publisher."),
		pktsOut:  d("ocm_mediator_packets_sent_total", "RTP packets sent to a stream's readers."),
		lost:     d("ocm_mediator_packets_lost_total", "RTP packets never received: sequence numbers skipped."),
		bytesIn:  d("ocm_mediator_received_bytes_total", "RTP bytes received for a stream."),
		bitrate:  d("ocm_mediator_bitrate_bits_per_second", "A stream's incoming bitrate over the last second or more."),
		switches: d("ocm_mediator_upstream_switches_total", "Times a relayed stream started playing from another upstream (after a loss, a RECONNECT or a handover)."),
		losses:   d("ocm_mediator_upstream_losses_total", "Times a relayed stream's upstream closed or stalled."),
		gaps: d("ocm_mediator_upstream_gap_seconds",
			"The silence readers saw around each upstream change: from the last packet of the old upstream to the first of the new."),
	}
}

type mediatorCollector struct {
	m                                                *Mediator
	max                                              int
	streams, conns, refused                          *prometheus.Desc
	readers, pktsIn, pktsOut, lost, bytesIn, bitrate *prometheus.Desc
	switches, losses, gaps                           *prometheus.Desc
}

func (c *mediatorCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.streams, c.conns, c.refused, c.readers, c.pktsIn, c.pktsOut, c.lost,
		c.bytesIn, c.bitrate, c.switches, c.losses, c.gaps} {
		ch <- d
	}
}

func (c *mediatorCollector) Collect(ch chan<- prometheus.Metric) {
	now := time.Now()
	all := c.m.reg.streams(false)
	var sms []streamMetrics
	for _, l := range all.locals {
		sms = append(sms, l.metrics(now))
	}
	for _, r := range all.relays {
		if sm, ok := r.metrics(now); ok {
			sms = append(sms, sm)
		}
	}
	gs := c.m.guard.stats()
	ch <- prometheus.MustNewConstMetric(c.streams, prometheus.GaugeValue, float64(len(sms)))
	ch <- prometheus.MustNewConstMetric(c.conns, prometheus.GaugeValue, float64(gs.Open))
	ch <- prometheus.MustNewConstMetric(c.refused, prometheus.CounterValue, float64(gs.Refused))
	sort.Slice(sms, func(i, j int) bool { return sms[i].stream < sms[j].stream })
	if keep := metrics.Capped(len(sms), c.max); keep < len(sms) {
		other := streamMetrics{stream: metrics.Other}
		for _, sm := range sms[keep:] {
			other.add(sm)
		}
		sms = append(sms[:keep], other)
	}
	for _, sm := range sms {
		v := func(d *prometheus.Desc, t prometheus.ValueType, x uint64) {
			ch <- prometheus.MustNewConstMetric(d, t, float64(x), sm.stream)
		}
		v(c.readers, prometheus.GaugeValue, uint64(sm.readers))
		v(c.pktsIn, prometheus.CounterValue, sm.pktsIn)
		v(c.pktsOut, prometheus.CounterValue, sm.pktsOut)
		v(c.lost, prometheus.CounterValue, sm.lost)
		v(c.bytesIn, prometheus.CounterValue, sm.bytesIn)
		v(c.bitrate, prometheus.GaugeValue, sm.bitrate)
		v(c.switches, prometheus.CounterValue, sm.switches)
		v(c.losses, prometheus.CounterValue, sm.losses)
		ch <- prometheus.MustNewConstHistogram(c.gaps, sm.gaps.count, sm.gaps.sum, sm.gaps.cumulative(), sm.stream)
	}
}
