package probe

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/ocm-overlay/ocm/internal/defaults"
	"github.com/ocm-overlay/ocm/internal/wire"
)

// Weights are the selection rule's parameters. The score of an eligible
// candidate, lower is better, is
//
//	rtt_ms + Path*path_ms + Load*clients/capacity + Level*level + CPU*cpu_busy
//
// and a candidate is eligible if it answered within Timeout, is willing,
// has free capacity (or may be displaced, see Displace), is less busy
// than MaxCPU and sits above MaxLevel. clients/capacity is the used part
// of the capacity (relay children); path_ms is the server's RTT along
// the tree from the origin to the candidate, so rtt_ms + path_ms is
// where the stream would come from.
type Weights struct {
	Path  float64 // per ms of the candidate's path from the origin
	Load  float64 // per unit of load (clients/capacity, 0..1)
	Level float64 // per level of depth below the origin
	CPU   float64 // per unit of CPU busy (0..1)
	// MaxCPU rejects candidates at least this busy (0: DefaultMaxCPU;
	// above 1: no ceiling).
	MaxCPU float64
	// MaxLevel rejects candidates at this level or deeper, so no relay
	// ends up deeper than MaxLevel (0: DefaultMaxLevel).
	MaxLevel int
	// Timeout bounds each probe (0: DefaultTimeout).
	Timeout time.Duration
	// Displace: the relay relays (it can take a displaced child), so a
	// full candidate offered for displacement (wire.Candidate.DisplaceMs)
	// it is close enough to (wire.Displaces) is eligible.
	Displace bool
}

// Default weights. An RTT millisecond is the unit: a full relay costs as
// much as 20 ms more of RTT, one more level of depth 5 ms (each level adds
// a hop of jitter and a point of failure), a fully busy CPU 30 ms.
const (
	DefaultWPath    = 0
	DefaultWLoad    = 20
	DefaultWLevel   = 5
	DefaultWCPU     = 30
	DefaultMaxCPU   = 0.9
	DefaultMaxLevel = 16
)

// DefaultWeights returns the default selection rule.
func DefaultWeights() Weights {
	return Weights{
		Path:     DefaultWPath,
		Load:     DefaultWLoad,
		Level:    DefaultWLevel,
		CPU:      DefaultWCPU,
		MaxCPU:   DefaultMaxCPU,
		MaxLevel: DefaultMaxLevel,
		Timeout:  DefaultTimeout,
	}
}

func (w Weights) withDefaults() Weights {
	defaults.Set(&w.MaxCPU, DefaultMaxCPU)
	defaults.Set(&w.MaxLevel, DefaultMaxLevel)
	defaults.Set(&w.Timeout, DefaultTimeout)
	return w
}

// Terms are the weighted parts of a score.
type Terms struct {
	RTT   float64 `json:"rtt_ms"`
	Path  float64 `json:"path_ms"`
	Load  float64 `json:"load"`
	Level float64 `json:"level"`
	CPU   float64 `json:"cpu"`
}

// Sum is the score.
func (t Terms) Sum() float64 { return t.RTT + t.Path + t.Load + t.Level + t.CPU }

// Choice is one candidate with its probe, the metrics the rule used, its
// score and, if it cannot be chosen, why.
type Choice struct {
	Candidate wire.Candidate
	Result    Result
	// The metrics scored: the server's level and load where it gave them
	// (the probe's answer only where it is worse, see Evaluate), the
	// probe's CPU and willingness.
	// Clients are the children counted against Capacity.
	Level, Clients, Capacity, FreeCapacity int
	CPU                                    float64
	Willing                                bool
	Terms                                  Terms
	Score                                  float64 // Terms.Sum(); 0 when the candidate did not answer
	Rejected                               string  // reason; "" if eligible
	OverCPU                                bool    // rejected only for its CPU ceiling
	// Overridden lists the probe's claims that contradicted the server's
	// view and were replaced by it ("" if none): see Evaluate.
	Overridden string
	// Waived is the CPU ceiling's rejection, set aside because no
	// candidate was eligible (Selection.LastResort).
	Waived string
	// Preferred: taken first as the old parent, whatever its score.
	Preferred bool
	// Displace: full, but the relay may take its farthest child's slot
	// (Weights.Displace); the join asks for it.
	Displace bool
}

