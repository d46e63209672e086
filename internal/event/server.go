package event

// The events of ocm-server.

func init() {
	register[ServerReady]("ocm")
	register[NodeJoined]("")
	register[NodeLeft]("")
	register[NodeFailed]("")
	register[NodeReplaced]("")
	register[Rejected]("")
	register[JoinRejected]("")
	register[TreeJoined]("")
	register[TreePending]("")
	register[TreeOrphaned]("")
	register[TreeRemoved]("")
	register[TreeDisplaced]("")
	register[TreeLeft]("")
	register[ReconnectSent]("")
	register[HandoverStarted]("")
	register[HandoverDone]("")
	register[DrainSent]("")
	register[PolicyChanged]("")
	register[ChildStalled]("")
	register[NodeQuarantined]("")
	register[NodeReleased]("")
	register[ReportSummary]("")
}

// ServerReady is ocm-server's first line: where it listens.
type ServerReady struct {
	OCM  string `json:"ocm"`  // the relays' TCP address, HOST:PORT
	HTTP string `json:"http"` // the HTTP API's address, "" without one
	// Version is the build (see --version), "" when not known.
	Version string `json:"version,omitempty"`
}

// NodeJoined: a relay said hello and was welcomed.
type NodeJoined struct {
	Node     string `json:"node"`
	Remote   string `json:"remote"`   // its connection's address
	RTSP     string `json:"rtsp"`     // its mediator's RTSP address, as children reach it
	Probe    string `json:"probe"`    // its probe responder's address
	Willing  bool   `json:"willing"`  // whether it relays to others
	Capacity int    `json:"capacity"` // children it takes
	Cores    int    `json:"cores"`
	Streams  int    `json:"streams"` // streams it declared it already receives
}

// NodeGone is the body of node_left and node_failed: a relay's session
// ended.
type NodeGone struct {
	Node    string   `json:"node"`
	Remote  string   `json:"remote"`
	Cause   string   `json:"cause"`            // why the session ended ("closed", "heartbeat", ...)
	Detail  string   `json:"detail,omitempty"` // more on the cause, when there is more
	Streams []string `json:"streams"`          // the streams it was in
	Policy  string   `json:"policy"`           // the recovery policy applied to its children
}

// NodeLeft: a relay closed its session cleanly while in no stream.
type NodeLeft struct{ NodeGone }

// NodeFailed: a relay's session ended otherwise (lost, timed out, left
// while in a stream); its children are recovered by Policy.
type NodeFailed struct{ NodeGone }

// NodeReplaced: a relay reconnected while its old session was ending; the
// new session takes the node over.
type NodeReplaced struct {
	Node      string `json:"node"`
	OldRemote string `json:"old_remote"`
	Remote    string `json:"remote"`
}

// Rejected: input from a connection was refused: a malformed or
// unauthorised message, or a hello with the id of a live node.
type Rejected struct {
	Remote     string `json:"remote"`
	Code       string `json:"code"`                  // the wire error code sent back
	Node       string `json:"node,omitempty"`        // duplicate_node: the id asked for
	LiveRemote string `json:"live_remote,omitempty"` // duplicate_node: the live session's address
	Message    string `json:"message"`
}

// JoinRejected: a relay's join under a parent was refused.
type JoinRejected struct {
	Stream  string `json:"stream"`
	Node    string `json:"node"`
	Parent  string `json:"parent"`
	Code    string `json:"code"` // the wire error code sent back
	Message string `json:"message"`
}

// TreeJoined: an edge of a stream's tree was created or moved.
type TreeJoined struct {
	Stream  string `json:"stream"`
	Node    string `json:"node"`
	Parent  string `json:"parent"`
	From    string `json:"from"`    // the previous parent, "" if new or an orphan
	Level   int    `json:"level"`   // depth below the origin (1: a child of the origin)
	Subtree int    `json:"subtree"` // members that moved with it, itself included
}

// TreePending: an edge waits for its parent to say hello (after a server
// restart).
type TreePending struct {
	Stream string `json:"stream"`
	Node   string `json:"node"`
	Parent string `json:"parent"`
}

// TreeOrphaned: a member lost its parent and waits to be told where to go.
type TreeOrphaned struct {
	Stream string `json:"stream"`
	Node   string `json:"node"`
	Cause  string `json:"cause"` // the mutation that orphaned it
}

// TreeDisplaced: a relay much closer to a full parent than that parent's
// farthest child took the child's slot (wire.Displaces); the child is
// told to move under it (reconnect, reason displaced, target By).
type TreeDisplaced struct {
	Stream  string  `json:"stream"`
	Node    string  `json:"node"`     // the child told to move
	From    string  `json:"from"`     // the parent it leaves
	By      string  `json:"by"`       // the relay that took its slot, its new parent
	RTTMs   float64 `json:"rtt_ms"`   // By's RTT to From
	WorstMs float64 `json:"worst_ms"` // Node's RTT to From
}

