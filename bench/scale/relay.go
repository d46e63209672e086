package main

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sort"
	"sync"
	"time"

	ocmrelay "github.com/ocm-overlay/ocm/internal/relay"
	"github.com/ocm-overlay/ocm/internal/retry"
	"github.com/ocm-overlay/ocm/internal/wire"
)

// relay is one simulated ocm-relay: a real TCP connection speaking the
// protocol as ocm-relay does (hello, get_candidates, joined, heartbeats
// on the welcome's interval, reports on the welcome's interval, a rejoin
// on reconnect, and its improvement rounds: candidates asked again after
// ocm-relay's --improve-every, jittered, the wait doubling up to
// relay.MaxImproveEvery; with every RTT alike there is never a better
// parent, so it never moves). It has no mediator and answers no probes: it scores the
// candidates with the server's view (level and load, by the default
// weights; every RTT is the same on one host), which is the order a real
// relay on a LAN picks in.
type relay struct {
	id     string
	stream string
	cap    int
	stats  *stats
	// improveEvery is ocm-relay's --improve-every (0: no rounds).
	improveEvery time.Duration
	// onJoin is called after every accepted join (first or rejoin).
	onJoin func(r *relay, at time.Time, rejoin bool)

	cl      *wire.Client
	welcome *wire.Welcome

	mu     sync.Mutex
	parent string
	level  int
}

// Default selection weights of ocm-relay (probe.DefaultWLoad, DefaultWLevel).
const (
	wLoad  = 20
	wLevel = 5
)

// connect dials the server and says hello.
func (r *relay) connect(ctx context.Context, addr string, port int) error {
	c, err := wire.Dial("tcp", addr, 10*time.Second)
	if err != nil {
		return fmt.Errorf("dial: %w", err)
	}
	r.cl = wire.NewClient(c)
	// Addresses nobody dials: the load process plays the control plane only.
	hp := fmt.Sprintf("127.0.0.1:%d", port)
	hctx, cancel := context.WithTimeout(ctx, 10*time.Second) // ocm-relay's call timeout
	defer cancel()
	w, err := r.cl.Hello(hctx, &wire.Hello{Node: r.id, RTSP: hp, Probe: hp, Willing: true, Capacity: r.cap,
		Cores: 2, Agent: "bench-scale"})
	if err != nil {
		r.cl.Close()
		return fmt.Errorf("hello: %w", err)
	}
	r.welcome = w
	return nil
}

// join asks for candidates and joins the best that accepts, asking again
// (as a relay whose resolve failed does on its mediator's next try) until
// deadline. exclude is left out of the candidates (a failed parent).
func (r *relay) join(ctx context.Context, exclude []string, deadline time.Time) error {
	for attempt := 0; ; attempt++ {
		if attempt > 0 {
			if time.Now().After(deadline) {
				return fmt.Errorf("no parent accepted within the join timeout (%d rounds)", attempt)
			}
			r.stats.retry()
			// A short jittered pause, as a mediator's next DESCRIBE.
			if !retry.Sleep(ctx, time.Duration(10+rand.IntN(40))*time.Millisecond) {
				return ctx.Err()
			}
		}
		t0 := time.Now()
		cands, err := r.cl.Candidates(ctx, r.stream, exclude)
		r.stats.decision(time.Since(t0))
		if err != nil {
			return fmt.Errorf("get_candidates: %w", err)
		}
		sort.SliceStable(cands, func(i, j int) bool { return score(cands[i]) < score(cands[j]) })
		fulls := 0
		for _, c := range cands {
			if c.Capacity > 0 && c.Clients >= c.Capacity {
				continue
			}
			level, err := r.cl.Join(ctx, r.stream, c.Node)
			var we *wire.Error
			switch {
			case err == nil:
				r.mu.Lock()
				r.parent, r.level = c.Node, level
				r.mu.Unlock()
				r.stats.joined(fulls)
				return nil
			case errors.As(err, &we) && we.Code == wire.CodeFull:
				fulls++
				r.stats.full()
			case errors.As(err, &we):
				r.stats.otherRefusal()
			default:
				return fmt.Errorf("joined: %w", err)
			}
		}
		if attempt == 0 && len(cands) > 0 && fulls == len(cands) {
			r.stats.allFullFirst()
		}
	}
}

// score is the relay's default score with equal RTTs: lower is better.
func score(c wire.Candidate) float64 {
	load := 1.0
	if c.Capacity > 0 {
		load = float64(c.Clients) / float64(c.Capacity)
	}
	return wLoad*load + wLevel*float64(c.Level)
}

