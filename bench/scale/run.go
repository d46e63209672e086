package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/url"
	"os"
	"sort"
	"sync"
	"time"

	"github.com/ocm-overlay/ocm/internal/api"
	"github.com/ocm-overlay/ocm/internal/lab"
	ocmrelay "github.com/ocm-overlay/ocm/internal/relay"
	"github.com/ocm-overlay/ocm/internal/retry"
)

// result is one run's figures (one batch size, one fresh server).
type result struct {
	Relays    int     `json:"relays"`
	Batch     int     `json:"batch"`
	Joined    int     `json:"joined"`
	Failed    int     `json:"failed"`   // no parent within --join-timeout
	Attached  int     `json:"attached"` // in the tree after the steady phase
	Error     string  `json:"error,omitempty"`
	JoinsPerS float64 `json:"joins_per_s"`
	// The get_candidates round trip seen by the relays: on one host the
	// load process shares the cores with the server, so this includes
	// waiting for the load process's own goroutines to run.
	DecisionP50 float64 `json:"decision_ms_p50"`
	DecisionP99 float64 `json:"decision_ms_p99"`
	// The server's share of it, from its histograms: the decision in the
	// state goroutine, and the wait for that goroutine before it (-1: the
	// server has no such histogram).
	ServerDecisionP50 float64 `json:"server_decision_ms_p50"`
	ServerDecisionP99 float64 `json:"server_decision_ms_p99"`
	ServerQueueP50    float64 `json:"server_queue_ms_p50"`
	ServerQueueP99    float64 `json:"server_queue_ms_p99"`
	Decisions         int     `json:"decisions"`
	FullPerJoin       float64 `json:"full_per_join"`
	FirstAllFull      int     `json:"first_try_all_full"` // relays whose first candidates were all full
	Retries           int     `json:"candidate_retries"`  // get_candidates asked again after no parent accepted
	OtherRefused      int     `json:"other_refusals"`
	RSSBytes          int64   `json:"server_rss_bytes"`
	BytesPerNode      float64 `json:"bytes_per_node"`
	CPUJoining        float64 `json:"cpu_joining"`              // cores
	LoadCPU           float64 `json:"load_process_cpu_joining"` // this process's cores while joining (it shares the host)
	LoadAvg           float64 `json:"host_loadavg_1m"`          // after joining: context for every figure on a shared host
	SteadyCPU         float64 `json:"steady_cpu_fraction"`      // cores
	HeartbeatP99      float64 `json:"heartbeat_ms_p99_steady"`
	HBFailures        int     `json:"heartbeat_failures"`
	// The relays' improvement rounds (a get_candidates each): those in
	// the steady window (few: it ends before the first is due), the
	// server's cores in the window of their first round and the rounds
	// in it, one round's server CPU time, and the steady state once the
	// rounds have settled at one per relay per relay.MaxImproveEvery.
	SteadyRounds  int     `json:"improve_rounds_steady"`
	ImproveCPU    float64 `json:"improve_first_round_cpu_fraction"`
	ImproveRounds int     `json:"improve_first_round_rounds"`
	RoundCPUMs    float64 `json:"improve_round_cpu_ms"`
	LongRunCPU    float64 `json:"steady_cpu_fraction_settled"`
	TreeAPIMs     float64 `json:"tree_api_ms"`
	TreeAPIBytes  int     `json:"tree_api_bytes"`
	Depth         int     `json:"depth"`
	// Repair of a relay with about --kill descendants.
	RecoveryMs          float64 `json:"recovery_ms_1000_descendants"`
	RecoveryTreeMs      float64 `json:"recovery_tree_ms"` // until the API shows no orphan
	RecoveryDescendants int     `json:"recovery_descendants"`
	RecoveryOrphans     int     `json:"recovery_orphans"`
	RecoveryRejoined    int     `json:"recovery_rejoined"`
	RecoveryDepthAfter  int     `json:"recovery_depth_after"`
	ServerLogLines      int64   `json:"server_log_lines"`
	ServerEvents        int64   `json:"server_events"`
}

// rejoin is a relay joining again after a reconnect.
type rejoin struct {
	id string
	at time.Time
}