// Latency is where the stream would come from through the choice: the
// measured RTT to it plus its path from the origin, in ms.
func (c Choice) Latency() float64 {
	return float64(c.Result.RTT)/float64(time.Millisecond) + c.Candidate.PathMs
}

// Eligible reports whether the choice passed every filter (or, as a last
// resort, had its CPU ceiling waived: see Decide).
func (c Choice) Eligible() bool { return c.Rejected == "" }

// Full reports whether the choice was rejected for want of a free slot
// (and for nothing before it): a reason that may pass as the tree grows.
func (c Choice) Full() bool {
	return c.Rejected != "" && c.Willing && c.Level >= 0 && c.FreeCapacity <= 0
}

// LastResort returns, when no choice is eligible, those rejected only for
// their CPU ceiling, best first: when every host is busy (a loaded lab
// machine, a busy event), a busy parent is better than no video at all.
func LastResort(cs []Choice) []Choice {
	var out []Choice
	for _, c := range cs {
		if c.Eligible() {
			return nil
		}
		if c.OverCPU {
			out = append(out, c)
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Score < out[j].Score })
	return out
}

// Selection is a relay's decision over its candidates, and its
// explanation: Choices holds every candidate in the order a relay tries
// them (it joins the first the server accepts), so Choices[0], when
// eligible, is the parent a relay picks.
type Selection struct {
	Choices []Choice
	// LastResort: no candidate passed every filter, so those rejected
	// only for the CPU ceiling come first, eligible, their rejection kept
	// in Choice.Waived.
	LastResort bool
}

// Winner returns the choice a relay takes first, if any.
func (s Selection) Winner() (Choice, bool) {
	if len(s.Choices) == 0 || !s.Choices[0].Eligible() {
		return Choice{}, false
	}
	return s.Choices[0], true
}

// Select probes every candidate in parallel (each within w.Timeout, all
// within ctx) and decides as a relay does (see Decide). ocm-relay and
// ocm-probe --explain both rank with it, so the explanation is the
// relay's choice.
func Select(ctx context.Context, cands []wire.Candidate, stream string, w Weights, prefer string) Selection {
	w = w.withDefaults()
	res := ProbeAll(ctx, cands, stream, w.Timeout)
	out := make([]Choice, len(cands))
	for i, c := range cands {
		out[i] = Evaluate(c, res[i], w)
	}
	return Decide(out, prefer)
}

// Decide orders evaluated choices the way a relay tries them: the
// eligible ones first, best score first (see Rank), then the rejected
// ones in their original order; prefer (a node id, "" for none), the old
// parent a relay goes back under after an ancestor failed, comes first
// whenever it is eligible, whatever its score, so the tree keeps its
// shape; and when no choice is eligible, the ones rejected only for the
// CPU ceiling are taken as a last resort (see LastResort).
func Decide(cs []Choice, prefer string) Selection {
	cs = slices.Clone(cs)
	Rank(cs)
	if prefer != "" {
		for i, c := range cs {
			if c.Candidate.Node == prefer && c.Eligible() {
				c.Preferred = true
				cs = slices.Concat([]Choice{c}, cs[:i], cs[i+1:])
				break
			}
		}
	}
	busy := LastResort(cs)
	if len(busy) == 0 {
		return Selection{Choices: cs}
	}
	out := make([]Choice, 0, len(cs))
	for _, c := range busy {
		c.Waived, c.Rejected = c.Rejected, ""
		out = append(out, c)
	}
	for _, c := range cs {
		if !c.OverCPU {
			out = append(out, c)
		}
	}
	return Selection{Choices: out, LastResort: true}
}

