package fanout

import "sync/atomic"

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
func (f *Fanout) Stats() Stats {
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
	ds := *f.dests.Load()
	s.Out = make([]OutStats, len(ds))
	for i, d := range ds {
		s.Out[i] = d.stats()
		s.Drops += s.Out[i].Drops
	}
	return s
}
