package event

// The events of ocm-relay.

func init() {
	register[RelayReady]("control")
	register[ServerLink]("")
	register[Joined]("")
	register[Fallback]("")
	register[Reconnect]("")
	register[Improved]("")
	register[Drain]("")
	register[Left]("stream")
	register[LeftOverlay]("streams")
}

// RelayReady is ocm-relay's first line: where it listens and what it
// offers.
type RelayReady struct {
	Control  string `json:"control"` // the mediator's control address
	Probe    string `json:"probe"`   // the probe responder's UDP address
	Node     string `json:"node"`
	Server   string `json:"server"` // --server, "" without one
	Willing  bool   `json:"willing"`
	Capacity int    `json:"capacity"`
	Version  string `json:"version,omitempty"` // the build (see --version)
	Metrics  string `json:"metrics,omitempty"` // the --metrics address, HOST:PORT; "" when off
}

// ServerLink ("server") is a change of the relay's session with
// ocm-server.
type ServerLink struct {
	State    string `json:"state"`              // "connected", "disconnected" or "refused"
	Server   string `json:"server,omitempty"`   // connected, disconnected: the server's address
	Node     string `json:"node,omitempty"`     // connected, refused: the node id
	Recovery string `json:"recovery,omitempty"` // connected: the server's recovery policy
	Code     string `json:"code,omitempty"`     // refused: the wire error code
}

// Joined: the relay joined a stream under a parent.
type Joined struct {
	Stream     string  `json:"stream"`
	Parent     string  `json:"parent"`
	Upstream   string  `json:"upstream"` // the URL the mediator pulls from
	Level      int     `json:"level"`
	Score      float64 `json:"score,omitempty"`      // a resolve: the chosen candidate's score (lower wins)
	Candidates int     `json:"candidates,omitempty"` // a resolve: candidates ranked
	Handover   bool    `json:"handover,omitempty"`   // true: the parent was named by a handover
}

// Fallback: the relay pulls a stream from its origin directly (no server,
// or the server unreachable).
type Fallback struct {
	Stream string `json:"stream"`
	Reason string `json:"reason"`
}

// Reconnect: ocm-server told the relay to move a stream.
type Reconnect struct {
	Stream string `json:"stream"`
	Reason string `json:"reason"`
	Target string `json:"target"` // the new parent, "" to resolve
	Parent string `json:"parent"` // the parent being left
}

// Improved: an improvement round moved a stream to a parent that brings
// it sooner (make-before-break, like a handover).
type Improved struct {
	Stream   string  `json:"stream"`
	From     string  `json:"from"`     // the parent left
	To       string  `json:"to"`       // the new parent
	FromMs   float64 `json:"from_ms"`  // latency through From: the RTT to it plus its path from the origin
	ToMs     float64 `json:"to_ms"`    // the same through To
	Level    int     `json:"level"`    // the relay's level under To
	Displace bool    `json:"displace"` // To was full: the relay took its farthest child's slot
}

// Drain: ocm-server asked the relay to leave the overlay.
type Drain struct {
	Reason string `json:"reason"`
}

// Left: the relay left one stream.
type Left struct {
	Stream string `json:"stream"`
	Reason string `json:"reason"`
}

// LeftOverlay ("left" with "streams"): the relay left the overlay, and
// every stream it was in, on shutdown or drain.
type LeftOverlay struct {
	Streams []string `json:"streams"`
}

func (RelayReady) EventName() string  { return "ready" }
func (ServerLink) EventName() string  { return "server" }
func (Joined) EventName() string      { return "joined" }
func (Fallback) EventName() string    { return "fallback" }
func (Reconnect) EventName() string   { return "reconnect" }
func (Improved) EventName() string    { return "improved" }
func (Drain) EventName() string       { return "drain" }
func (Left) EventName() string        { return "left" }
func (LeftOverlay) EventName() string { return "left" }
