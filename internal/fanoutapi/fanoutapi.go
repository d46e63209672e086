// Package fanoutapi holds the JSON shapes of rtp-fanout's control replies
// and statistics, shared by package fanout that fills them and package
// event that prints them, without the fanout's RTP and RTSP machinery.
package fanoutapi

import "encoding/json"

// Request is one control line: {"op":"add","to":"udp://..."}, "remove",
// "list" or "stats". An id, if given, is echoed in the reply.
type Request struct {
	Op string          `json:"op"`
	To string          `json:"to,omitempty"`
	ID json.RawMessage `json:"id,omitempty"`
}

// Reply answers one Request.
type Reply struct {
	Op    string          `json:"op,omitempty"`
	ID    json.RawMessage `json:"id,omitempty"`
	OK    bool            `json:"ok"`
	To    any             `json:"to,omitempty"` // the canonical output, or the list for "list"
	Stats *Stats          `json:"stats,omitempty"`
	Error string          `json:"error,omitempty"`
}

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
