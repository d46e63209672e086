// Package probe measures candidate parents: a UDP probe protocol answered by
// every ocm-relay (RTT plus the responder's load), an RTSP OPTIONS probe for
// the origin (a black box), and the selection rule ocm-relay and
// ocm-probe --explain use to rank candidates.
//
// # Protocol
//
// A request is one UDP datagram holding one JSON object:
//
//	{"v":1,"type":"probe","seq":7,"stream":"rtsp://ms:554/x","sent_ns":1700000000000000000}
//
// The responder answers with one datagram that echoes seq and sent_ns and
// carries its metrics (Info) beside them:
//
//	{"v":1,"type":"probe_reply","seq":7,"sent_ns":1700000000000000000,
//	 "node":"n1","clients":2,"level":1,"cores":8,"cpu":0.12,
//	 "free_mem":4123000000,"willing":true,"free_capacity":2}
//
// stream is optional; level is the responder's level in that stream's tree,
// -1 when it does not relay it. Datagrams are at most MaxDatagram bytes.
// Anything else (wrong version, wrong type, not JSON, too long) is ignored
// and counted. sent_ns is the requester's clock, only echoed: the requester
// measures the RTT with its own monotonic clock.
package probe

import (
	"errors"
	"time"
)

// Version is the probe protocol version.
const Version = 1

// Message types.
const (
	TypeProbe = "probe"
	TypeReply = "probe_reply"
)

// Defaults and limits, in one place.
const (
	// DefaultListen is the responder's default UDP address.
	DefaultListen = ":7072"
	// DefaultTimeout bounds one probe (request, one retransmission, answer).
	DefaultTimeout = 300 * time.Millisecond
	// MaxDatagram bounds requests and replies; a stream key is at most
	// 2048 bytes (wire.MaxStreamLen), which leaves room for the envelope.
	MaxDatagram = 4096
	// MaxParallel bounds the probes ProbeAll runs at once.
	MaxParallel = 64
	// DefaultRate and DefaultBurst bound the answers per second to one
	// source IP (a token bucket), so the responder cannot be used to
	// flood a spoofed address. A whole NAT'ed site resolving at once stays
	// well below it.
	DefaultRate  = 200
	DefaultBurst = 200
)

// ErrNoAnswer means a probe got no answer within its timeout.
var ErrNoAnswer = errors.New("no answer")

// ErrNotRTSP means the peer answered something that is not RTSP.
var ErrNotRTSP = errors.New("not an RTSP answer")

// Info is what a responder says about itself.
type Info struct {
	Node    string `json:"node"`
	Clients int    `json:"clients"` // readers it serves now, players and relays, all streams
	// Level is the responder's level in the asked stream's tree (1 right
	// under the origin), -1 if it does not relay that stream.
	Level        int     `json:"level"`
	Cores        int     `json:"cores"`
	CPU          float64 `json:"cpu"`      // busy fraction of all cores over the last sample, 0..1
	FreeMem      uint64  `json:"free_mem"` // bytes (MemAvailable)
	Willing      bool    `json:"willing"`
	FreeCapacity int     `json:"free_capacity"` // relay children it would still accept
}

// request is a probe datagram.
type request struct {
	V      int    `json:"v"`
	Type   string `json:"type"`
	Seq    uint64 `json:"seq"`
	Stream string `json:"stream,omitempty"`
	SentNs int64  `json:"sent_ns"`
}

// reply answers a request; Info's fields sit beside the envelope.
type reply struct {
	V      int    `json:"v"`
	Type   string `json:"type"`
	Seq    uint64 `json:"seq"`
	SentNs int64  `json:"sent_ns"`
	Info
}
