package wire

import (
	"fmt"
	"net"
	"strconv"
	"time"
	"unicode/utf8"
)

// Message types, the envelope's "type". The arrow says who sends it.
const (
	TypeHello         = "hello"          // relay -> server, first message
	TypeWelcome       = "welcome"        // server -> relay, answers hello
	TypeGetCandidates = "get_candidates" // relay -> server
	TypeCandidates    = "candidates"     // server -> relay, answers get_candidates
	TypeJoined        = "joined"         // relay -> server, answered by ack or error
	TypeLeft          = "left"           // relay -> server, answered by ack or error
	TypeReport        = "report"         // relay -> server, not answered
	TypeHeartbeat     = "heartbeat"      // both ways: relay asks, server answers (re set)
	TypeReconnect     = "reconnect"      // server -> relay
	TypeDrain         = "drain"          // server -> relay
	TypeAck           = "ack"            // server -> relay, answers joined/left
	TypeError         = "error"          // either way
)

// Recovery policies, as carried in Welcome.Recovery.
const (
	RecoveryRepair    = "repair"
	RecoveryDrop      = "drop"
	RecoveryReconnect = "reconnect"
	RecoveryGradual   = "gradual"
)

// Reasons carried by Reconnect.
const (
	ReasonParentFailed   = "parent_failed"   // the parent died; re-resolve, excluding it
	ReasonParentLeft     = "parent_left"     // the parent left the stream (drain, shutdown)
	ReasonAncestorFailed = "ancestor_failed" // an ancestor died (reconnect/gradual policies)
	ReasonParentMissing  = "parent_missing"  // after a server restart, the declared parent never came back
	ReasonRejected       = "rejected"        // the parent declared in hello was refused (cycle, capacity)
	ReasonCapacity       = "capacity"        // the parent lowered its capacity
	ReasonOperator       = "operator"        // ocm-ctl reconnect
	ReasonOrphaned       = "orphaned"        // still detached a grace period after an earlier reconnect
	ReasonDisplaced      = "displaced"       // a much closer relay took the slot: move under Target, make-before-break
)

// Error codes carried by Error.
const (
	CodeBadRequest    = "bad_request"    // malformed or invalid message
	CodeLineTooLong   = "line_too_long"  // line longer than the limit; connection closed
	CodeVersion       = "version"        // unsupported version; connection closed
	CodeUnknownType   = "unknown_type"   // type not known to the receiver
	CodeUnauthorized  = "unauthorized"   // bad or missing token; connection closed
	CodeExpectedHello = "expected_hello" // first message was not a hello; connection closed
	CodeUnexpected    = "unexpected"     // message not valid in this direction or state
	CodeUnknownNode   = "unknown_node"   // the node is not registered
	CodeUnknownParent = "unknown_parent" // joined: the parent is not a registered node
	CodeNotActive     = "not_active"     // joined: the parent does not receive the stream (or is detached, or leaving)
	CodeCycle         = "cycle"          // joined: the parent is the node itself or one of its descendants
	CodeFull          = "full"           // joined: the parent has no free capacity
	CodeNotWilling    = "not_willing"    // joined: the parent does not relay
	CodeQuarantined   = "quarantined"    // joined: children stall under the parent; the server offers it no more for now
	CodeNotInStream   = "not_in_stream"  // left: the node is not in that stream's tree
	CodeBadStream     = "bad_stream"     // the stream key is not an rtsp:// origin URL
	CodeKicked        = "kicked"         // an operator removed the node; connection closed
	CodeReplaced      = "replaced"       // a newer connection said hello with this node id (older servers)
	CodeDuplicateNode = "duplicate_node" // hello: another live connection has this node id; connection closed
	CodeShutdown      = "shutdown"       // the server is stopping
	CodeBusy          = "busy"           // hello: the server holds as many relays as it may; connection closed, try again later
	CodeInternal      = "internal"
)

// Body is the content of one message; each type of this package is one.
type Body interface {
	// Type returns the envelope type of the body.
	Type() string
	// Validate reports a missing or out-of-range field (wrapping ErrInvalid).
	Validate() error
}

