package main

// The overlay cases run the whole overlay on this machine: an origin
// rtsp-mediator with the built-in test stream, an ocm-server, and viewer
// "hosts" (an ocm-relay plus an rtsp-mediator with --resolver ocm each),
// with in-process gortsplib players on the hosts' enhanced URLs.
//
//   overlay/join      time from a player's DESCRIBE to its first RTP packet:
//                     direct from the origin, through a cold host (resolve,
//                     candidates, probe, joined, pull) and through a warm one.
//   overlay/recovery  a relay R with 20 descendants dies (SIGKILL of its
//                     relay and mediator); the time until every player below
//                     it has packets again, the tree edges that survived and
//                     the packets the orphans lost, per recovery policy.
//
// Environment (bench/main.go's flags are shared by every case):
//   OCM_BENCH_POLICIES  recovery policies to measure, comma-separated
//                       (default "repair"; any of repair,drop,reconnect,gradual)
//   OCM_BENCH_KILLS     kills per policy, each on a freshly built tree (default 3)

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/ocm-overlay/ocm/internal/event"
	"github.com/ocm-overlay/ocm/internal/lab"
)

func init() {
	register("overlay/join", runOverlayJoin)
	register("overlay/recovery", runOverlayRecovery)
}

var (
	ovlMedia = "test" // the origin's built-in test stream

	// The test source sends a frame every 40 ms.
	ovlFrameInterval = 40 * time.Millisecond

	ovlJoinRepeats   = 9
	ovlJoinWarmHosts = 2 // hosts already in the tree, so a cold join probes relays too
	targetJoinExtra  = 100 * time.Millisecond

	ovlDescendants   = 20 // hosts below R
	ovlRCapacity     = 4  // R's children: the orphans that must rejoin
	ovlHostCapacity  = 2
	ovlDefaultKills  = 3
	ovlRecoverLimit  = 8 * time.Second // for every orphan to play again
	ovlTreeStable    = 1500 * time.Millisecond
	ovlTreeLimit     = 6 * time.Second // for the tree to settle after recovery
	ovlSteady        = time.Second     // of normal play before the kill
	ovlKillMargin    = 3 * time.Millisecond
	targetRepairTime = 500 * time.Millisecond
)

// Every simulated host shares this machine's CPUs, so the relays' CPU
// filter and weight would judge the bench itself rather than a candidate;
// they are switched off here (see the notes).
var ovlRelaySelection = []string{"--max-cpu", "1.01", "--w-cpu", "0"}

// ovlNet is an origin and a reference player on it: what the origin sent,
// and when, is the yardstick for the players behind relays. Each
// measurement builds its own tree (an ovlTree) on it.
type ovlNet struct {
	o          options
	origin     *lab.Mediator
	originAddr string
	ref        *ovlPlayer
}

func (n *ovlNet) stream() string { return fmt.Sprintf("rtsp://%s/%s", n.originAddr, ovlMedia) }

func startOvlNet(ctx context.Context, o options) (*ovlNet, error) {
	if err := o.Tools.Check("ocm-server"); err != nil {
		return nil, err
	}
	p, err := lab.StartMediator(o.Lab, o.Tools, "origin", nil, "--test-source", ovlMedia, "--stats-interval", "0", "--keyframe-wait", "0")
	if err != nil {
		return nil, fmt.Errorf("origin: %w", err)
	}
	n := &ovlNet{o: o, origin: p, originAddr: p.Addr}
	if n.ref, err = dialOvlPlayer(n.stream()); err == nil {
		if err = n.ref.waitFirst(ctx, 5*time.Second); err != nil {
			n.ref.Close()
		}
	}
	if err != nil {
		_ = p.Stop()
		return nil, fmt.Errorf("reference player: %w", err)
	}
	return n, nil
}

func (n *ovlNet) close() {
	n.ref.Close()
	_ = n.origin.Stop()
}

// ovlTree is one measurement's ocm-server and the hosts that joined it.
type ovlTree struct {
	n     *ovlNet
	srv   *lab.Server
	hosts []*ovlHost
}

func (n *ovlNet) startTree(originCap int, policy string) (*ovlTree, error) {
	args := []string{"--origin-capacity", strconv.Itoa(originCap)}
	if policy != "" {
		args = append(args, "--recovery", policy)
	}
	s, err := lab.StartServer(n.o.Lab, n.o.Tools, "server", args...)
	if err != nil {
		return nil, fmt.Errorf("ocm-server: %w", err)
	}
	return &ovlTree{n: n, srv: s}, nil
}

// close kills the server and every host.
func (t *ovlTree) close() {
	t.srv.Kill()
	killHosts(t.hosts)
}

