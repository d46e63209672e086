// Package sim is the tree-quality simulator of bench/scale: thousands of
// synthetic relays on a latency map (world.go) join one stream in
// process, through the real code a deployment runs: the server's
// candidate choice, promises and joins (internal/tree's Forest, with the
// server's k, near candidates and promise rule) and each relay's choice
// among them (internal/probe's Evaluate and Decide with DefaultWeights),
// fed probe answers whose RTT is the map's. Time is simulated (an event
// queue, milliseconds): one-way delays to the server and probe rounds
// follow from the map, the server's own processing time is taken as zero
// (the load part of bench/scale measures it). Everything is
// deterministic for a seed.
package sim

import (
	"container/heap"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/ocm-overlay/ocm/internal/probe"
	"github.com/ocm-overlay/ocm/internal/relay"
	"github.com/ocm-overlay/ocm/internal/server"
	"github.com/ocm-overlay/ocm/internal/tree"
	"github.com/ocm-overlay/ocm/internal/wire"
)

// Stream is the stream every simulated relay joins.
const Stream = "rtsp://origin.example:554/live"

// Config is one simulation's setting.
type Config struct {
	Relays int
	Seed   uint64
	// Random: each relay takes a random one of the eligible candidates
	// instead of the best scored (the baseline).
	Random bool
	// Nearby is the server's near candidates (0: server's default; <0:
	// none, the server as it was before them).
	Nearby         int
	MaxCandidates  int     // 0: the server's default
	OriginCapacity int     // 0: the server's default
	ArrivalPerS    float64 // relays arriving per second (0: DefaultArrivalPerS)
	// Place, if set, says where the hosts are (islands); nil: the
	// relays follow Regions' shares, the origin in OriginRegion.
	Place *Place
	// NoAdapt leaves out what the tree learns from latency: candidates'
	// paths, displacement and the relays' improvement rounds (the
	// selection before them).
	NoAdapt bool
}

// DefaultArrivalPerS is a flash crowd: the audience arrives within a
// minute or so, many relays resolving at the same moment.
const DefaultArrivalPerS = 200

// Model constants, taken from the tools' defaults.
const (
	stallMs     = 1000 // mediator.DefaultStallTimeout: no RTP this long is a lost upstream
	connectRTTs = 3    // RTSP DESCRIBE, SETUP, PLAY to a new parent before media flows
	sweepMs     = 2000 // server.DefaultHeartbeat: the server's periodic sweep
)

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// Sim is one simulated server and its relays.
type Sim struct {
	cfg     Config
	W       *World
	F       *tree.Forest
	rng     *rand.Rand
	weights probe.Weights
	now     float64 // ms
	q       events
	seq     int
	ids     []string // by host index; ids[0] is the origin
	idx     map[string]int
	dead    []bool
	// The relay's own view.
	parent  []int       // the parent it pulls from (-1: none)
	busy    []bool      // resolving
	queued  [][]wireMsg // reconnects that came while it was resolving
	joinAt  []float64   // when the server last attached it
	mediaAt []float64   // recovery: when its media flows again (after it rejoined)
	st      Counts
	pol     tree.Policy
	rec     *recState
	stalled int
	// adapting: the relays' improvement rounds go on (Adapt).
	adapting bool
}

// Counts are what the relays and the server did.
type Counts struct {
	Resolves int `json:"resolves"`        // get_candidates asked
	Joins    int `json:"joins"`           // joins accepted
	Refused  int `json:"join_refusals"`   // joins refused (full, mostly)
	Retries  int `json:"resolve_retries"` // candidate rounds in which no parent took the relay
	NoRoom   int `json:"requests_failed"` // resolves that ended without a parent (the viewer's request failed)
	Failed   int `json:"failed"`          // relays left without a parent (maxPlays requests failed)
	Notices  int `json:"reconnects"`      // reconnects sent by the server
	// Displaced is slots taken by displacement; Moves the relays' moves
	// after an improvement round (adapt.go).
	Displaced int `json:"displaced"`
	Moves     int `json:"improvement_moves"`
	Improves  int `json:"improvement_rounds"`
}

// wireMsg is a reconnect as the relay gets it.
type wireMsg struct {
	reason, parent, target string
}