// Msg is one decoded message: the envelope and its body.
type Msg struct {
	V    int    // protocol version; Encode writes Version when 0
	Type string // Body.Type()
	ID   uint64 // sender's message number, 0 if none
	Re   uint64 // id of the message answered, 0 if none
	Body Body
}

// Hello is a relay's first message: who it is and what it already relays.
// In RTSP and Probe an empty or unspecified host (":8554", "0.0.0.0:8554",
// "[::]:8554") means "the address my connection to the server comes
// from": the server fills it in before offering the node to others.
type Hello struct {
	Node     string    `json:"node"`              // stable node id, unique in the overlay
	RTSP     string    `json:"rtsp,omitempty"`    // host:port other hosts reach its mediator on (required if willing)
	Probe    string    `json:"probe,omitempty"`   // host:port of its UDP probe responder
	Willing  bool      `json:"willing"`           // relays to others
	Capacity int       `json:"capacity"`          // max children, over all streams
	Cores    int       `json:"cores,omitempty"`   // CPU cores
	Streams  []Relayed `json:"streams,omitempty"` // streams already received (rebuild after restart)
	Token    string    `json:"token,omitempty"`   // shared secret, when the server has one
	Agent    string    `json:"agent,omitempty"`   // software name/version, informative
}

// Relayed is one stream a relay already receives, declared in Hello.
type Relayed struct {
	Stream     string `json:"stream"`                // stream key (normalised origin URL)
	Parent     string `json:"parent"`                // parent node id, or OriginID
	ParentRTSP string `json:"parent_rtsp,omitempty"` // the parent's RTSP address as the relay uses it
	Level      int    `json:"level,omitempty"`       // the relay's level as it knows it (1 under the origin)
	// RTTMs is the last RTT to the parent the relay measured (0:
	// unknown), so a restarted or standby server knows the paths at once.
	RTTMs float64 `json:"rtt_ms,omitempty"`
}

// Welcome accepts a Hello.
type Welcome struct {
	Node        string `json:"node"`         // the accepted node id
	Recovery    string `json:"recovery"`     // recovery policy in force (Recovery*)
	ReportMs    int64  `json:"report_ms"`    // report interval in milliseconds
	HeartbeatMs int64  `json:"heartbeat_ms"` // heartbeat interval in milliseconds
	// HandoverMs is the longest the server holds the ack of a left while
	// the relay's children switch away (0: an older server, which acks
	// at once).
	HandoverMs int64 `json:"handover_ms,omitempty"`
	// ReconnectStepMs is the delay between the levels told under the
	// gradual policy.
	ReconnectStepMs int64  `json:"reconnect_step_ms,omitempty"`
	Server          string `json:"server,omitempty"`
}

// Report returns the report interval.
func (w *Welcome) Report() time.Duration { return time.Duration(w.ReportMs) * time.Millisecond }

// Heartbeat returns the heartbeat interval.
func (w *Welcome) Heartbeat() time.Duration { return time.Duration(w.HeartbeatMs) * time.Millisecond }

// Handover returns how long the server may hold the ack of a left.
func (w *Welcome) Handover() time.Duration { return time.Duration(w.HandoverMs) * time.Millisecond }

// ReconnectStep returns the delay between levels under the gradual policy.
func (w *Welcome) ReconnectStep() time.Duration {
	return time.Duration(w.ReconnectStepMs) * time.Millisecond
}

// WaitsForReconnect reports whether the policy in force wants a relay
// whose upstream stalls to wait for the server's reconnect instead of
// rejoining by itself (reconnect and gradual).
func (w *Welcome) WaitsForReconnect() bool {
	return w.Recovery == RecoveryReconnect || w.Recovery == RecoveryGradual
}