// run keeps the session: heartbeats and reports on the welcome's
// intervals, a rejoin on reconnect, until ctx ends or the connection does.
func (r *relay) run(ctx context.Context, joinTimeout time.Duration) {
	hb := time.NewTicker(r.welcome.Heartbeat())
	defer hb.Stop()
	rep := time.NewTicker(r.welcome.Report())
	defer rep.Stop()
	wait := r.improveEvery
	jitter := func(d time.Duration) time.Duration { return time.Duration(float64(d) * (0.75 + 0.5*rand.Float64())) }
	improve := time.NewTimer(jitter(wait))
	defer improve.Stop()
	if wait <= 0 {
		improve.Stop()
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-r.cl.Done():
			return
		case <-hb.C:
			go func() {
				hctx, cancel := context.WithTimeout(ctx, 3*r.welcome.Heartbeat())
				defer cancel()
				t0 := time.Now()
				if err := r.cl.Heartbeat(hctx); err == nil {
					r.stats.heartbeat(time.Since(t0))
				} else if ctx.Err() == nil {
					r.stats.heartbeatFailed()
				}
			}()
		case <-improve.C:
			go func() {
				cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
				defer cancel()
				if _, err := r.cl.Candidates(cctx, r.stream, nil); err == nil {
					r.stats.improveRound()
				}
			}()
			wait = min(2*wait, max(ocmrelay.MaxImproveEvery, r.improveEvery))
			improve.Reset(jitter(wait))
		case <-rep.C:
			r.mu.Lock()
			sr := wire.StreamReport{Stream: r.stream, Parent: r.parent, Level: r.level, Bitrate: 1e6}
			r.mu.Unlock()
			w := true
			if err := r.cl.Report(&wire.Report{CPU: 0.05, Willing: &w, Streams: []wire.StreamReport{sr}}); err != nil {
				return
			}
		case m, ok := <-r.cl.Pushes():
			if !ok {
				return
			}
			if b, isRe := m.Body.(*wire.Reconnect); isRe && b.Stream == r.stream {
				var exclude []string
				if b.Parent != "" {
					exclude = []string{b.Parent}
				}
				r.mu.Lock()
				r.parent = ""
				r.mu.Unlock()
				if err := r.join(ctx, exclude, time.Now().Add(joinTimeout)); err != nil {
					r.stats.rejoinFailed()
					continue
				}
				r.onJoin(r, time.Now(), true)
			}
		}
	}
}

// stats are the load process's counters, shared by every relay.
type stats struct {
	mu              sync.Mutex
	decisions       []time.Duration
	heartbeats      []time.Duration
	fulls           int
	others          int
	retries         int
	firstAllFull    int
	heartbeatFails  int
	rejoinFailures  int
	maxFullsPerJoin int
	improveRounds   int
}

func (s *stats) decision(d time.Duration) {
	s.mu.Lock()
	s.decisions = append(s.decisions, d)
	s.mu.Unlock()
}

func (s *stats) heartbeat(d time.Duration) {
	s.mu.Lock()
	s.heartbeats = append(s.heartbeats, d)
	s.mu.Unlock()
}

func (s *stats) full()            { s.mu.Lock(); s.fulls++; s.mu.Unlock() }
func (s *stats) improveRound()    { s.mu.Lock(); s.improveRounds++; s.mu.Unlock() }
func (s *stats) otherRefusal()    { s.mu.Lock(); s.others++; s.mu.Unlock() }
func (s *stats) retry()           { s.mu.Lock(); s.retries++; s.mu.Unlock() }
func (s *stats) allFullFirst()    { s.mu.Lock(); s.firstAllFull++; s.mu.Unlock() }
func (s *stats) heartbeatFailed() { s.mu.Lock(); s.heartbeatFails++; s.mu.Unlock() }
func (s *stats) rejoinFailed()    { s.mu.Lock(); s.rejoinFailures++; s.mu.Unlock() }

func (s *stats) joined(fulls int) {
	s.mu.Lock()
	s.maxFullsPerJoin = max(s.maxFullsPerJoin, fulls)
	s.mu.Unlock()
}

// resetHeartbeats forgets the heartbeat samples (a new phase starts).
func (s *stats) resetHeartbeats() {
	s.mu.Lock()
	s.heartbeats = nil
	s.mu.Unlock()
}

// percentile returns the p-th percentile (0..1) of ds in milliseconds.
func percentile(ds []time.Duration, p float64) float64 {
	if len(ds) == 0 {
		return 0
	}
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	i := min(int(p*float64(len(s))), len(s)-1)
	return float64(s[i].Microseconds()) / 1000
}