func runOnce(ctx context.Context, o options, bin string, batch int, stderr io.Writer) (result, error) {
	res := result{Relays: o.relays, Batch: batch, ServerDecisionP50: -1, ServerDecisionP99: -1,
		ServerQueueP50: -1, ServerQueueP99: -1}
	var srv *serverProc
	if o.server != "" {
		srv = &serverProc{ocm: o.server, http: o.httpAddr, pid: o.serverPID}
	} else {
		var env []string
		if o.cpuProfile != "" {
			env = append(env, fmt.Sprintf("OCM_CPUPROFILE=%s-b%d", o.cpuProfile, batch))
		}
		if o.memProfile != "" {
			env = append(env, fmt.Sprintf("OCM_MEMPROFILE=%s-b%d", o.memProfile, batch))
		}
		var err error
		if srv, err = startServer(ctx, bin, o.serverArgs, env, o.serverCPUs); err != nil {
			return res, err
		}
		defer srv.stop()
	}
	time.Sleep(300 * time.Millisecond)
	rss0, err := srv.rss()
	if err != nil {
		return res, err
	}

	rctx, cancel := context.WithCancel(ctx)
	var relays sync.WaitGroup
	defer func() { cancel(); relays.Wait() }()
	st := &stats{}
	rejoins := make(chan rejoin, o.relays)
	onJoin := func(r *relay, at time.Time, again bool) {
		if again {
			select {
			case rejoins <- rejoin{r.id, at}:
			default:
			}
		}
	}
	byID := map[string]*relay{}
	var mu sync.Mutex

	// Join phase: batch relays at a time, the next batch once every relay
	// of this one has a parent (or gave up).
	cpu := srv.cpuStart()
	self := (&serverProc{pid: os.Getpid()}).cpuStart()
	t0 := time.Now()
	var lastJoin time.Time
	var firstErr error
	for start := 0; start < o.relays; start += batch {
		var wg sync.WaitGroup
		for i := start; i < min(start+batch, o.relays); i++ {
			r := &relay{id: fmt.Sprintf("r%05d", i), stream: o.stream, cap: o.capacity, stats: st, onJoin: onJoin,
				improveEvery: o.improveEvery}
			wg.Add(1)
			go func() {
				defer wg.Done()
				err := r.connect(rctx, srv.ocm, 20000+i%40000)
				if err == nil {
					err = r.join(rctx, nil, time.Now().Add(o.joinTimeout))
				}
				mu.Lock()
				defer mu.Unlock()
				if err != nil {
					res.Failed++
					if firstErr == nil {
						firstErr = fmt.Errorf("%s: %w", r.id, err)
					}
					if r.cl != nil {
						r.cl.Close()
					}
					return
				}
				res.Joined++
				lastJoin = time.Now()
				byID[r.id] = r
				relays.Add(1)
				go func() { defer relays.Done(); defer r.cl.Close(); r.run(rctx, o.joinTimeout) }()
			}()
		}
		wg.Wait()
		if ctx.Err() != nil {
			return res, ctx.Err()
		}
	}
	res.CPUJoining, res.LoadCPU, res.LoadAvg = cpu.done(), self.done(), lab.LoadAverage()
	if res.Joined > 0 {
		res.JoinsPerS = float64(res.Joined) / lastJoin.Sub(t0).Seconds()
	}
	if firstErr != nil {
		fmt.Fprintf(stderr, "scale: %d relays failed to join; first: %v\n", res.Failed, firstErr)
	}
	st.mu.Lock()
	res.DecisionP50, res.DecisionP99 = percentile(st.decisions, 0.5), percentile(st.decisions, 0.99)
	res.Decisions = len(st.decisions)
	if res.Joined > 0 {
		res.FullPerJoin = float64(st.fulls) / float64(res.Joined)
	}
	res.FirstAllFull, res.Retries, res.OtherRefused = st.firstAllFull, st.retries, st.others
	st.mu.Unlock()
	fmt.Fprintf(stderr, "scale: joined %d in %.1fs\n", res.Joined, lastJoin.Sub(t0).Seconds())
	if o.server == "" { // a fresh server: its histograms hold this join phase only
		t, err := srv.scrapeServerTimes(ctx)
		if err != nil {
			return res, fmt.Errorf("scrape the server's decision times: %w", err)
		}
		res.ServerDecisionP50, res.ServerDecisionP99 = t.decisionP50, t.decisionP99
		res.ServerQueueP50, res.ServerQueueP99 = t.queueP50, t.queueP99
	}

	// Steady state: reports and heartbeats, before the relays' first
	// improvement round (ocm-relay's --improve-every after its join,
	// give or take a quarter); then the window of that first round, the
	// busiest of the rounds (they double their wait from there on).
	if !retry.Sleep(ctx, 2*time.Second) {
		return res, ctx.Err()
	}
	rounds := func() int { st.mu.Lock(); defer st.mu.Unlock(); return st.improveRounds }
	st.resetHeartbeats()
	r0 := rounds()
	cpu = srv.cpuStart()
	if !retry.Sleep(ctx, o.steady) {
		return res, ctx.Err()
	}
	res.SteadyCPU = cpu.done()
	st.mu.Lock()
	res.HeartbeatP99, res.HBFailures = percentile(st.heartbeats, 0.99), st.heartbeatFails
	st.mu.Unlock()
	res.SteadyRounds = rounds() - r0
	if o.improveWindow > 0 {
		r1 := rounds()
		cpu = srv.cpuStart()
		if !retry.Sleep(ctx, o.improveWindow) {
			return res, ctx.Err()
		}
		res.ImproveCPU = cpu.done()
		res.ImproveRounds = rounds() - r1
		res.LongRunCPU = res.SteadyCPU
		if res.ImproveRounds > res.SteadyRounds {
			// Each round's cost, from the two windows; settled, every
			// relay asks once per relay.MaxImproveEvery.
			perRound := (res.ImproveCPU - res.SteadyCPU) * o.improveWindow.Seconds() / float64(res.ImproveRounds-res.SteadyRounds)
			res.RoundCPUMs = 1000 * max(perRound, 0) // below zero: within the noise
			res.LongRunCPU = res.SteadyCPU + max(perRound, 0)*float64(res.Joined)/ocmrelay.MaxImproveEvery.Seconds()
		}
	}
	if res.RSSBytes, err = srv.rss(); err != nil {
		return res, err
	}
	if res.Joined > 0 && srv.pid != 0 {
		res.BytesPerNode = float64(res.RSSBytes-rss0) / float64(res.Joined)
	}
	if o.memProfile != "" && srv.cmd != nil {
		if err := srv.memProfile(ctx, fmt.Sprintf("%s-b%d", o.memProfile, batch)); err != nil {
			fmt.Fprintf(stderr, "scale: memory profile: %v\n", err)
		}
	}

	// The tree API, three times: the median.
	path := "/api/v1/tree?stream=" + url.QueryEscape(o.stream)
	var body []byte
	var times []time.Duration
	for range 3 {
		b, d, err := srv.get(ctx, path)
		if err != nil {
			return res, err
		}
		body, times = b, append(times, d)
	}
	sort.Slice(times, func(i, j int) bool { return times[i] < times[j] })
	res.TreeAPIMs, res.TreeAPIBytes = float64(times[1].Microseconds())/1000, len(body)
	var tr api.Tree
	if err := json.Unmarshal(body, &tr); err != nil {
		return res, fmt.Errorf("tree API answer: %w", err)
	}
	res.Depth = tr.Depth
	attached := 0
	for _, m := range tr.Nodes {
		if m.Attached {
			attached++
		}
	}
	res.Attached = attached
	if attached != res.Joined {
		// Relays the server dropped meanwhile (missed heartbeats): a
		// result, not a reason to stop.
		fmt.Fprintf(stderr, "scale: the tree holds %d attached relays, %d joined\n", attached, res.Joined)
	}

	if o.kill > 0 && res.Joined > 1 {
		if err := repair(ctx, o, srv, tr, byID, rejoins, &res); err != nil {
			return res, err
		}
	}
	res.ServerLogLines, res.ServerEvents = srv.logLines.Load(), srv.events.Load()
	return res, nil
}