// Rank sorts choices: the eligible ones first, best score first, then the
// rejected ones in their original order. Ties go to the shallower,
// then the closer candidate, then by node id, so the order is stable.
func Rank(cs []Choice) {
	slices.SortStableFunc(cs, func(a, b Choice) int {
		if a.Eligible() != b.Eligible() {
			if a.Eligible() {
				return -1
			}
			return 1
		}
		if !a.Eligible() {
			return 0
		}
		return cmp.Or(
			cmp.Compare(a.Score, b.Score),
			cmp.Compare(a.Level, b.Level),
			cmp.Compare(a.Result.RTT, b.Result.RTT),
			cmp.Compare(a.Candidate.Node, b.Candidate.Node),
		)
	})
}

// Evaluate applies the rule to one candidate and its probe result.
//
// The server is the authority on a candidate's place and load: it placed
// the candidate in the tree (Level) and counts the children it gave it
// (Clients of Capacity), while the probe answer is whatever the candidate
// says about itself. Where the candidate carries the server's view, a
// probe answer can only make the candidate look worse, never better: a
// shallower level or more free capacity than the server's is overridden
// (and noted in Choice.Overridden), so a relay lying about itself gains
// nothing. Disagreeing is not taken as proof of lying (the probe may run
// between a move and the server's answer); an answer from another node
// than the one offered is: it is rejected, since nothing it measured
// belongs to the candidate. The probe still measures the RTT and gives
// the CPU, which only the candidate knows.
func Evaluate(c wire.Candidate, r Result, w Weights) Choice {
	w = w.withDefaults()
	ch := Choice{Candidate: c, Result: r, Level: c.Level, Clients: c.Clients, Capacity: c.Capacity, CPU: c.CPU}
	if r.Err != nil {
		ch.Rejected = FailureReason(r.Err, w.Timeout)
		return ch
	}
	in := r.Info
	if c.Node != "" && in.Node != "" && in.Node != c.Node {
		ch.Rejected = fmt.Sprintf("probe answered by node %q, not %q", in.Node, c.Node)
		return ch
	}
	ch.FreeCapacity, ch.CPU, ch.Willing = in.FreeCapacity, in.CPU, in.Willing
	var overridden []string
	// Capacity bounds relay children. The server is its authority (it
	// refuses a join over capacity) and counts the children its tree has,
	// reserved slots included; the relay itself counts the relays reading
	// from it, which during a rebuild still includes children the server
	// already moved or dropped and that are on their way out. Trust the
	// server where it gave a capacity, else the answer.
	if c.Capacity > 0 {
		if free := c.Capacity - c.Clients; in.FreeCapacity > free {
			overridden = append(overridden, fmt.Sprintf("free capacity %d (server: %d)", in.FreeCapacity, free))
		}
		ch.Capacity = c.Capacity
		ch.Clients = c.Clients
		ch.FreeCapacity = c.Capacity - c.Clients
	} else {
		ch.Capacity = in.Clients + in.FreeCapacity
		ch.Clients = in.Clients
	}
	// The server's level for a relay is 1 or more (only the origin is at
	// 0, and the origin is probed over RTSP, with the candidate's own
	// fields as its answer); 0 means the server gave none (ocm-probe on
	// bare addresses). A deeper level in the answer is taken (the relay
	// may have moved down since), a shallower one is not. Level -1 means
	// "not relaying it" or, with no stream asked, "don't know": the
	// server's level then, if it has one.
	ch.Level = in.Level
	switch {
	case c.Level > 0 && in.Level < 0:
		ch.Level = c.Level
	case c.Level > 0 && in.Level < c.Level:
		overridden = append(overridden, fmt.Sprintf("level %d (server: %d)", in.Level, c.Level))
		ch.Level = c.Level
	}
	if len(overridden) > 0 {
		ch.Overridden = "claims " + strings.Join(overridden, ", ")
	}

	load := 1.0 // no capacity known: as good as full
	if ch.Capacity > 0 {
		load = float64(ch.Clients) / float64(ch.Capacity)
	}
	ch.Terms = Terms{
		RTT:   float64(r.RTT) / float64(time.Millisecond),
		Path:  w.Path * c.PathMs,
		Load:  w.Load * load,
		Level: w.Level * float64(max(ch.Level, 0)),
		CPU:   w.CPU * ch.CPU,
	}
	ch.Score = ch.Terms.Sum()

	switch {
	case !ch.Willing:
		ch.Rejected = "not willing"
	case ch.Level < 0:
		ch.Rejected = "does not relay the stream"
	case ch.FreeCapacity <= 0 && w.Displace && wire.Displaces(ch.Terms.RTT, c.DisplaceMs):
		ch.Displace = true // and on to the other filters
		ch.Rejected, ch.OverCPU = otherFilters(ch, w)
	case ch.FreeCapacity <= 0:
		ch.Rejected = fmt.Sprintf("no free capacity (%d clients of %d)", ch.Clients, ch.Capacity)
	default:
		ch.Rejected, ch.OverCPU = otherFilters(ch, w)
	}
	return ch
}

