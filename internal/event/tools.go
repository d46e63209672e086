package event

import (
	"bytes"
	"encoding/json"

	"github.com/ocm-overlay/ocm/internal/fanoutapi"
)

// The events of rtp-fanout, of rtsp-mediator read, and of bench's floor.

func init() {
	register[FanoutReady]("from")
	register[SDP]("")
	register[FanoutStats]("in")
	register[Reply]("")
	register[ReadProgress]("")
	register[ReadSummary]("")
	register[FloorReady]("addr")
}

// FanoutReady is rtp-fanout's first line.
type FanoutReady struct {
	From string   `json:"from"` // the input address
	To   []string `json:"to"`   // the outputs at start
	SDP  string   `json:"sdp,omitempty"`
	// Version is the build (see --version).
	Version string `json:"version,omitempty"`
}

// SDP: rtp-fanout wrote the SDP of its input to Path.
type SDP struct {
	Path string `json:"path"`
}

// FanoutStats ("stats" with "in") counts rtp-fanout's traffic each
// --stats-interval: Out lists every output while there are at most
// --stats-detail, else Total and Worst stand in for it.
type FanoutStats struct {
	In      fanoutapi.InStats    `json:"in"`
	Drops   uint64               `json:"drops"`
	Outputs int                  `json:"outputs"`
	Out     []fanoutapi.OutStats `json:"out,omitempty"`
	Total   *fanoutapi.OutTotals `json:"out_total,omitempty"`
	Worst   []fanoutapi.OutStats `json:"worst,omitempty"` // with Total: the outputs that dropped, worst first
}

// NewFanoutStats is the stats line of s.
func NewFanoutStats(s fanoutapi.Summary) FanoutStats {
	e := FanoutStats{In: s.In, Drops: s.Drops, Outputs: s.Outputs, Out: s.Out}
	if s.Out == nil {
		total := s.Total
		e.Total, e.Worst = &total, s.Worst
		if e.Worst == nil {
			e.Worst = []fanoutapi.OutStats{}
		}
	}
	return e
}

// MarshalJSON keeps "out" when it is an empty list, and "worst" with
// "out_total" even when empty, as omitempty would not.
func (s FanoutStats) MarshalJSON() ([]byte, error) {
	type plain FanoutStats
	if s.Out != nil {
		return marshal(struct {
			plain
			Out []fanoutapi.OutStats `json:"out"`
		}{plain(s), s.Out})
	}
	return marshal(struct {
		plain
		Worst []fanoutapi.OutStats `json:"worst"`
	}{plain(s), s.Worst})
}

// Reply answers one rtp-fanout control line.
type Reply struct{ fanoutapi.Reply }

// ReadCounts is what rtsp-mediator read counted so far.
type ReadCounts struct {
	URL           string  `json:"url"`
	Packets       uint64  `json:"packets"`
	Frames        uint64  `json:"frames"`     // on the video tracks (all tracks without video)
	Lost          uint64  `json:"lost"`       // sequence gaps, per track
	Renumbered    uint64  `json:"renumbered"` // renumbering jumps (a restarted origin)
	FirstPacketMs float64 `json:"first_packet_ms"`
}

// ReadProgress ("progress") is printed by read each --interval.
type ReadProgress struct{ ReadCounts }

// ReadSummary ("summary") is read's last line.
type ReadSummary struct{ ReadCounts }

// FloorReady is the first line of bench's floor process: the TCP address
// its readers connect to.
type FloorReady struct {
	Addr string `json:"addr"`
}

func (FanoutReady) EventName() string  { return "ready" }
func (SDP) EventName() string          { return "sdp" }
func (FanoutStats) EventName() string  { return "stats" }
func (Reply) EventName() string        { return "reply" }
func (ReadProgress) EventName() string { return "progress" }
func (ReadSummary) EventName() string  { return "summary" }
func (FloorReady) EventName() string   { return "ready" }

// marshal is json.Marshal without HTML escaping, as Writer encodes.
func marshal(v any) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimRight(b.Bytes(), "\n"), nil
}
