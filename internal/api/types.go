// Package api is ocm-server's HTTP API as its clients see it: the JSON
// shapes of every answer, written by the server and read by ocm-ctl, the
// tests and the benchmarks from these same types, and a Client for the
// endpoints. The tree package fills the shapes; it does not define them.
package api

import "time"

// Tree is one stream's tree: GET /api/v1/tree?stream=S, or one element of
// GET /api/v1/tree.
type Tree struct {
	Stream string     `json:"stream"`
	Origin TreeOrigin `json:"origin"`
	Nodes  []Member   `json:"nodes"` // attached first, by level then id; then detached
	Depth  int        `json:"depth"` // deepest attached level
}

// TreeOrigin is the origin's place in a tree.
type TreeOrigin struct {
	Children []string `json:"children"`
	Capacity int      `json:"capacity"`
}

// Member is one node in one stream's tree.
type Member struct {
	Node          string   `json:"node"`
	Parent        string   `json:"parent,omitempty"` // empty for an orphan
	Level         int      `json:"level"`            // relative while detached
	Children      []string `json:"children"`
	Clients       int      `json:"clients"` // children over all streams
	Capacity      int      `json:"capacity"`
	Attached      bool     `json:"attached"`
	PendingParent string   `json:"pending_parent,omitempty"`
	Leaving       bool     `json:"leaving,omitempty"`         // handing its children over
	Reserved      string   `json:"reserved_parent,omitempty"` // parent a handover promised it
	// PathMs is the RTT along the tree from the origin to it: the sum of
	// the RTTs its chain's relays measured to their parents (joined, then
	// reports), to 0.1 ms; 0 while unknown or detached.
	PathMs float64 `json:"path_ms,omitempty"`
	// From the node's last report, zero before one.
	Readers int     `json:"readers"`
	Loss    float64 `json:"loss"`
	Bitrate float64 `json:"bitrate"`
}

// Node is one registered node: one element of GET /api/v1/nodes.
type Node struct {
	ID         string     `json:"id"`
	RTSP       string     `json:"rtsp,omitempty"`
	Probe      string     `json:"probe,omitempty"`
	Willing    bool       `json:"willing"`
	Capacity   int        `json:"capacity"`
	Cores      int        `json:"cores,omitempty"`
	Children   int        `json:"children"` // over all streams
	CPU        float64    `json:"cpu"`
	Clients    int        `json:"clients"` // reported readers
	LastReport *time.Time `json:"last_report,omitempty"`
	Streams    []string   `json:"streams"`
	// Quarantined nodes are not offered as parents; the reason says why
	// and until when.
	Quarantined      bool   `json:"quarantined"`
	QuarantineReason string `json:"quarantine_reason,omitempty"`
	// The node's connection to the server; zero when it has none.
	Remote    string    `json:"remote"`
	Connected time.Time `json:"connected"`
	LastSeen  time.Time `json:"last_seen"`
}

// Stream is one element of GET /api/v1/streams.
type Stream struct {
	Stream         string `json:"stream"`
	Nodes          int    `json:"nodes"`
	Attached       int    `json:"attached"`
	Orphans        int    `json:"orphans"`
	Pending        int    `json:"pending"`
	Depth          int    `json:"depth"`
	OriginChildren int    `json:"origin_children"`
	Origin         string `json:"origin,omitempty"` // the origin's RTSP address
}

// Policy is GET (and POST) /api/v1/policy.
type Policy struct {
	Recovery       string `json:"recovery"`
	HeartbeatMs    int64  `json:"heartbeat_ms"`
	ReportMs       int64  `json:"report_ms"`
	MaxCandidates  int    `json:"max_candidates"`
	OriginCapacity int    `json:"origin_capacity"`
	// Displace is how many full relays are offered for displacement
	// besides the origin (ocm-server --displace); -1: displacement off.
	Displace        int   `json:"displace"`
	ReconnectStepMs int64 `json:"reconnect_step_ms"`
	HandoverMs      int64 `json:"handover_ms"`
	OrphanGraceMs   int64 `json:"orphan_grace_ms"`
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
