// Package api holds the JSON shapes of ocm-server's HTTP API that are not
// tree snapshots, shared by the server that writes them and ocm-ctl that
// reads them, so the two cannot drift apart.
package api

import (
	"time"

	"github.com/ocm-overlay/ocm/internal/tree"
)

// Node is one element of GET /api/v1/nodes.
type Node struct {
	tree.NodeSnapshot
	Remote    string    `json:"remote"`
	Connected time.Time `json:"connected"`
	LastSeen  time.Time `json:"last_seen"`
}

// Stream is one element of GET /api/v1/streams.
type Stream struct {
	tree.StreamSummary
	Origin string `json:"origin,omitempty"` // the origin's RTSP address
}

// Policy is GET (and POST) /api/v1/policy.
type Policy struct {
	Recovery        string `json:"recovery"`
	HeartbeatMs     int64  `json:"heartbeat_ms"`
	ReportMs        int64  `json:"report_ms"`
	MaxCandidates   int    `json:"max_candidates"`
	OriginCapacity  int    `json:"origin_capacity"`
	ReconnectStepMs int64  `json:"reconnect_step_ms"`
	HandoverMs      int64  `json:"handover_ms"`
	OrphanGraceMs   int64  `json:"orphan_grace_ms"`
}

// Sent answers the actions (reconnect, kick, drain): the messages sent.
type Sent struct {
	Sent []Target `json:"sent"`
}

// Target is one message an action sent.
type Target struct {
	Node   string `json:"node"`
	Stream string `json:"stream,omitempty"`
	Type   string `json:"type,omitempty"`   // message type: reconnect, drain, error (kick)
	Target string `json:"target,omitempty"` // reconnect: the parent to switch to
}