// add starts a host with a player and waits for the player's first packet.
func (t *ovlTree) add(ctx context.Context, id string, capacity int) (*ovlHost, error) {
	h, err := t.n.startHost(t.srv, id, capacity)
	if err != nil {
		return nil, err
	}
	t.hosts = append(t.hosts, h)
	if err := h.play(ctx, t.n); err != nil {
		return nil, fmt.Errorf("%w\nrelay: %s\nmediator: %s", err, h.relay.StderrTail(), h.med.StderrTail())
	}
	return h, nil
}

// built waits until the server's tree has every host attached.
func (t *ovlTree) built(ctx context.Context) (*lab.Tree, error) {
	return waitTree(ctx, t.srv, t.n.stream(), 5*time.Second, func(tr lab.Tree) bool {
		return tr.Attached() == len(t.hosts)
	})
}

func (t *ovlTree) byID() map[string]*ovlHost {
	m := map[string]*ovlHost{}
	for _, h := range t.hosts {
		m[h.id] = h
	}
	return m
}

// ovlHost is one viewer host: its relay, its mediator and (once played)
// its player.
type ovlHost struct {
	*lab.Host
	id       string
	relay    *lab.Proc
	med      *lab.Mediator
	rtsp     string
	started  time.Time
	player   *ovlPlayer
	playerAt time.Time
}

func (n *ovlNet) startHost(srv *lab.Server, id string, capacity int) (*ovlHost, error) {
	started := time.Now()
	h, err := lab.StartHost(n.o.Lab, n.o.Tools, id, srv.OCM, []string{"--stats-interval", "0", "--keyframe-wait", "0"},
		append([]string{"--capacity", strconv.Itoa(capacity)}, ovlRelaySelection...))
	if err != nil {
		return nil, fmt.Errorf("host %s: %w", id, err)
	}
	return &ovlHost{Host: h, id: id, relay: h.Relay, med: h.Med, rtsp: h.Med.Addr, started: started}, nil
}

// url is the enhanced URL a player on this host opens.
func (h *ovlHost) url(n *ovlNet) string { return lab.Enhanced(h.rtsp, ovlMedia, n.originAddr) }

// play opens a player on the host and waits for its first packet.
func (h *ovlHost) play(ctx context.Context, n *ovlNet) error {
	h.playerAt = time.Now()
	p, err := dialOvlPlayer(h.url(n))
	if err != nil {
		return fmt.Errorf("player on %s: %w", h.id, err)
	}
	h.player = p
	return p.waitFirst(ctx, 5*time.Second)
}

// kill is the host dying: its processes get SIGKILL, its player is closed.
func (h *ovlHost) kill() {
	h.Kill()
	if h.player != nil {
		h.player.Close()
	}
}

// stop is the host leaving: SIGINT, so the relay says goodbye.
func (h *ovlHost) stop() {
	if h.player != nil {
		h.player.Close()
	}
	h.Stop()
}

func killHosts(hosts []*ovlHost) {
	var wg sync.WaitGroup
	for _, h := range hosts {
		wg.Add(1)
		go func() { defer wg.Done(); h.kill() }()
	}
	wg.Wait()
}

// ovlPlayer is an in-process RTSP player (TCP) that keeps the arrival
// time and sequence number of every RTP packet.
type ovlPlayer struct {
	*lab.Reader
	lab.Recorder
}

// dialOvlPlayer plays u with a read timeout: a player that tolerates
// silence longer than the recovery limit, so a slow recovery is measured
// rather than ended by the player giving up.
func dialOvlPlayer(u string) (*ovlPlayer, error) {
	p := &ovlPlayer{}
	r, err := lab.Dial(u, lab.ReaderOptions{OnPacket: p.OnPacket, ReadTimeout: ovlRecoverLimit + 5*time.Second})
	if err != nil {
		return nil, err
	}
	p.Reader = r
	return p, nil
}

func (p *ovlPlayer) waitFirst(ctx context.Context, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for {
		if _, ok := p.Last(); ok {
			return nil
		}
		if err := p.Failed(); err != nil {
			return fmt.Errorf("player ended before its first packet: %w", err)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("no packet within %v of PLAY", limit)
		}
		if err := sleepCtx(ctx, 5*time.Millisecond); err != nil {
			return err
		}
	}
}

// ---- the tree as the server's API shows it

// waitTree polls the tree until ok accepts it or limit passes; it returns
// the last tree it saw either way (nil if none could be read).
func waitTree(ctx context.Context, srv *lab.Server, stream string, limit time.Duration, ok func(lab.Tree) bool) (*lab.Tree, error) {
	t, err := srv.WaitTree(ctx, stream, limit, func(t lab.Tree) error {
		if !ok(t) {
			return errors.New("tree not as expected")
		}
		return nil
	})
	if t.Stream == "" {
		return nil, err
	}
	return &t, err
}