// New places the relays and makes the server, nobody joined yet.
func New(cfg Config) *Sim {
	if cfg.MaxCandidates == 0 {
		cfg.MaxCandidates = server.DefaultMaxCandidates
	}
	if cfg.OriginCapacity == 0 {
		cfg.OriginCapacity = server.DefaultOriginCapacity
	}
	if cfg.Nearby == 0 {
		cfg.Nearby = server.DefaultNearCandidates
	}
	if cfg.ArrivalPerS <= 0 {
		cfg.ArrivalPerS = DefaultArrivalPerS
	}
	rng := rand.New(rand.NewPCG(cfg.Seed, 0x5ca1e))
	pl := Place{Region: -1}
	if cfg.Place != nil {
		pl = *cfg.Place
	}
	w := newWorld(cfg.Relays, rng, pl)
	s := &Sim{cfg: cfg, W: w, F: tree.New(cfg.OriginCapacity), rng: rng, weights: probe.DefaultWeights(),
		idx: map[string]int{}, pol: tree.Repair}
	s.F.SetNearby(max(cfg.Nearby, 0))
	s.F.SetDisplace(server.DefaultDisplace)
	if cfg.NoAdapt {
		s.F.SetDisplace(-1)
	}
	n := len(w.Hosts)
	s.ids = make([]string, n)
	s.ids[0] = tree.Origin
	s.idx[tree.Origin] = 0
	for i := 1; i < n; i++ {
		s.ids[i] = fmt.Sprintf("r%05d", i)
		s.idx[s.ids[i]] = i
	}
	s.dead = make([]bool, n)
	s.parent = make([]int, n)
	for i := range s.parent {
		s.parent[i] = -1
	}
	s.busy = make([]bool, n)
	s.queued = make([][]wireMsg, n)
	s.joinAt = make([]float64, n)
	s.mediaAt = make([]float64, n)
	return s
}

// Build makes every relay say hello and join, arriving at
// Config.ArrivalPerS in a random order, and runs until all are placed.
func (s *Sim) Build() {
	order := s.rng.Perm(len(s.ids) - 1)
	gap := 1000 / s.cfg.ArrivalPerS
	for k, j := range order {
		i := j + 1
		s.at(float64(k)*gap, func() {
			h := s.W.Hosts[i]
			info := tree.NodeInfo{ID: s.ids[i], RTSP: s.ids[i] + ":8554", Probe: s.ids[i] + ":7072",
				Willing: h.Capacity > 0, Capacity: h.Capacity, Cores: 4, Addr: h.Addr}
			if _, err := s.F.Hello(info, nil, s.pol, s.clock()); err != nil {
				panic(err) // ids are unique and not the origin's
			}
			s.resolve(i, nil, "")
		})
	}
	s.run(math.Inf(1))
}

// clock is the simulated time as the Forest's clock.
func (s *Sim) clock() time.Time { return t0.Add(time.Duration(s.now * float64(time.Millisecond))) }

// oneway is the delay between host i and the server (next to the origin).
func (s *Sim) oneway(i int) float64 { return s.W.RTT(i, 0) / 2 }

// resolving is one resolve of a relay: what it excludes and prefers, and
// its candidate rounds (internal/relay's resolveChoosing).
type resolving struct {
	exclude []string // what the resolve was asked to exclude
	prefer  string
	full    []string // parents found full in earlier rounds
	round   int      // rounds so far, the current one included
	start   float64
	backoff float64 // the next wait between rounds, ms
	plays   int     // the viewer's requests so far (a failed one is asked again)
}

// resolve is a relay asking for candidates, probing them and joining the
// first that accepts it; a round in which every parent was full is asked
// again, without them, up to relay.DefaultJoinAttempts rounds within
// relay.DefaultJoinWait (then the viewer's request fails: counted, and
// the player asks again a second later).
func (s *Sim) resolve(i int, exclude []string, prefer string) {
	s.busy[i] = true
	r := &resolving{exclude: exclude, prefer: prefer, start: s.now, round: 1, backoff: joinRetryMinMs, plays: 1}
	s.after(s.oneway(i), func() { s.serveCandidates(i, r) })
}