// TreeRemoved: a member was taken out of a stream's tree.
type TreeRemoved struct {
	Stream string `json:"stream"`
	Node   string `json:"node"`
	Cause  string `json:"cause"`
}

// TreeLeft: a member left a stream (its left request, or the end of its
// handover).
type TreeLeft struct {
	Stream string `json:"stream"`
	Node   string `json:"node"`
}

// ReconnectSent: the server told a relay to find another parent.
type ReconnectSent struct {
	Stream string `json:"stream"`
	Node   string `json:"node"`
	Reason string `json:"reason"` // wire.Reason*
	Target string `json:"target"` // the parent to go to, "" to resolve
}

// HandoverStarted: a leaving relay's children are being moved before it
// goes.
type HandoverStarted struct {
	Stream    string         `json:"stream"`
	Node      string         `json:"node"` // the leaving relay
	Children  []HandoverMove `json:"children"`
	TimeoutMs int64          `json:"timeout_ms"`
}

// HandoverMove is where one child is sent by a handover.
type HandoverMove struct {
	Node   string `json:"node"`
	Target string `json:"target"` // "" if it resolves on its own
	Level  int    `json:"level"`
}

// HandoverDone: a handover ended.
type HandoverDone struct {
	Stream    string   `json:"stream"`
	Node      string   `json:"node"`
	Result    string   `json:"result"`    // "switched", "timeout" or "gone"
	Remaining []string `json:"remaining"` // children still below it
}

// DrainSent: the operator drained a relay.
type DrainSent struct {
	Node string `json:"node"`
}

// PolicyChanged: the operator changed the recovery policy.
type PolicyChanged struct {
	From string `json:"from"`
	To   string `json:"to"`
}

// ChildStalled: a relay reported a child stalled under it, and how the
// server judged it.
type ChildStalled struct {
	Stream  string `json:"stream"`
	Node    string `json:"node"` // the parent
	Child   string `json:"child"`
	Verdict string `json:"verdict"` // "counted" or "excused"
	Why     string `json:"why"`
}

// NodeQuarantined: a relay's children stalled under it too often; it is
// offered to no one until its reports are clean.
type NodeQuarantined struct {
	Node     string   `json:"node"`
	Stream   string   `json:"stream"`
	Children []string `json:"children"` // the children that stalled, sorted
	Reason   string   `json:"reason"`
	Offences int      `json:"offences"`
	CleanMs  int64    `json:"clean_ms"` // clean reports needed to lift it
}

// NodeReleased: a quarantine was lifted.
type NodeReleased struct {
	Node     string `json:"node"`
	CleanMs  int64  `json:"clean_ms"`
	Offences int    `json:"offences"`
}

// ReportSummary: what the relays' reports of the last interval add up to,
// and the overlay's size; at most one per report interval, and only when
// something changed.
type ReportSummary struct {
	Reports  int `json:"reports"`  // reports received since the last summary
	Lossy    int `json:"lossy"`    // of those, reports with a stream losing packets
	Nodes    int `json:"nodes"`    // registered nodes
	Streams  int `json:"streams"`  // streams with a tree
	Attached int `json:"attached"` // members attached, over all streams
	Orphans  int `json:"orphans"`  // members waiting for a parent
	Depth    int `json:"depth"`    // deepest level over all streams
}

func (ServerReady) EventName() string     { return "ready" }
func (NodeJoined) EventName() string      { return "node_joined" }
func (NodeLeft) EventName() string        { return "node_left" }
func (NodeFailed) EventName() string      { return "node_failed" }
func (NodeReplaced) EventName() string    { return "node_replaced" }
func (Rejected) EventName() string        { return "rejected" }
func (JoinRejected) EventName() string    { return "join_rejected" }
func (TreeJoined) EventName() string      { return "tree_joined" }
func (TreePending) EventName() string     { return "tree_pending" }
func (TreeOrphaned) EventName() string    { return "tree_orphaned" }
func (TreeRemoved) EventName() string     { return "tree_removed" }
func (TreeDisplaced) EventName() string   { return "tree_displaced" }
func (TreeLeft) EventName() string        { return "tree_left" }
func (ReconnectSent) EventName() string   { return "reconnect_sent" }
func (HandoverStarted) EventName() string { return "handover_started" }
func (HandoverDone) EventName() string    { return "handover_done" }
func (DrainSent) EventName() string       { return "drain_sent" }
func (PolicyChanged) EventName() string   { return "policy_changed" }
func (ChildStalled) EventName() string    { return "child_stalled" }
func (NodeQuarantined) EventName() string { return "node_quarantined" }
func (NodeReleased) EventName() string    { return "node_released" }
func (ReportSummary) EventName() string   { return "report_summary" }