// ---- overlay/join

// ovlJoin is one first-packet measurement.
type ovlJoin struct {
	start   time.Time
	elapsed time.Duration // DESCRIBE -> first RTP packet
	frames  int           // frames the origin completed in between (the reference saw their last packet)
	player  *ovlPlayer
}

// measureJoin waits a random fraction of a frame interval, so that every
// measurement starts at an independent phase of the stream's frames (a
// start just after a frame would always wait a whole interval), then opens
// a player on u and waits for its first packet.
func measureJoin(ctx context.Context, u string, ref *ovlPlayer) (ovlJoin, error) {
	if err := sleepCtx(ctx, rand.N(ovlFrameInterval)); err != nil {
		return ovlJoin{}, err
	}
	j := ovlJoin{start: time.Now()}
	p, err := dialOvlPlayer(u)
	if err != nil {
		return j, err
	}
	if err := p.waitFirst(ctx, 5*time.Second); err != nil {
		p.Close()
		return j, err
	}
	j.player = p
	first := p.Arrivals()[0]
	j.elapsed = first.At.Sub(j.start)
	// The origin's copy of the first packet reaches the reference player at
	// about the time the origin sent it.
	deadline := time.Now().Add(500 * time.Millisecond)
	for {
		if last, ok := ref.Last(); ok && !seqAfter(first.Seq, last.Seq) {
			break
		}
		if time.Now().After(deadline) {
			return j, errors.New("the reference player is not receiving")
		}
		if err := sleepCtx(ctx, 2*time.Millisecond); err != nil {
			return j, err
		}
	}
	for _, a := range ref.Arrivals() {
		if a.Marker && a.At.After(j.start) && seqAfter(first.Seq, a.Seq) {
			j.frames++
		}
	}
	return j, nil
}