// The relay's bounds on a resolve's rounds (internal/relay).
const (
	joinAttempts   = relay.DefaultJoinAttempts
	joinWaitMs     = float64(relay.DefaultJoinWait / time.Millisecond)
	joinRetryMinMs = 50  // relay's joinRetryMin
	joinRetryMaxMs = 800 // relay's joinRetryMax
	replayMs       = 1000
	maxPlays       = 10 // a viewer asking this often without a parent counts as failed
)

// serveCandidates is the server's answer (internal/server's candidates:
// Candidates with its k, then a promise of the likely pick), the relay's
// probes and decision.
func (s *Sim) serveCandidates(i int, r *resolving) {
	if s.dead[i] {
		return
	}
	s.st.Resolves++
	s.F.ExpirePromises(s.clock())
	cs := s.F.Candidates(Stream, s.ids[i], slices.Concat(r.exclude, r.full), s.cfg.MaxCandidates)
	if pick, ok := server.LikelyPick(cs); ok {
		s.F.Promise(Stream, s.ids[i], pick, s.clock().Add(server.PromiseHold))
	}
	sel, probeMs := s.probe(i, cs)
	sel = probe.Decide(sel.Choices, r.prefer)
	var order []try
	var full []string
	for _, ch := range sel.Choices {
		switch {
		case ch.Eligible():
			order = append(order, tryOf(ch))
		case ch.Full():
			full = append(full, ch.Candidate.Node)
		}
	}
	if s.cfg.Random && len(order) > 1 {
		first := 0
		if sel.Choices[0].Preferred {
			first = 1
		}
		rest := order[first:]
		s.rng.Shuffle(len(rest), func(a, b int) { rest[a], rest[b] = rest[b], rest[a] })
	}
	s.after(s.oneway(i)+probeMs+s.oneway(i), func() { s.tryJoin(i, order, full, r) })
}

// probe is relay i probing the server's candidates cs (internal/probe's
// Evaluate on the map's RTTs) and how long the round takes.
func (s *Sim) probe(i int, cs []tree.Candidate) (probe.Selection, float64) {
	w := s.weights
	w.Displace = s.W.Hosts[i].Capacity > 0 && !s.cfg.NoAdapt // the relay relays
	timeout := float64(w.Timeout / time.Millisecond)
	probeMs := 0.0
	choices := make([]probe.Choice, 0, len(cs))
	for _, c := range cs {
		wc := wire.Candidate{Node: c.ID, RTSP: c.RTSP, Probe: c.Probe, Level: c.Level, Clients: c.Clients,
			Capacity: c.Capacity, Cores: c.Cores, CPU: min(max(c.CPU, 0), 1), PathMs: c.Path, DisplaceMs: c.Worst}
		if c.ID == tree.Origin {
			wc.Node = wire.OriginID
		}
		if s.cfg.NoAdapt {
			wc.PathMs, wc.DisplaceMs = 0, 0
		}
		j := s.idx[c.ID]
		rtt := s.W.RTT(i, j)
		res := probe.Result{RTT: time.Duration(rtt * float64(time.Millisecond)), Info: probe.CandidateInfo(wc)}
		if j != 0 {
			res.Info.CPU = s.W.Hosts[j].CPU // only the candidate knows it
		}
		if rtt > timeout {
			res = probe.Result{Err: probe.ErrNoAnswer}
		}
		probeMs = max(probeMs, min(rtt, timeout))
		choices = append(choices, probe.Evaluate(wc, res, w))
	}
	return probe.Selection{Choices: choices}, probeMs
}

// try is a parent a relay asks to join, as its choice gave it.
type try struct {
	node     string
	rtt      float64
	displace bool
}

func tryOf(ch probe.Choice) try {
	return try{ch.Candidate.Node, float64(ch.Result.RTT) / float64(time.Millisecond), ch.Displace}
}

