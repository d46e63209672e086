package server

import (
	"time"

	"github.com/ocm-overlay/ocm/internal/tree"
)

// RecoveryBound is how long a recovery is waited for: a failure whose
// orphans are not all attached again by then is counted in
// ocm_recoveries_unfinished_total instead of ocm_recovery_seconds, so a
// relay that never comes back does not stretch the histogram.
const RecoveryBound = 30 * time.Second

// recovery is one failure's orphans still to come back.
type recovery struct {
	policy  string
	start   time.Time // wall clock: the histogram measures real time
	pending int       // members not attached again yet
}

// startRecovery opens a recovery for a node's failure: every member the
// failure detached from its parent (repair) or took out of a tree with it
// (drop, reconnect, gradual). A failure of a node without children opens
// none.
func (st *state) startRecovery(node string, res tree.Result) {
	r := &recovery{policy: string(st.policy), start: time.Now()}
	if st.recovering == nil {
		st.recovering = map[tree.Member]*recovery{}
	}
	add := func(ms []tree.Member) {
		for _, m := range ms {
			if m.Node == node {
				continue
			}
			if old := st.recovering[m]; old != nil {
				st.recoveryStep(old) // orphaned again, by this failure now
			}
			st.recovering[m] = r
			r.pending++
		}
	}
	add(res.Orphaned)
	add(res.Removed)
	if r.pending > 0 {
		st.m.recoveries.inc(r.policy)
	}
}

// recoveredBy counts the members a tree change attached again.
func (st *state) recoveredBy(res tree.Result) {
	if len(st.recovering) == 0 {
		return
	}
	for _, c := range res.Changes {
		m := tree.Member{Stream: c.Stream, Node: c.Node}
		if r := st.recovering[m]; r != nil {
			delete(st.recovering, m)
			st.recoveryStep(r)
		}
	}
}

// recoveryStep counts one member of r off; the last one observes r.
func (st *state) recoveryStep(r *recovery) {
	if r.pending--; r.pending == 0 {
		st.m.recoverySeconds.WithLabelValues(r.policy).Observe(time.Since(r.start).Seconds())
	}
}

// recoveryGone forgets the members of a node that left the server: it is
// not coming back to be waited for.
func (st *state) recoveryGone(node string) {
	for m, r := range st.recovering {
		if m.Node == node {
			delete(st.recovering, m)
			st.recoveryStep(r)
		}
	}
}

// sweepRecoveries, at each heartbeat tick, counts the members attached by
// a path that reported no change, and gives up on recoveries older than
// RecoveryBound.
func (st *state) sweepRecoveries(now time.Time) {
	for m, r := range st.recovering {
		switch {
		case r.pending <= 0: // already given up on
			delete(st.recovering, m)
		case st.forest.Attached(m.Stream, m.Node):
			delete(st.recovering, m)
			st.recoveryStep(r)
		case now.Sub(r.start) > RecoveryBound:
			delete(st.recovering, m)
			r.pending = 0
			st.m.unfinished.inc(r.policy)
		}
	}
}