func runOverlayJoin(ctx context.Context, o options) ([]result, error) {
	n, err := startOvlNet(ctx, o)
	if err != nil {
		return nil, err
	}
	defer n.close()
	tr, err := n.startTree(4, "")
	if err != nil {
		return nil, err
	}
	defer tr.close()
	srv, ref := tr.srv, n.ref

	// Hosts already relaying: a cold host's candidates are the origin and
	// these, so its join includes probing relays, not only the origin.
	for i := range ovlJoinWarmHosts {
		if _, err := tr.add(ctx, fmt.Sprintf("w%d", i+1), 4); err != nil {
			return nil, err
		}
	}

	var direct, cold, warmT, resolve, pull, firstAfterPlay []time.Duration
	var directFrames, coldFrames, warmFrames []int
	var candidates []int
	parents := map[string]int{}
	for i := range ovlJoinRepeats {
		d, err := measureJoin(ctx, n.stream(), ref)
		if d.player != nil {
			d.player.Close()
		}
		if err != nil {
			return nil, fmt.Errorf("direct: %w", err)
		}
		direct = append(direct, d.elapsed)
		directFrames = append(directFrames, d.frames)

		// A fresh host, idle but connected to the server as a host that has
		// been up for a while would be.
		h, err := n.startHost(srv, fmt.Sprintf("c%d", i+1), 4)
		if err != nil {
			return nil, err
		}
		if _, err := lab.Await(ctx, h.relay, 5*time.Second, 0, func(e event.ServerLink) bool {
			return e.State == "connected"
		}); err != nil {
			h.kill()
			return nil, fmt.Errorf("cold host: %w", err)
		}
		c, err := measureJoin(ctx, h.url(n), ref)
		if err != nil {
			if c.player != nil {
				c.player.Close()
			}
			h.kill()
			return nil, fmt.Errorf("cold: %w\nrelay: %s\nmediator: %s", err, h.relay.StderrTail(), h.med.StderrTail())
		}
		cold = append(cold, c.elapsed)
		coldFrames = append(coldFrames, c.frames)
		// Where the time went, from the tools' own events (as read here).
		j := lab.EventsSince[event.Joined](h.relay, c.start)
		pl := lab.EventsSince[event.Upstream](h.med, c.start)
		if len(j) > 0 && len(pl) > 0 && pl[0].E.State == "playing" {
			resolve = append(resolve, j[0].At.Sub(c.start))
			pull = append(pull, pl[0].At.Sub(j[0].At))
			firstAfterPlay = append(firstAfterPlay, c.elapsed-pl[0].At.Sub(c.start))
			parents[j[0].E.Parent]++
			if nc := j[0].E.Candidates; nc > 0 { // a resolve, not a handover
				candidates = append(candidates, nc)
			}
		}
		w, err := measureJoin(ctx, h.url(n), ref)
		c.player.Close()
		if w.player != nil {
			w.player.Close()
		}
		if err != nil {
			h.kill()
			return nil, fmt.Errorf("warm: %w", err)
		}
		warmT = append(warmT, w.elapsed)
		warmFrames = append(warmFrames, w.frames)
		h.stop()
	}

	overhead := median(cold) - median(direct)
	r := result{
		Case: "overlay/join",
		Metrics: map[string]any{
			"repeats":                  ovlJoinRepeats,
			"join_overhead_ms_median":  ms(overhead),
			"join_overhead_ms_max":     ms(slices.Max(cold) - median(direct)),
			"direct_frames_missed_max": slices.Max(directFrames),
			"cold_frames_missed_max":   slices.Max(coldFrames),
			"cold_frames_missed_total": sumInts(coldFrames),
			"warm_frames_missed_max":   slices.Max(warmFrames),
		},
	}
	putHost(r.Metrics)
	putMs(r.Metrics, "direct_first_packet_ms_median", "direct_first_packet_ms_max", direct)
	putMs(r.Metrics, "cold_first_packet_ms_median", "cold_first_packet_ms_max", cold)
	putMs(r.Metrics, "warm_first_packet_ms_median", "warm_first_packet_ms_max", warmT)
	if len(resolve) > 0 {
		r.Metrics["cold_resolve_ms_median"] = ms(median(resolve))
		r.Metrics["cold_pull_ms_median"] = ms(median(pull))
		r.Metrics["cold_first_packet_after_playing_ms_median"] = ms(median(firstAfterPlay))
		r.Metrics["cold_candidates_max"] = slices.Max(candidates)
	}
	r.Notes = append(r.Notes,
		verdict(overhead < targetJoinExtra, fmt.Sprintf(
			"join overhead (cold overlay median - direct median) %.1f ms over %d fresh hosts, target < %v",
			ms(overhead), len(cold), targetJoinExtra)),
		fmt.Sprintf("the test source sends a frame every %v and nothing caches frames, so every first-packet time, "+
			"direct included, holds a wait of 0-%v for the next frame; each measurement starts at a random phase, "+
			"so medians of %d samples move by up to ~%v between runs. frames_missed counts the frames the origin "+
			"completed between a player's DESCRIBE and the frame of its first packet (phase-free: 0 means the join "+
			"cost no frame)", ovlFrameInterval, ovlFrameInterval, ovlJoinRepeats, ovlFrameInterval/2),
		fmt.Sprintf("cold = a fresh host already connected to ocm-server but not pulling: DESCRIBE -> resolve "+
			"(candidates from the server, probes, joined) -> upstream DESCRIBE/SETUP/PLAY -> first packet; %d hosts "+
			"were already relaying, so candidates included relays; parents chosen: %s",
			ovlJoinWarmHosts, countsString(parents)),
		"cold_resolve/pull/first_packet_after_playing split the cold time at the relay's joined and the mediator's "+
			"upstream playing events, as read from their stdout here (a little later than they happened)",
		"warm = a second player on the host just measured cold, whose mediator is pulling",
		"relays run with --max-cpu 1.01 --w-cpu 0: every simulated host shares this machine's CPUs, so the CPU "+
			"filter would reject all relays whenever the bench itself keeps the machine busy",
		"mediators run with --keyframe-wait 0: first packet is the overlay's cost; a player of a default mediator "+
			"starts at the next keyframe, which adds up to one GOP of the test source (1 s)")
	return []result{r}, nil
}

func sumInts(v []int) int {
	t := 0
	for _, x := range v {
		t += x
	}
	return t
}

func countsString(m map[string]int) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s x%d", k, m[k]))
	}
	if len(parts) == 0 {
		return "none seen"
	}
	return strings.Join(parts, ", ")
}

// ---- overlay/recovery

func ovlPolicies() ([]string, error) {
	v := strings.TrimSpace(os.Getenv("OCM_BENCH_POLICIES"))
	if v == "" {
		return []string{"repair"}, nil
	}
	var out []string
	for _, p := range strings.Split(v, ",") {
		p = strings.TrimSpace(p)
		switch p {
		case "repair", "drop", "reconnect", "gradual":
			out = append(out, p)
		case "":
		default:
			return nil, fmt.Errorf("OCM_BENCH_POLICIES: unknown policy %q (repair, drop, reconnect, gradual)", p)
		}
	}
	return out, nil
}

