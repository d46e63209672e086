package event

// The events of rtsp-mediator.

func init() {
	register[MediatorReady]("rtsp")
	register[Publisher]("")
	register[Redirect]("")
	register[Upstream]("")
	register[StreamStats]("stream")
	register[Conns]("")
}

// MediatorReady is rtsp-mediator's first line: where it listens and how
// it is set up.
type MediatorReady struct {
	RTSP        string `json:"rtsp"`     // the RTSP address, HOST:PORT
	Resolver    string `json:"resolver"` // --resolver
	Publish     bool   `json:"publish"`
	AllowOrigin string `json:"allow_origin"`
	MaxConns    int    `json:"max_conns"`
	RTP         string `json:"rtp,omitempty"`         // the UDP RTP address, without --rtp off
	RTCP        string `json:"rtcp,omitempty"`        // the UDP RTCP address
	TestSource  string `json:"test_source,omitempty"` // the URL of --test-source
	Metrics     string `json:"metrics,omitempty"`     // the --metrics address, HOST:PORT; "" when off
	Version     string `json:"version,omitempty"`     // the build (see --version)
}

// Publisher: a publisher announced a path, or left it.
type Publisher struct {
	Path    string `json:"path"`
	State   string `json:"state"`   // "announced" or "left"
	Packets uint64 `json:"packets"` // received, when it left (0 when announced)
}

// Redirect: a player was redirected to another host's mediator
// (--redirect).
type Redirect struct {
	Stream string `json:"stream"`
	To     string `json:"to"`
	Node   string `json:"node"` // the relay serving it, "" for the origin
}

// Upstream: a relayed stream's upstream changed state.
type Upstream struct {
	Stream   string `json:"stream"`
	State    string `json:"state"`              // "playing", "lost", "switch-failed" or "closed"
	Upstream string `json:"upstream,omitempty"` // the upstream URL, but when closed
	Node     string `json:"node,omitempty"`     // playing: the relay it comes from, if one
	Reason   string `json:"reason,omitempty"`   // lost, switch-failed: the error
}

// StreamStats ("stats" with "stream") counts one stream each
// --stats-interval: a published or test stream, or a relayed one.
type StreamStats struct {
	Stream     string `json:"stream"`
	Kind       string `json:"kind"` // "publish", "test" or "relay"
	Readers    int64  `json:"readers"`
	PacketsIn  uint64 `json:"packets_in"`
	PacketsOut uint64 `json:"packets_out"` // sent to readers, all together
	Lost       uint64 `json:"lost"`        // sequence gaps
	BitrateBPS uint64 `json:"bitrate_bps"` // received
	*RelayCounters
}

// RelayCounters are the counters of a relayed stream's stats, and only of
// those.
type RelayCounters struct {
	Upstream         string `json:"upstream,omitempty"` // the current upstream URL
	PacketsForwarded uint64 `json:"packets_forwarded"`
	Duplicates       uint64 `json:"duplicates"` // dropped while switching upstreams
	Switches         uint64 `json:"switches"`
}

// Conns counts the connection guard's refusals; printed with the stats
// when anything was refused, closed or failed since the last line.
type Conns struct {
	Open         int    `json:"open"`
	MaxConns     int    `json:"max_conns"`
	Refused      uint64 `json:"refused"`
	SilentClosed uint64 `json:"silent_closed"` // closed for saying nothing
	AcceptErrors uint64 `json:"accept_errors"`
}

func (MediatorReady) EventName() string { return "ready" }
func (Publisher) EventName() string     { return "publisher" }
func (Redirect) EventName() string      { return "redirect" }
func (Upstream) EventName() string      { return "upstream" }
func (StreamStats) EventName() string   { return "stats" }
func (Conns) EventName() string         { return "conns" }
