package mediator

import (
	"sync"
	"time"

	"github.com/pion/rtp"
)

const (
	// dupWindow: a packet this many sequence numbers or fewer behind the last
	// one forwarded is a duplicate from a slower upstream; farther behind,
	// after an upstream change, it means the new upstream numbers packets
	// differently and becomes the new baseline.
	dupWindow = 3000
	// maxPending bounds the packets held from a make-before-break candidate
	// while the current upstream catches up; when full the switch is forced.
	maxPending = 2048
	// A packet behind the last one forwarded is a duplicate only if it
	// could be one: it comes within dupAge of the last forward (relays
	// hold nothing longer) and its RTP timestamp is within dupTS ticks of
	// the last one's (46 s at 90 kHz). Otherwise the stream's origin
	// restarted and numbers its packets afresh, from a random point, and
	// the packet starts a new baseline: without this a restarted origin
	// whose numbering starts up to dupWindow behind, or a parent that
	// forwards it (half of all restarts), would be dropped for minutes.
	dupAge = 2 * time.Second
	dupTS  = 1 << 22
)

// forwarder merges the packets of the upstreams of one stream into what its
// readers see: it forwards only packets newer than the last one forwarded
// (sequence arithmetic mod 2^16), so replacing an upstream never shows a
// reader a duplicate, and a make-before-break switch never shows a gap.
//
// Each media has an active source, whose packets are forwarded, and at most
// one pending source, whose packets are held until they overlap what was
// forwarded; then the pending source becomes active.
type forwarder struct {
	mu     sync.Mutex
	write  func(media int, pkt *rtp.Packet)
	medias []*mediaFwd

	forwarded uint64 // packets written to readers
	dropped   uint64 // duplicates and packets from replaced sources
	lost      uint64 // sequence numbers never forwarded
	waiters   map[uint64]chan struct{}
	now       func() time.Time
	gaps      gapHist // the silences readers saw around each upstream change
	// Of the upstream change being measured: the longest silence of the
	// medias that have seen their first packet, and how many have not.
	gapMax     time.Duration
	gapWaiting int
}

type mediaFwd struct {
	hasLast bool
	last    uint16
	lastTS  uint32    // RTP timestamp of the last packet forwarded
	lastAt  time.Time // when it was forwarded
	resync  bool      // the active source was attached after a break
	active  uint64
	pending uint64
	buf     []*rtp.Packet
	gapOpen bool // a new source took over: the next packet forwarded ends a silence
}

func newForwarder(nmedias int, write func(media int, pkt *rtp.Packet)) *forwarder {
	f := &forwarder{write: write, waiters: map[uint64]chan struct{}{}, now: time.Now}
	for range nmedias {
		f.medias = append(f.medias, &mediaFwd{})
	}
	return f
}

// attach makes src a source of every media. Where a media has no active
// source it becomes active at once; otherwise it is pending and takes over
// when its packets overlap the active source's. The returned channel is
// closed when src is active on every media.
func (f *forwarder) attach(src uint64) <-chan struct{} {
	f.mu.Lock()
	defer f.mu.Unlock()
	ch := make(chan struct{})
	f.waiters[src] = ch
	for _, m := range f.medias {
		switch {
		case m.active == 0:
			m.active, m.resync = src, m.hasLast
			f.openGap(m)
		default:
			if m.pending != 0 {
				m.buf = m.buf[:0]
			}
			m.pending = src
		}
	}
	f.checkWaiters()
	return ch
}

// detach removes src. Where it was active and a source is pending, the
// pending one takes over now, accepting whatever gap there is.
func (f *forwarder) detach(src uint64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for i, m := range f.medias {
		switch src {
		case m.active:
			m.active = 0
			if m.pending != 0 {
				f.cutover(i, m)
			}
		case m.pending:
			m.pending, m.buf = 0, m.buf[:0]
		}
	}
	if ch, ok := f.waiters[src]; ok {
		delete(f.waiters, src)
		select {
		case <-ch:
		default:
			close(ch)
		}
	}
	f.checkWaiters()
}

// force makes src active everywhere it is still pending (a switch that did
// not overlap in time).
func (f *forwarder) force(src uint64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for i, m := range f.medias {
		if m.pending == src {
			f.cutover(i, m)
		}
	}
	f.checkWaiters()
}