func ovlKills() (int, error) {
	v := strings.TrimSpace(os.Getenv("OCM_BENCH_KILLS"))
	if v == "" {
		return ovlDefaultKills, nil
	}
	k, err := strconv.Atoi(v)
	if err != nil || k < 1 {
		return 0, fmt.Errorf("OCM_BENCH_KILLS=%q: want a positive integer", v)
	}
	return k, nil
}

// startOvlRuns reads OCM_BENCH_KILLS, how many times a case builds a
// fresh tree and measures, and starts the origin and its reference player.
func startOvlRuns(ctx context.Context, o options) (*ovlNet, int, error) {
	reps, err := ovlKills()
	if err != nil {
		return nil, 0, err
	}
	n, err := startOvlNet(ctx, o)
	return n, reps, err
}

func runOverlayRecovery(ctx context.Context, o options) ([]result, error) {
	policies, err := ovlPolicies()
	if err != nil {
		return nil, err
	}
	// The reference player on the origin tells which packets the origin
	// sent after the kill.
	n, kills, err := startOvlRuns(ctx, o)
	if err != nil {
		return nil, err
	}
	defer n.close()

	var results []result
	for _, policy := range policies {
		var runs []ovlKill
		for k := range kills {
			run, err := ovlRecoveryRun(ctx, n, policy)
			if err != nil {
				return results, fmt.Errorf("%s, kill %d: %w", policy, k+1, err)
			}
			if run.unrecovered == 0 {
				progressf("overlay/recovery %s kill %d: all %d orphans playing again after %.1f ms",
					policy, k+1, run.orphans, ms(run.all))
			} else {
				progressf("overlay/recovery %s kill %d: %d of %d orphans not playing again within %v",
					policy, k+1, run.unrecovered, run.orphans, ovlRecoverLimit)
			}
			runs = append(runs, run)
		}
		results = append(results, ovlRecoveryResult(policy, runs))
	}
	return results, nil
}

// ovlKill is what one kill measured.
type ovlKill struct {
	hosts, orphans, rChildren, depth int
	build                            time.Duration
	all                              time.Duration   // kill -> every orphan playing again
	unrecovered                      int             // orphans with no packet sent after the kill
	players                          []time.Duration // kill -> each recovered orphan's first new packet
	gaps                             []time.Duration // each orphan's longest silence around the kill
	lost                             []int           // per orphan
	dups                             int
	nextFrame                        time.Duration // kill -> the reference's first new packet
	refLost                          int
	edgesBefore, edgesKept           int
	changed                          []string // "child: parent -> parent"
	detachedAfter                    int
	playerErrors                     int
	childLost, childPlaying          []time.Duration // R's children's mediators: upstream lost / playing again
	stuck                            []string        // unrecovered orphans and their mediators' last warning
}

