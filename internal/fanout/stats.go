package fanout

import (
	"slices"
	"sync/atomic"
)

// Stats is a snapshot of the counters since Start.
type Stats struct {
	In    InStats    `json:"in"`
	Out   []OutStats `json:"out"`
	Drops uint64     `json:"drops"` // input drops plus every destination's
}

// InStats counts the input.
type InStats struct {
	Packets     uint64 `json:"packets"` // RTP (or other datagrams on the RTP port)
	Bytes       uint64 `json:"bytes"`
	RTCPPackets uint64 `json:"rtcp_packets"`
	RTCPBytes   uint64 `json:"rtcp_bytes"`
	Gaps        uint64 `json:"gaps"`       // runs of missing RTP sequence numbers
	Lost        uint64 `json:"lost"`       // sequence numbers missing in those runs
	Late        uint64 `json:"late"`       // duplicated or reordered packets
	Resyncs     uint64 `json:"resyncs"`    // SSRC changes or sequence jumps
	Drops       uint64 `json:"drops"`      // received but dropped: no free buffer
	Truncated   uint64 `json:"truncated"`  // larger than the packet buffer, dropped
	NonRTP      uint64 `json:"non_rtp"`    // datagrams on the RTP port that are not RTP (still relayed)
	Errors      uint64 `json:"errors"`     // rtsp input: packets the client could not decode
	Reconnects  uint64 `json:"reconnects"` // rtsp input: sessions opened again after a loss
}

// OutStats counts one destination.
type OutStats struct {
	To        string `json:"to"`
	Packets   uint64 `json:"packets"` // sent, RTP and RTCP
	Bytes     uint64 `json:"bytes"`
	Drops     uint64 `json:"drops"`  // evicted from a full queue or failed to send
	Errors    uint64 `json:"errors"` // sends this host refused (no route, firewall...)
	Queued    int    `json:"queued"`
	LastError string `json:"last_error,omitempty"`
}

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

// Summary is the periodic stats line: the input, and every output when
// there are at most detail of them (Out), else their totals (Total) and
// the worst StatsWorst (Worst).
type Summary struct {
	In      InStats
	Drops   uint64 // input drops plus every destination's, removed ones included
	Outputs int
	Out     []OutStats // every output, or nil when summarised
	Total   OutTotals  // every output, when summarised
	Worst   []OutStats // when summarised: outputs that dropped, worst first
}

// OutTotals sums the counters of many outputs.
type OutTotals struct {
	Packets    uint64 `json:"packets"`
	Bytes      uint64 `json:"bytes"`
	Drops      uint64 `json:"drops"`
	Errors     uint64 `json:"errors"`
	Queued     int    `json:"queued"`
	WithDrops  int    `json:"with_drops"`  // outputs that dropped packets
	WithErrors int    `json:"with_errors"` // outputs with failed sends
}

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