// isActive reports whether src is the active source of every media.
func (f *forwarder) isActive(src uint64) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, m := range f.medias {
		if m.active != src {
			return false
		}
	}
	return true
}

// packet handles one packet from src for media i.
func (f *forwarder) packet(src uint64, i int, pkt *rtp.Packet) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if i < 0 || i >= len(f.medias) {
		f.dropped++
		return
	}
	m := f.medias[i]
	switch src {
	case m.active:
		f.forward(i, m, pkt)
		if m.pending != 0 && f.overlaps(m) {
			f.cutover(i, m)
			f.checkWaiters()
		}
	case m.pending:
		if len(m.buf) >= maxPending {
			f.cutover(i, m)
			f.forward(i, m, pkt)
			f.checkWaiters()
			return
		}
		m.buf = append(m.buf, pkt.Clone())
		if !m.hasLast || f.overlaps(m) {
			f.cutover(i, m)
			f.checkWaiters()
		}
	default:
		f.dropped++
	}
}

// overlaps reports whether the pending source's held packets reach back to
// the one after the last forwarded, so switching loses nothing.
func (f *forwarder) overlaps(m *mediaFwd) bool {
	if len(m.buf) == 0 {
		return false
	}
	return int16(m.buf[0].SequenceNumber-(m.last+1)) <= 0
}

// cutover makes the pending source active and forwards what it held that
// is newer than the last packet forwarded.
func (f *forwarder) cutover(i int, m *mediaFwd) {
	gapless := f.overlaps(m)
	m.active, m.pending = m.pending, 0
	m.resync = m.hasLast && !gapless
	f.openGap(m)
	buf := m.buf
	m.buf = nil
	for _, p := range buf {
		f.forward(i, m, p)
	}
}

func (f *forwarder) forward(i int, m *mediaFwd, pkt *rtp.Packet) {
	now := f.now()
	if m.hasLast {
		d := int(int16(pkt.SequenceNumber - m.last))
		switch {
		case m.resync && (d < -dupWindow || d > dupWindow):
			// A new upstream that numbers packets its own way: start over.
		case (d <= 0 || d > dupWindow) && f.renumbered(m, pkt, now):
			// The origin restarted: its numbering starts over, and the
			// jump is neither duplicates nor losses.
		case d <= 0:
			f.dropped++
			return
		case d > 1:
			f.lost += uint64(d - 1)
		}
	}
	m.hasLast, m.last, m.resync = true, pkt.SequenceNumber, false
	if m.gapOpen {
		f.closeGap(m, now)
	}
	m.lastTS, m.lastAt = pkt.Timestamp, now
	f.forwarded++
	f.write(i, pkt)
}

// openGap starts measuring the silence of a media whose source changed
// after it forwarded something: from its last packet forwarded (m.lastAt)
// to the first packet of the new source.
func (f *forwarder) openGap(m *mediaFwd) {
	if !m.hasLast || m.gapOpen {
		return // nothing forwarded yet, or already measuring from the older silence
	}
	m.gapOpen = true
	f.gapWaiting++
}

// closeGap ends a media's silence; when every media of the change has
// seen its first packet, the longest silence is observed once.
func (f *forwarder) closeGap(m *mediaFwd, now time.Time) {
	m.gapOpen = false
	f.gapMax = max(f.gapMax, now.Sub(m.lastAt))
	if f.gapWaiting--; f.gapWaiting == 0 {
		f.gaps.observe(f.gapMax)
		f.gapMax = 0
	}
}

// gapCounts returns the upstream-gap histogram so far.
func (f *forwarder) gapCounts() gapHist {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.gaps.clone()
}

// renumbered reports whether pkt, far from the last packet forwarded in
// sequence, belongs to another numbering (see dupAge).
func (f *forwarder) renumbered(m *mediaFwd, pkt *rtp.Packet, now time.Time) bool {
	dts := int64(int32(pkt.Timestamp - m.lastTS))
	return now.Sub(m.lastAt) > dupAge || dts > dupTS || dts < -dupTS
}

func (f *forwarder) checkWaiters() {
	for src, ch := range f.waiters {
		all := true
		for _, m := range f.medias {
			if m.active != src {
				all = false
				break
			}
		}
		if all {
			close(ch)
			delete(f.waiters, src)
		}
	}
}

// counters returns forwarded, dropped and lost packets so far.
func (f *forwarder) counters() (forwarded, dropped, lost uint64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.forwarded, f.dropped, f.lost
}