// otherFilters are the filters after willingness and capacity: the
// level, then the CPU ceiling (last: OverCPU means the CPU is the only
// reason, which the last resort may waive (LastResort); it waives
// nothing else).
func otherFilters(ch Choice, w Weights) (reason string, overCPU bool) {
	switch {
	case ch.Level >= w.MaxLevel:
		return fmt.Sprintf("level %d, max %d", ch.Level, w.MaxLevel), false
	case ch.CPU >= w.MaxCPU:
		return fmt.Sprintf("CPU %.0f%% busy, max %.0f%%", ch.CPU*100, w.MaxCPU*100), true
	}
	return "", false
}

// FailureReason says in a few words why a probe failed: "no answer
// within 300ms", "unreachable: connection refused", "not RTSP", ...
func FailureReason(err error, timeout time.Duration) string {
	switch {
	case errors.Is(err, ErrNoAnswer):
		return fmt.Sprintf("no answer within %v", timeout)
	case errors.Is(err, context.Canceled):
		return "cancelled"
	case errors.Is(err, syscall.ECONNREFUSED):
		return "unreachable: connection refused"
	case errors.Is(err, ErrNotRTSP):
		return "not RTSP"
	}
	return "unreachable: " + err.Error()
}

// Moving to a better parent (a relay's improvement round): a relay that
// receives a stream asks for candidates again now and then, its current
// parent among them (the server offers it while it is attached), and
// moves, make-before-break, when another parent brings the stream
// sooner by at least ImproveMinGainMs and ImproveShare of the current
// latency (Choice.Latency): small gains are not worth a switch, and the
// margin keeps relays from trading places back and forth.
const (
	ImproveMinGainMs = 5
	ImproveShare     = 0.2
)

// Improve returns the eligible choice of sel a relay receiving through
// current (a node id, wire.OriginID for the origin) should move to, if
// one is enough better (see ImproveMinGainMs). The current parent must be
// among the choices and have answered its probe: without its latency
// there is nothing to compare with.
func Improve(sel Selection, current string) (Choice, bool) {
	i := slices.IndexFunc(sel.Choices, func(c Choice) bool { return c.Candidate.Node == current })
	if i < 0 || sel.Choices[i].Result.Err != nil {
		return Choice{}, false
	}
	cur := sel.Choices[i].Latency()
	need := max(ImproveMinGainMs, ImproveShare*cur)
	var best Choice
	found := false
	for _, c := range sel.Choices {
		if c.Candidate.Node == current || !c.Eligible() || c.Result.Err != nil {
			continue
		}
		if l := c.Latency(); cur-l >= need && (!found || improveCost(c) < improveCost(best)) {
			best, found = c, true
		}
	}
	return best, found
}

// ImproveRTTWeight is the weight of the RTT to a parent against its path
// when a relay ranks the parents it could move to: the nearer parent
// wins over one whose path is shorter by as much, so the relays of one
// area gather under a few that cross to the next (one copy crossing,
// not one per relay).
const ImproveRTTWeight = 2

func improveCost(c Choice) float64 {
	return ImproveRTTWeight*float64(c.Result.RTT)/float64(time.Millisecond) + c.Candidate.PathMs
}