// ovlRecoveryRun builds the tree on a fresh server, kills R and measures.
func ovlRecoveryRun(ctx context.Context, n *ovlNet, policy string) (ovlKill, error) {
	var run ovlKill
	ref := n.ref
	tr, err := n.startTree(1, policy)
	if err != nil {
		return run, err
	}
	defer tr.close()

	// R first: with origin capacity 1 it takes the origin's only slot, so
	// every later host joins somewhere below it.
	buildStart := time.Now()
	r, err := tr.add(ctx, "R", ovlRCapacity)
	if err != nil {
		return run, err
	}
	for i := range ovlDescendants {
		if _, err := tr.add(ctx, fmt.Sprintf("v%02d", i+1), ovlHostCapacity); err != nil {
			return run, err
		}
	}
	hosts := tr.hosts
	run.hosts = len(hosts)
	before, err := tr.built(ctx)
	if err != nil {
		return run, fmt.Errorf("tree before the kill: %w", err)
	}
	run.build = time.Since(buildStart)
	desc := before.Below(r.id)
	if e := before.Parents(); e[r.id] != "origin" || len(desc) < ovlDescendants {
		return run, fmt.Errorf("R is not the relay with %d descendants under the origin: parent %q, %d descendants",
			ovlDescendants, e[r.id], len(desc))
	}
	run.orphans = len(desc)
	run.depth = before.Depth
	var rChildren []string
	for c, p := range before.Parents() {
		if p == r.id {
			rChildren = append(rChildren, c)
		}
	}
	run.rChildren = len(rChildren)
	byID := tr.byID()
	var orphans []*ovlHost
	for _, id := range desc {
		orphans = append(orphans, byID[id])
	}

	if err := sleepCtx(ctx, ovlSteady); err != nil {
		return run, err
	}

	// Kill R at a random phase between two frames, but not within
	// ovlKillMargin of one: a frame the origin sent just before the kill
	// could then still pass through R after the reference player had it,
	// and count as a recovery.
	phase := ovlKillMargin + rand.N(ovlFrameInterval-2*ovlKillMargin)
	phaseDeadline := time.Now().Add(3 * time.Second)
	for {
		last, _ := ref.Last()
		if since := time.Since(last.At); since >= phase && since < ovlFrameInterval-ovlKillMargin {
			break
		}
		if time.Now().After(phaseDeadline) {
			return run, errors.New("the reference player on the origin is not receiving frames")
		}
		if err := sleepCtx(ctx, 500*time.Microsecond); err != nil {
			return run, err
		}
	}
	kill := time.Now()
	_ = syscall.Kill(r.med.PID(), syscall.SIGKILL)
	_ = syscall.Kill(r.relay.PID(), syscall.SIGKILL)
	r.kill()
	lastRef, _ := lastBefore(ref.Arrivals(), kill)
	killSeq := lastRef.Seq

	// Wait until every orphan has a packet the origin sent after the kill.
	deadline := kill.Add(ovlRecoverLimit)
	for {
		waiting := 0
		for _, h := range orphans {
			if a, ok := h.player.Last(); !ok || !seqAfter(a.Seq, killSeq) {
				waiting++
			}
		}
		if waiting == 0 || time.Now().After(deadline) {
			break
		}
		if err := sleepCtx(ctx, 5*time.Millisecond); err != nil {
			return run, err
		}
	}

	// Let the tree settle (gradual moves level by level), then compare.
	survivors := len(hosts) - 1
	var lastEdges map[string]string
	lastChange := time.Now()
	after, _ := waitTree(ctx, tr.srv, n.stream(), ovlTreeLimit, func(t lab.Tree) bool {
		e := t.Parents()
		if !maps2Equal(e, lastEdges) {
			lastEdges, lastChange = e, time.Now()
		}
		return len(e) == survivors && time.Since(lastChange) >= ovlTreeStable
	})
	if after == nil {
		return run, errors.New("cannot read the tree after the kill")
	}
	run.detachedAfter = survivors - after.Attached()
	end := time.Now()

	// Edges that did not involve R: were they kept?
	ea := after.Parents()
	var keptIDs []string
	for c, p := range before.Parents() {
		if c == r.id || p == r.id {
			continue
		}
		run.edgesBefore++
		if ea[c] == p {
			run.edgesKept++
			keptIDs = append(keptIDs, c)
		} else {
			run.changed = append(run.changed, fmt.Sprintf("%s: %s -> %s", c, p, orDash(ea[c])))
		}
	}
	sort.Strings(run.changed)

	// Per orphan: its first packet sent after the kill, its silence, its loss.
	from := kill.Add(-ovlSteady / 2)
	run.all = 0
	for _, h := range orphans {
		if h.player.Failed() != nil {
			run.playerErrors++
		}
		pr := analyseRecovery(h.player.Arrivals(), kill, killSeq, from, end)
		run.lost = append(run.lost, pr.lost)
		run.dups += pr.dups
		run.gaps = append(run.gaps, pr.gap)
		if !pr.ok {
			run.unrecovered++
			continue
		}
		run.players = append(run.players, pr.recovery)
		run.all = max(run.all, pr.recovery)
	}
	if run.unrecovered > 0 {
		run.all = ovlRecoverLimit
	}
	for _, h := range orphans {
		if a, ok := h.player.Last(); ok && seqAfter(a.Seq, killSeq) {
			continue
		}
		if line := lastLogLine(h.med.Stderr(), "level=WARN"); line != "" {
			run.stuck = append(run.stuck, fmt.Sprintf("%s (below %s before the kill): %s", h.id, before.Parents()[h.id], line))
		} else {
			run.stuck = append(run.stuck, fmt.Sprintf("%s (below %s before the kill): its mediator logged no warning", h.id, before.Parents()[h.id]))
		}
	}
	rp := analyseRecovery(ref.Arrivals(), kill, killSeq, from, end)
	run.nextFrame, run.refLost = rp.recovery, rp.lost

	for _, id := range rChildren {
		var lost, playing bool
		for _, e := range lab.EventsSince[event.Upstream](byID[id].med, kill) {
			switch {
			case e.E.State == "lost" && !lost:
				lost = true
				run.childLost = append(run.childLost, e.At.Sub(kill))
			case e.E.State == "playing" && !playing:
				playing = true
				run.childPlaying = append(run.childPlaying, e.At.Sub(kill))
			}
		}
	}
	return run, nil
}

