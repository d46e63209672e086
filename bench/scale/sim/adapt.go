package sim

import (
	"math"
	"time"

	"github.com/ocm-overlay/ocm/internal/probe"
	"github.com/ocm-overlay/ocm/internal/relay"
	"github.com/ocm-overlay/ocm/internal/wire"
)

// Adapt runs the relays' improvement rounds (internal/relay's improve)
// for forMs of simulated time after the build: every relay with a parent
// asks for candidates again after relay.DefaultImproveEvery (jittered),
// probes them, its parent among them, and moves when probe.Improve says
// so; a round without a move doubles its wait, up to
// relay.MaxImproveEvery, a move starts it over. It returns the quality
// at each of marks (ms after the start; the last is forMs).
func (s *Sim) Adapt(forMs float64, marks []float64) []Quality {
	if s.cfg.NoAdapt {
		return nil
	}
	start := s.now
	base := float64(relay.DefaultImproveEvery / time.Millisecond)
	wait := make([]float64, len(s.ids))
	var round func(i int)
	next := func(i int) {
		d := wait[i] * (0.75 + 0.5*s.rng.Float64()) // the relay's jitter
		s.after(d, func() { round(i) })
	}
	s.adapting = true
	round = func(i int) {
		if s.dead[i] || !s.adapting {
			return
		}
		if s.busy[i] || s.parent[i] < 0 {
			next(i)
			return
		}
		s.busy[i] = true
		s.after(s.oneway(i), func() {
			if s.dead[i] {
				return
			}
			s.st.Improves++
			cur := s.parent[i]
			curID := wire.OriginID
			if cur > 0 {
				curID = s.ids[cur]
			}
			s.F.ExpirePromises(s.clock())
			cs := s.F.Candidates(Stream, s.ids[i], nil, s.cfg.MaxCandidates)
			sel, probeMs := s.probe(i, cs)
			sel = probe.Decide(sel.Choices, "")
			ch, ok := probe.Improve(sel, curID)
			if !ok {
				wait[i] = min(2*wait[i], float64(relay.MaxImproveEvery/time.Millisecond))
				s.after(s.oneway(i)+probeMs, func() { s.done(i); next(i) })
				return
			}
			s.after(s.oneway(i)+probeMs+s.oneway(i), func() {
				if s.dead[i] {
					return
				}
				if s.parent[i] == cur {
					if _, res, err := s.join(i, tryOf(ch)); err == nil {
						s.st.Moves++
						wait[i] = base
						s.applied(res)
					} else {
						s.st.Refused++
					}
				}
				s.after(s.oneway(i), func() { s.done(i); next(i) })
			})
		})
	}
	for i := 1; i < len(s.ids); i++ {
		wait[i] = base
		next(i)
	}
	var out []Quality
	for _, m := range marks {
		s.run(start + m)
		out = append(out, s.Measure())
	}
	// Let the rounds under way finish; no new ones start.
	s.adapting = false
	s.run(math.Inf(1))
	return out
}