// StallWait is how long a relay at level (1 under the origin) whose
// upstream stalled waits for a reconnect, under a policy that
// WaitsForReconnect, before it rejoins by itself: time for the server to
// notice a silent failure (MissedHeartbeats+1 heartbeat intervals) plus,
// under gradual, one step per level above it. Zero under the other
// policies: rejoin at once.
func (w *Welcome) StallWait(level int) time.Duration {
	if !w.WaitsForReconnect() {
		return 0
	}
	d := (MissedHeartbeats + 1) * w.Heartbeat()
	if w.Recovery == RecoveryGradual {
		d += time.Duration(max(level, 1)) * w.ReconnectStep()
	}
	return d
}

// GetCandidates asks for parents for a stream. Excluding the requester's
// current parent says that parent failed it (its stream was lost or
// stalled): the server may count that against the parent (see Candidate
// and the server's quarantine of black holes).
type GetCandidates struct {
	Stream  string   `json:"stream"`
	Exclude []string `json:"exclude,omitempty"` // node ids not to offer (may include OriginID)
	Max     int      `json:"max,omitempty"`     // at most this many relays (0: the server's limit)
}

// Candidates answers GetCandidates, best first by the server's order
// (level, then load). An empty list means no capacity anywhere.
type Candidates struct {
	Stream     string      `json:"stream"`
	Candidates []Candidate `json:"candidates"`
}

// Candidate is one possible parent. Level, Clients and Capacity are the
// server's view (it placed the candidate and counts its children), the
// authority a requester scores with: a probe answer claiming a lower
// level or more free capacity is the candidate's word against it.
type Candidate struct {
	Node     string  `json:"node"`            // node id, or OriginID
	RTSP     string  `json:"rtsp"`            // host:port to pull from
	Probe    string  `json:"probe,omitempty"` // UDP probe address (none for the origin)
	Level    int     `json:"level"`           // 0 for the origin
	Clients  int     `json:"clients"`         // slots taken (all streams; origin: this stream): children and handover reservations
	Capacity int     `json:"capacity"`        // max children
	Cores    int     `json:"cores,omitempty"`
	CPU      float64 `json:"cpu,omitempty"` // last reported CPU busy, 0..1
	// PathMs is the RTT along the tree from the origin to the candidate,
	// the sum of the RTTs its chain reported to their parents (0 for the
	// origin, and for a chain that has reported none yet).
	PathMs float64 `json:"path_ms,omitempty"`
	// DisplaceMs, on a full candidate, is the RTT of its farthest child
	// to it: a requester that relays and is much closer (Displaces) may
	// join it anyway, taking that child's slot; the child moves under
	// the requester. 0: not offered for that.
	DisplaceMs float64 `json:"displace_ms,omitempty"`
}

// Joined tells the server the relay takes Parent as its upstream.
type Joined struct {
	Stream string `json:"stream"`
	Parent string `json:"parent"`          // node id or OriginID
	Level  int    `json:"level,omitempty"` // the level the relay expects; the server's is in Ack
	// RTTMs is the RTT to the parent the relay measured (0: unknown),
	// the server's measure of the path through it (Candidate.PathMs).
	RTTMs float64 `json:"rtt_ms,omitempty"`
	// Displace asks to take the slot of the parent's farthest child if
	// the parent is full (Candidate.DisplaceMs).
	Displace bool `json:"displace,omitempty"`
}

// Left tells the server the relay no longer receives Stream. When the
// relay still has children on it, the ack comes once they all switched
// away, or after Welcome.HandoverMs (see the package doc).
type Left struct {
	Stream string `json:"stream"`
}

// Report is the periodic state of a relay.
type Report struct {
	CPU     float64        `json:"cpu"`               // busy fraction of all cores, 0..1
	Willing *bool          `json:"willing,omitempty"` // nil: unchanged
	Clients int            `json:"clients"`           // readers of all streams (players and relays)
	Streams []StreamReport `json:"streams,omitempty"`
}

// StreamReport is one stream's part of a Report.
type StreamReport struct {
	Stream  string  `json:"stream"`
	Parent  string  `json:"parent"`
	Level   int     `json:"level"`
	Readers int     `json:"readers"`          // local players and child relays
	Loss    float64 `json:"loss"`             // frame loss rate from RTP sequence gaps, 0..1
	Bitrate float64 `json:"bitrate"`          // bits per second received
	RTTMs   float64 `json:"rtt_ms,omitempty"` // last measured RTT to the parent (0: unknown)
}