// ovlRecovery is one player's view of a kill.
type ovlRecovery struct {
	ok       bool
	recovery time.Duration // kill -> the first packet sent after the kill
	gap      time.Duration // the longest silence between kill-1 frame and recovery
	lost     int           // sequence numbers missing in [from, end]
	dups     int
}

// analyseRecovery reads one player's arrivals: the recovery packet is the
// first with a sequence number after killSeq (the last packet the origin
// had sent at the kill), which cannot have come through the dead relay.
// Loss is counted over the packets that arrived in [from, end].
func analyseRecovery(arr []lab.Arrival, kill time.Time, killSeq uint16, from, end time.Time) ovlRecovery {
	var r ovlRecovery
	prev := time.Time{}
	for _, a := range arr {
		if !a.At.Before(kill.Add(-ovlFrameInterval)) && !prev.IsZero() {
			r.gap = max(r.gap, a.At.Sub(prev))
		}
		if seqAfter(a.Seq, killSeq) && a.At.After(kill) {
			r.ok = true
			r.recovery = a.At.Sub(kill)
			break
		}
		prev = a.At
	}
	if !r.ok && !prev.IsZero() {
		r.gap = max(r.gap, end.Sub(prev))
	}
	seen := map[int]bool{}
	lo, hi, count := 0, 0, 0
	for _, a := range arr {
		if a.At.Before(from) || a.At.After(end) {
			continue
		}
		e := int(int16(a.Seq - killSeq))
		if count == 0 || e < lo {
			lo = e
		}
		if count == 0 || e > hi {
			hi = e
		}
		count++
		seen[e] = true
	}
	if count > 0 {
		r.lost = (hi - lo + 1) - len(seen)
		r.dups = count - len(seen)
	}
	return r
}

// seqAfter reports whether RTP sequence number a comes after b.
// lastLogLine returns the last line of a tool's stderr holding substr,
// without its timestamp, cut to a readable length.
func lastLogLine(tail, substr string) string {
	lines := strings.Split(strings.TrimSpace(tail), "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		l := lines[i]
		if !strings.Contains(l, substr) {
			continue
		}
		if j := strings.Index(l, " level="); j >= 0 {
			l = l[j+1:]
		}
		if len(l) > 400 {
			l = l[:400] + "..."
		}
		return l
	}
	return ""
}

func seqAfter(a, b uint16) bool { return int16(a-b) > 0 }

func lastBefore(arr []lab.Arrival, t time.Time) (lab.Arrival, bool) {
	for i := len(arr) - 1; i >= 0; i-- {
		if arr[i].At.Before(t) {
			return arr[i], true
		}
	}
	return lab.Arrival{}, false
}