// join is the server taking relay i's joined for t (internal/server's
// joined: JoinVia with the relay's RTT and displacement ask).
func (s *Sim) join(i int, t try) (int, tree.Result, error) {
	p := t.node
	if p == wire.OriginID {
		p = tree.Origin
	}
	res, err := s.F.JoinVia(Stream, s.ids[i], p, tree.Via{RTT: t.rtt, Displace: t.displace}, s.clock())
	if err != nil {
		return 0, res, err
	}
	s.st.Joins++
	s.st.Displaced += len(res.Displaced)
	j := s.idx[p]
	s.parent[i] = j
	s.joinAt[i] = s.now
	// The relay hears the ack, then its mediator connects to the parent.
	s.mediaAt[i] = s.now + s.oneway(i) + connectRTTs*s.W.RTT(i, j)
	return j, res, nil
}

// tryJoin joins the first of order the server accepts, one round trip
// per refusal; with none left, the round has failed (see resolve).
func (s *Sim) tryJoin(i int, order []try, full []string, r *resolving) {
	if s.dead[i] {
		return
	}
	if len(order) == 0 {
		s.roundFailed(i, full, r)
		return
	}
	_, res, err := s.join(i, order[0])
	if err != nil {
		s.st.Refused++
		if errors.Is(err, tree.ErrFull) {
			full = append(full, order[0].node)
		}
		s.after(2*s.oneway(i), func() { s.tryJoin(i, order[1:], full, r) })
		return
	}
	s.applied(res)
	s.after(s.oneway(i), func() { s.done(i) })
}

// roundFailed is the relay hearing that no parent took it: another round
// without those found full, or the viewer's request fails.
func (s *Sim) roundFailed(i int, full []string, r *resolving) {
	s.st.Retries++
	at := s.now + s.oneway(i) // the last answer reaches the relay
	if len(full) == 0 {
		r.full = nil // nothing offered: those found full may have room again
	}
	for _, n := range full {
		if !slices.Contains(r.full, n) {
			r.full = append(r.full, n)
		}
	}
	if r.round >= joinAttempts || at-r.start >= joinWaitMs {
		s.st.NoRoom++
		if r.plays >= maxPlays {
			s.st.Failed++
			s.done(i)
			return
		}
		// The viewer's request failed; its player asks again.
		r.plays++
		r.round, r.full, r.backoff = 1, nil, joinRetryMinMs
		s.at(at+replayMs, func() { r.start = s.now; s.serveCandidatesAfter(i, r) })
		return
	}
	d := min(r.backoff, joinWaitMs-(at-r.start))
	r.backoff = min(2*r.backoff, joinRetryMaxMs)
	r.round++
	s.at(at+d, func() { s.serveCandidatesAfter(i, r) })
}

// serveCandidatesAfter is the relay's next request reaching the server.
func (s *Sim) serveCandidatesAfter(i int, r *resolving) {
	s.after(s.oneway(i), func() { s.serveCandidates(i, r) })
}

// done ends a relay's resolve and takes the reconnect that came meanwhile,
// unless it is stale (about a parent it has already left).
func (s *Sim) done(i int) {
	s.busy[i] = false
	for len(s.queued[i]) > 0 && !s.busy[i] {
		m := s.queued[i][0]
		s.queued[i] = s.queued[i][1:]
		s.reconnect(i, m)
	}
}

// Run processes events until the queue is empty or the time is past end.
func (s *Sim) run(end float64) {
	for s.q.Len() > 0 {
		e := heap.Pop(&s.q).(event)
		if e.at > end {
			heap.Push(&s.q, e)
			return
		}
		s.now = e.at
		e.fn()
	}
}

// event is something happening at a simulated time.
type event struct {
	at  float64
	seq int
	fn  func()
}

type events []event

func (q events) Len() int { return len(q) }
func (q events) Less(a, b int) bool {
	return q[a].at < q[b].at || q[a].at == q[b].at && q[a].seq < q[b].seq
}
func (q events) Swap(a, b int) { q[a], q[b] = q[b], q[a] }
func (q *events) Push(x any)   { *q = append(*q, x.(event)) }
func (q *events) Pop() any {
	old := *q
	e := old[len(old)-1]
	*q = old[:len(old)-1]
	return e
}

func (s *Sim) at(t float64, fn func()) {
	s.seq++
	heap.Push(&s.q, event{at: t, seq: s.seq, fn: fn})
}

func (s *Sim) after(d float64, fn func()) { s.at(s.now+d, fn) }