// Heartbeat keeps the connection alive; the server echoes it with re set.
type Heartbeat struct{}

// Reconnect tells a relay to re-resolve a stream (or switch to Target:
// send joined with it as the parent, then switch make-before-break).
type Reconnect struct {
	Stream string `json:"stream"`
	Reason string `json:"reason"` // Reason*
	// Parent is the parent the server had for the relay when it decided
	// (the failed or leaving node); a relay whose parent is already
	// another one has moved since and ignores the reconnect.
	Parent     string `json:"parent,omitempty"`
	Target     string `json:"target,omitempty"`      // node id (or OriginID) to switch to
	TargetRTSP string `json:"target_rtsp,omitempty"` // its RTSP address
}

// Drain tells a relay to hand its children over and leave the overlay.
type Drain struct {
	Reason string `json:"reason,omitempty"`
}

// Ack answers a joined or left.
type Ack struct {
	Level int `json:"level,omitempty"` // joined: the relay's level in the tree
}

// Error reports a failed request (re set) or a fatal condition (re 0).
type Error struct {
	Code    string `json:"code"` // Code*
	Message string `json:"message,omitempty"`
}

func (e *Error) Error() string { return e.Code + ": " + e.Message }

func (*Hello) Type() string         { return TypeHello }
func (*Welcome) Type() string       { return TypeWelcome }
func (*GetCandidates) Type() string { return TypeGetCandidates }
func (*Candidates) Type() string    { return TypeCandidates }
func (*Joined) Type() string        { return TypeJoined }
func (*Left) Type() string          { return TypeLeft }
func (*Report) Type() string        { return TypeReport }
func (*Heartbeat) Type() string     { return TypeHeartbeat }
func (*Reconnect) Type() string     { return TypeReconnect }
func (*Drain) Type() string         { return TypeDrain }
func (*Ack) Type() string           { return TypeAck }
func (*Error) Type() string         { return TypeError }

// newBody returns an empty body for a type, nil if the type is unknown.
func newBody(typ string) Body {
	switch typ {
	case TypeHello:
		return &Hello{}
	case TypeWelcome:
		return &Welcome{}
	case TypeGetCandidates:
		return &GetCandidates{}
	case TypeCandidates:
		return &Candidates{}
	case TypeJoined:
		return &Joined{}
	case TypeLeft:
		return &Left{}
	case TypeReport:
		return &Report{}
	case TypeHeartbeat:
		return &Heartbeat{}
	case TypeReconnect:
		return &Reconnect{}
	case TypeDrain:
		return &Drain{}
	case TypeAck:
		return &Ack{}
	case TypeError:
		return &Error{}
	}
	return nil
}

// Invalid returns an ErrInvalid naming what is wrong; the Check*
// helpers below build on it, for the Validate methods of every link.
func Invalid(format string, a ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalid, fmt.Sprintf(format, a...))
}

// CheckID validates a node id; origin says whether OriginID is allowed.
func CheckID(field, id string, origin bool) error {
	switch {
	case id == "":
		return Invalid("%s is empty", field)
	case len(id) > MaxNodeIDLen:
		return Invalid("%s is longer than %d bytes", field, MaxNodeIDLen)
	case !Printable(id):
		return Invalid("%s has control characters or invalid UTF-8", field)
	case !origin && id == OriginID:
		return Invalid("%s %q is reserved for the origin", field, OriginID)
	}
	return nil
}

// CheckStream validates a non-empty printable string of at most
// MaxStreamLen bytes (a stream key, a URL).
func CheckStream(field, s string) error {
	switch {
	case s == "":
		return Invalid("%s is empty", field)
	case len(s) > MaxStreamLen:
		return Invalid("%s is longer than %d bytes", field, MaxStreamLen)
	case !Printable(s):
		return Invalid("%s has control characters or invalid UTF-8", field)
	}
	return nil
}