func maps2Equal(a, b map[string]string) bool {
	if len(a) != len(b) || a == nil || b == nil {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

func orDash(s string) string {
	if s == "" {
		return "(none)"
	}
	return s
}

func ovlRecoveryResult(policy string, runs []ovlKill) result {
	var all, beyond, players, gaps, build, nextFrame, childLost, childPlaying []time.Duration
	var lost []int
	edgesBefore, edgesKept, unrecovered, dups, refLost, detached, playerErrors := 0, 0, 0, 0, 0, 0, 0
	minOrphans, minChildren, maxDepth := runs[0].orphans, runs[0].rChildren, 0
	var changed, stuck []string
	for i, r := range runs {
		all = append(all, r.all)
		beyond = append(beyond, r.all-r.nextFrame)
		players = append(players, r.players...)
		gaps = append(gaps, r.gaps...)
		build = append(build, r.build)
		nextFrame = append(nextFrame, r.nextFrame)
		childLost = append(childLost, r.childLost...)
		childPlaying = append(childPlaying, r.childPlaying...)
		lost = append(lost, r.lost...)
		edgesBefore += r.edgesBefore
		edgesKept += r.edgesKept
		unrecovered += r.unrecovered
		dups += r.dups
		refLost += r.refLost
		detached += r.detachedAfter
		playerErrors += r.playerErrors
		minOrphans = min(minOrphans, r.orphans)
		minChildren = min(minChildren, r.rChildren)
		maxDepth = max(maxDepth, r.depth)
		for _, c := range r.stuck {
			stuck = append(stuck, fmt.Sprintf("kill %d %s", i+1, c))
		}
		for _, c := range r.changed {
			changed = append(changed, fmt.Sprintf("kill %d %s", i+1, c))
		}
	}
	share := 1.0
	if edgesBefore > 0 {
		share = float64(edgesKept) / float64(edgesBefore)
	}
	lostSorted := slices.Clone(lost)
	slices.Sort(lostSorted)
	m := map[string]any{
		"policy":                        policy,
		"kills":                         len(runs),
		"hosts":                         runs[0].hosts,
		"r_descendants_min":             minOrphans,
		"r_children_min":                minChildren,
		"tree_depth_max":                maxDepth,
		"recovery_per_player_ms_p50":    ms(median(players)),
		"next_frame_after_kill_ms_p50":  ms(median(nextFrame)),
		"edges_compared":                edgesBefore,
		"edges_unchanged":               edgesKept,
		"edges_unchanged_share":         round3(share),
		"lost_packets_per_orphan_p50":   lostSorted[len(lostSorted)/2],
		"lost_packets_per_orphan_max":   lostSorted[len(lostSorted)-1],
		"duplicate_packets":             dups,
		"reference_lost_packets":        refLost,
		"orphans_unrecovered":           unrecovered,
		"player_sessions_ended":         playerErrors,
		"nodes_detached_after_recovery": detached,
		"build_tree_s_median":           round3(median(build).Seconds()),
	}
	putHost(m)
	putMs(m, "recovery_all_ms_p50", "recovery_all_ms_max", all)
	putMs(m, "recovery_beyond_next_frame_ms_p50", "recovery_beyond_next_frame_ms_max", beyond)
	putMs(m, "silence_per_player_ms_p50", "silence_per_player_ms_max", gaps)
	putMedian(m, "r_children_upstream_lost_ms_p50", childLost)
	putMs(m, "r_children_upstream_playing_ms_p50", "r_children_upstream_playing_ms_max", childPlaying)
	res := result{Case: "overlay/recovery/" + policy, Metrics: m}
	allMax := slices.Max(all)
	if policy == "repair" {
		res.Notes = append(res.Notes, verdict(unrecovered == 0 && allMax < targetRepairTime && share == 1,
			fmt.Sprintf("repair: every orphan playing again within %.1f ms at worst (p50 %.1f ms over %d kills), target < %v; "+
				"%d of %d edges below R's children unchanged, target all",
				ms(allMax), ms(median(all)), len(runs), targetRepairTime, edgesKept, edgesBefore)))
	} else {
		res.Notes = append(res.Notes, fmt.Sprintf("%s: every orphan playing again within %.1f ms at worst (p50 %.1f ms over %d kills); %d of %d edges below R's children unchanged",
			policy, ms(allMax), ms(median(all)), len(runs), edgesKept, edgesBefore))
	}
	if unrecovered > 0 {
		res.Notes = append(res.Notes, fmt.Sprintf("%d orphan players had no new packet within %v of the kill; their kills count as %v",
			unrecovered, ovlRecoverLimit, ovlRecoverLimit))
	}
	if len(stuck) > 0 {
		if len(stuck) > 3 {
			stuck = append(stuck[:3], fmt.Sprintf("... %d more", len(stuck)-3))
		}
		res.Notes = append(res.Notes, "orphans not playing again, with their mediators' last warning: "+strings.Join(stuck, " | "))
	}
	if detached > 0 {
		res.Notes = append(res.Notes, fmt.Sprintf("%d surviving nodes were not attached in the tree %v after recovery (summed over kills)",
			detached, ovlTreeLimit))
	}
	if len(changed) > 0 {
		if len(changed) > 12 {
			changed = append(changed[:12], fmt.Sprintf("... %d more", len(changed)-12))
		}
		res.Notes = append(res.Notes, "edges changed: "+strings.Join(changed, "; "))
	}
	res.Notes = append(res.Notes,
		fmt.Sprintf("tree: origin capacity 1 -> R (capacity %d) -> %d hosts of capacity %d, a player on every host; "+
			"the host R dies by SIGKILL of its ocm-relay and rtsp-mediator", ovlRCapacity, ovlDescendants, ovlHostCapacity),
		fmt.Sprintf("an orphan has recovered at its first packet with a sequence number after the last one a player on the origin "+
			"had at the kill (no such packet can pass through R); each kill falls at a random phase between two frames "+
			"(not within %v of one), so recovery includes the wait for the origin's next frame (next_frame_after_kill_ms, "+
			"0-%v); recovery_beyond_next_frame is the part that does not: how much later than the origin's player the "+
			"last orphan got its first new packet (a frame's worth or more means frames were lost)",
			ovlKillMargin, ovlFrameInterval),
		"silence = longest gap between packet arrivals around the kill, per orphan; loss = sequence numbers missing per orphan "+
			"from half a second before the kill until the tree settled; edges compared = parent links before the kill not involving R",
		"relays run with --max-cpu 1.01 --w-cpu 0 (every host shares this machine's CPUs); ocm-server with --heartbeat 500ms --report-interval 1s")
	return res
}
