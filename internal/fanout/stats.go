package fanout

import (
	"slices"
	"sync/atomic"

	"github.com/ocm-overlay/ocm/internal/fanoutapi"
)

type inCounters struct {
	packets, bytes, rtcpPackets, rtcpBytes atomic.Uint64
	drops, truncated, nonRTP, errors       atomic.Uint64
	reconnects                             atomic.Uint64
}

// Stats returns the counters since Start.
func (f *Fanout) Stats() Stats { return f.statsOf(*f.dests.Load()) }

// statsOf returns the input's counters and those of ds.
func (f *Fanout) statsOf(ds []*dest) Stats {
	c := &f.inStats
	s := Stats{In: InStats{
		Packets:     c.packets.Load(),
		Bytes:       c.bytes.Load(),
		RTCPPackets: c.rtcpPackets.Load(),
		RTCPBytes:   c.rtcpBytes.Load(),
		Reconnects:  c.reconnects.Load(),
		Drops:       c.drops.Load(),
		Truncated:   c.truncated.Load(),
		NonRTP:      c.nonRTP.Load(),
		Errors:      c.errors.Load(),
	}}
	for _, g := range f.gaps {
		s.In.Gaps += g.Gaps.Load()
		s.In.Lost += g.Lost.Load()
		s.In.Late += g.Late.Load()
		s.In.Resyncs += g.Resyncs.Load()
	}
	s.Drops = s.In.Drops + s.In.Truncated + f.removedDrops.Load()
	s.Out = make([]OutStats, len(ds))
	for i, d := range ds {
		s.Out[i] = d.stats()
		s.Drops += s.Out[i].Drops
	}
	return s
}

// Bounds of the periodic stats line (Summary).
const (
	// DefaultStatsDetail is how many outputs the periodic stats line
	// lists one by one; beyond it the line carries their totals and the
	// worst few, so its size does not grow with the outputs.
	DefaultStatsDetail = 32
	// StatsWorst is how many outputs a summarised line names: those with
	// the most drops, then errors.
	StatsWorst = 8
)

// Summary returns the counters since Start with per-output detail when
// there are at most detail outputs (0: never). Beyond that it costs no
// allocation per output: a stats line every second stays cheap with
// thousands of outputs.
func (f *Fanout) Summary(detail int) Summary {
	ds := *f.dests.Load()
	if len(ds) <= detail {
		st := f.statsOf(ds)
		return Summary{In: st.In, Drops: st.Drops, Outputs: len(ds), Out: st.Out}
	}
	in := f.statsOf(nil)
	s := Summary{In: in.In, Drops: in.Drops, Outputs: len(ds)}
	for _, d := range ds {
		o := d.stats()
		t := &s.Total
		t.Packets += o.Packets
		t.Bytes += o.Bytes
		t.Drops += o.Drops
		t.Errors += o.Errors
		t.Queued += o.Queued
		if o.Drops > 0 {
			t.WithDrops++
		}
		if o.Errors > 0 {
			t.WithErrors++
		}
		if o.Drops > 0 {
			s.Worst = addWorst(s.Worst, o)
		}
	}
	s.Drops += s.Total.Drops
	return s
}

// addWorst inserts o into worst, kept sorted by drops then errors and cut
// to StatsWorst; among equals the earlier output stays first.
func addWorst(worst []OutStats, o OutStats) []OutStats {
	i := len(worst)
	for i > 0 && (o.Drops > worst[i-1].Drops || o.Drops == worst[i-1].Drops && o.Errors > worst[i-1].Errors) {
		i--
	}
	if i >= StatsWorst {
		return worst
	}
	if len(worst) == StatsWorst {
		worst = worst[:StatsWorst-1]
	}
	return slices.Insert(worst, i, o)
}

// The JSON shapes live in package fanoutapi, so that printing them does
// not pull in the fanout.
type (
	Request   = fanoutapi.Request
	Reply     = fanoutapi.Reply
	Stats     = fanoutapi.Stats
	InStats   = fanoutapi.InStats
	OutStats  = fanoutapi.OutStats
	OutTotals = fanoutapi.OutTotals
	Summary   = fanoutapi.Summary
)