// CheckAddr validates a host:port with a non-zero port; empty is
// accepted unless required.
func CheckAddr(field, a string, required bool) error {
	if a == "" {
		if required {
			return Invalid("%s is empty", field)
		}
		return nil
	}
	if len(a) > MaxStreamLen {
		return Invalid("%s is too long", field)
	}
	_, port, err := net.SplitHostPort(a)
	if err != nil {
		return Invalid("%s %.80q is not host:port", field, a)
	}
	if n, err := strconv.ParseUint(port, 10, 16); err != nil || n == 0 {
		return Invalid("%s %.80q has no valid port", field, a)
	}
	return nil
}

// CheckFraction validates a value in 0..1.
func CheckFraction(field string, f float64) error {
	if !(f >= 0 && f <= 1) {
		return Invalid("%s %v is outside 0..1", field, f)
	}
	return nil
}

// MaxMs bounds a duration in milliseconds carried as a number (an RTT,
// a path's): an hour, far above any real one.
const MaxMs = 3600e3

// CheckMs validates a duration in milliseconds: 0 (unknown) to MaxMs.
func CheckMs(field string, ms float64) error {
	if !(ms >= 0 && ms <= MaxMs) {
		return Invalid("%s %v is outside 0..%v", field, ms, MaxMs)
	}
	return nil
}

// CheckCount validates a non-negative count.
func CheckCount(field string, n int) error {
	if n < 0 {
		return Invalid("%s %d is negative", field, n)
	}
	return nil
}

// CheckLen validates a list length of at most MaxListLen.
func CheckLen(field string, n int) error {
	if n > MaxListLen {
		return Invalid("%s has more than %d entries", field, MaxListLen)
	}
	return nil
}

// Printable reports whether s is valid UTF-8 without control characters.
func Printable(s string) bool {
	if !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if r < 0x20 || r == 0x7f {
			return false
		}
	}
	return true
}

// Validate implements Body.
func (h *Hello) Validate() error {
	if err := CheckID("node", h.Node, false); err != nil {
		return err
	}
	if err := CheckAddr("rtsp", h.RTSP, h.Willing); err != nil {
		return err
	}
	if err := CheckAddr("probe", h.Probe, false); err != nil {
		return err
	}
	if err := CheckCount("capacity", h.Capacity); err != nil {
		return err
	}
	if err := CheckCount("cores", h.Cores); err != nil {
		return err
	}
	if err := CheckLen("streams", len(h.Streams)); err != nil {
		return err
	}
	seen := make(map[string]bool, len(h.Streams))
	for i, r := range h.Streams {
		if err := CheckStream(fmt.Sprintf("streams[%d].stream", i), r.Stream); err != nil {
			return err
		}
		if seen[r.Stream] {
			return Invalid("stream %.80q listed twice", r.Stream)
		}
		seen[r.Stream] = true
		if err := CheckID(fmt.Sprintf("streams[%d].parent", i), r.Parent, true); err != nil {
			return err
		}
		if r.Parent == h.Node {
			return Invalid("stream %.80q: node is its own parent", r.Stream)
		}
		if err := CheckAddr(fmt.Sprintf("streams[%d].parent_rtsp", i), r.ParentRTSP, false); err != nil {
			return err
		}
		if err := CheckCount(fmt.Sprintf("streams[%d].level", i), r.Level); err != nil {
			return err
		}
		if err := CheckMs(fmt.Sprintf("streams[%d].rtt_ms", i), r.RTTMs); err != nil {
			return err
		}
	}
	if len(h.Token) > MaxStreamLen {
		return Invalid("token is too long")
	}
	return nil
}

// Validate implements Body.
func (w *Welcome) Validate() error {
	if err := CheckID("node", w.Node, false); err != nil {
		return err
	}
	if w.Recovery == "" {
		return Invalid("recovery is empty")
	}
	if w.ReportMs <= 0 || w.HeartbeatMs <= 0 {
		return Invalid("report_ms and heartbeat_ms must be positive")
	}
	if w.HandoverMs < 0 || w.ReconnectStepMs < 0 {
		return Invalid("handover_ms and reconnect_step_ms must not be negative")
	}
	return nil
}