// repair disconnects the relay whose descendants are closest to o.kill
// and times until each of its children (the orphans: under the repair
// policy grandchildren keep their parents) has joined again, then until
// the API shows no orphan.
func repair(ctx context.Context, o options, srv *serverProc, tr api.Tree, byID map[string]*relay,
	rejoins chan rejoin, res *result) error {
	kids := map[string][]string{}
	for _, m := range tr.Nodes {
		kids[m.Node] = m.Children
	}
	size := map[string]int{}
	var count func(id string) int
	count = func(id string) int {
		n := 1
		for _, c := range kids[id] {
			n += count(c)
		}
		size[id] = n
		return n
	}
	for _, c := range tr.Origin.Children {
		count(c)
	}
	// The smallest subtree with at least o.kill descendants; the largest
	// if none has that many.
	victim, best := "", math.MaxInt
	for id, n := range size {
		d := n - 1 - o.kill
		if d < 0 {
			d = math.MaxInt/2 - (n - 1)
		}
		if d < best || d == best && id < victim {
			victim, best = id, d
		}
	}
	v := byID[victim]
	if v == nil {
		return fmt.Errorf("no relay %s to disconnect", victim)
	}
	orphans := map[string]bool{}
	for _, c := range kids[victim] {
		orphans[c] = true
	}
	res.RecoveryDescendants, res.RecoveryOrphans = size[victim]-1, len(orphans)
	for len(rejoins) > 0 {
		<-rejoins
	}
	tKill := time.Now()
	v.cl.Close()
	limit := time.NewTimer(30 * time.Second)
	defer limit.Stop()
	var last time.Time
	for res.RecoveryRejoined < len(orphans) {
		select {
		case j := <-rejoins:
			if orphans[j.id] {
				orphans[j.id] = false
				res.RecoveryRejoined++
				last = j.at
			}
		case <-limit.C:
			return fmt.Errorf("repair: %d of %d orphans rejoined within 30s", res.RecoveryRejoined, len(orphans))
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	res.RecoveryMs = float64(last.Sub(tKill).Microseconds()) / 1000
	want := res.Attached - 1
	for {
		b, _, err := srv.get(ctx, "/api/v1/streams")
		if err != nil {
			return err
		}
		var ss []api.Stream
		if err := json.Unmarshal(b, &ss); err != nil {
			return fmt.Errorf("streams API answer: %w", err)
		}
		for _, s := range ss {
			if s.Stream == o.stream && s.Attached == want && s.Orphans == 0 {
				res.RecoveryTreeMs = float64(time.Since(tKill).Microseconds()) / 1000
				res.RecoveryDepthAfter = s.Depth
				return nil
			}
		}
		if time.Since(tKill) > 30*time.Second {
			return fmt.Errorf("repair: the tree does not show %d attached relays and no orphan within 30s: %s", want, b)
		}
		if !retry.Sleep(ctx, 5*time.Millisecond) {
			return ctx.Err()
		}
	}
}
