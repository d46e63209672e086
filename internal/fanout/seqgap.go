package fanout

import "sync/atomic"

// resyncJump is the sequence jump beyond which a stream is taken to have
// restarted rather than lost packets (about 3 s of 4 Mbit/s video).
const resyncJump = 1000

// SeqGap counts gaps in an RTP sequence, modulo 2^16. Observe is called by
// one goroutine; the counters may be read concurrently.
type SeqGap struct {
	started bool
	ssrc    uint32
	last    uint16

	Gaps    atomic.Uint64 // runs of missing packets
	Lost    atomic.Uint64 // packets missing in those runs
	Late    atomic.Uint64 // duplicates or reordered packets older than the newest
	Resyncs atomic.Uint64 // SSRC changes and jumps too large to be loss
}

// Observe records a packet. Only ever-newer sequence numbers advance the
// expectation, so a reordered packet counts as late, not as a gap.
func (g *SeqGap) Observe(ssrc uint32, seq uint16) {
	if !g.started {
		g.started, g.ssrc, g.last = true, ssrc, seq
		return
	}
	if ssrc != g.ssrc {
		g.ssrc, g.last = ssrc, seq
		g.Resyncs.Add(1)
		return
	}
	d := int16(seq - g.last)
	switch {
	case d == 1:
	case d <= 0:
		g.Late.Add(1)
		return
	case d > resyncJump:
		g.Resyncs.Add(1)
	default:
		g.Gaps.Add(1)
		g.Lost.Add(uint64(d - 1))
	}
	g.last = seq
}