// Validate implements Body.
func (g *GetCandidates) Validate() error {
	if err := CheckStream("stream", g.Stream); err != nil {
		return err
	}
	if err := CheckLen("exclude", len(g.Exclude)); err != nil {
		return err
	}
	for i, id := range g.Exclude {
		if err := CheckID(fmt.Sprintf("exclude[%d]", i), id, true); err != nil {
			return err
		}
	}
	return CheckCount("max", g.Max)
}

// Validate implements Body.
func (c *Candidates) Validate() error {
	if err := CheckStream("stream", c.Stream); err != nil {
		return err
	}
	if err := CheckLen("candidates", len(c.Candidates)); err != nil {
		return err
	}
	for i, k := range c.Candidates {
		f := func(s string) string { return fmt.Sprintf("candidates[%d].%s", i, s) }
		if err := CheckID(f("node"), k.Node, true); err != nil {
			return err
		}
		if err := CheckAddr(f("rtsp"), k.RTSP, true); err != nil {
			return err
		}
		if err := CheckAddr(f("probe"), k.Probe, false); err != nil {
			return err
		}
		for _, e := range []error{
			CheckCount(f("level"), k.Level), CheckCount(f("clients"), k.Clients),
			CheckCount(f("capacity"), k.Capacity), CheckCount(f("cores"), k.Cores),
			CheckFraction(f("cpu"), k.CPU), CheckMs(f("path_ms"), k.PathMs), CheckMs(f("displace_ms"), k.DisplaceMs),
		} {
			if e != nil {
				return e
			}
		}
	}
	return nil
}

// Validate implements Body.
func (j *Joined) Validate() error {
	if err := CheckStream("stream", j.Stream); err != nil {
		return err
	}
	if err := CheckID("parent", j.Parent, true); err != nil {
		return err
	}
	if err := CheckMs("rtt_ms", j.RTTMs); err != nil {
		return err
	}
	return CheckCount("level", j.Level)
}

// Validate implements Body.
func (l *Left) Validate() error { return CheckStream("stream", l.Stream) }

// Validate implements Body.
func (r *Report) Validate() error {
	if err := CheckFraction("cpu", r.CPU); err != nil {
		return err
	}
	if err := CheckCount("clients", r.Clients); err != nil {
		return err
	}
	if err := CheckLen("streams", len(r.Streams)); err != nil {
		return err
	}
	for i, s := range r.Streams {
		f := func(n string) string { return fmt.Sprintf("streams[%d].%s", i, n) }
		if err := CheckStream(f("stream"), s.Stream); err != nil {
			return err
		}
		if s.Parent != "" {
			if err := CheckID(f("parent"), s.Parent, true); err != nil {
				return err
			}
		}
		for _, e := range []error{
			CheckCount(f("level"), s.Level), CheckCount(f("readers"), s.Readers),
			CheckFraction(f("loss"), s.Loss),
		} {
			if e != nil {
				return e
			}
		}
		if !(s.Bitrate >= 0) {
			return Invalid("%s %v is negative", f("bitrate"), s.Bitrate)
		}
		if err := CheckMs(f("rtt_ms"), s.RTTMs); err != nil {
			return err
		}
	}
	return nil
}

// Validate implements Body.
func (*Heartbeat) Validate() error { return nil }

// Validate implements Body.
func (r *Reconnect) Validate() error {
	if err := CheckStream("stream", r.Stream); err != nil {
		return err
	}
	if r.Reason == "" {
		return Invalid("reason is empty")
	}
	if r.Target != "" {
		if err := CheckID("target", r.Target, true); err != nil {
			return err
		}
	}
	return CheckAddr("target_rtsp", r.TargetRTSP, false)
}

// Validate implements Body.
func (*Drain) Validate() error { return nil }

// Validate implements Body.
func (a *Ack) Validate() error { return CheckCount("level", a.Level) }

// Validate implements Body.
func (e *Error) Validate() error {
	if e.Code == "" {
		return Invalid("code is empty")
	}
	return nil
}
