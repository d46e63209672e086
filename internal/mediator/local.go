package mediator

import (
	"slices"
	"sync/atomic"
	"time"

	"github.com/bluenviron/gortsplib/v4"
	"github.com/bluenviron/gortsplib/v4/pkg/description"
	"github.com/ocm-overlay/ocm/internal/event"
	"github.com/pion/rtp"
)

// local is a stream that originates here: a publisher's, or the built-in
// test source.
type local struct {
	name      string
	kind      string                  // "publish" or "test"
	ss        *gortsplib.ServerStream // UDP and multicast readers
	fan       *tcpFan                 // TCP readers
	desc      *description.Session
	publisher *gortsplib.ServerSession // nil for the test source

	// A publisher must RECORD within a deadline of its ANNOUNCE, or lose
	// the path: recordTimer frees it, recorded says it came in time.
	recordTimer *time.Timer
	recorded    atomic.Int32 // 0 waiting, 1 recorded, -1 too late

	readers atomic.Int64
	gaps    map[*description.Media]*seqGaps // written by the one packet source
	lost    atomic.Uint64
	pktsIn  atomic.Uint64
	bytesIn atomic.Uint64
	bitrate rateMeter
	// scrapeRate is the bitrate /metrics sees.
	scrapeRate heldRate
}

func newLocal(srv *gortsplib.Server, name, kind string, desc *description.Session, publisher *gortsplib.ServerSession) (*local, error) {
	ss := &gortsplib.ServerStream{Server: srv, Desc: desc}
	if err := ss.Initialize(); err != nil {
		return nil, err
	}
	fan, err := newTCPFan(srv, desc)
	if err != nil {
		ss.Close()
		return nil, err
	}
	l := &local{name: name, kind: kind, ss: ss, fan: fan, desc: desc, publisher: publisher,
		gaps: map[*description.Media]*seqGaps{}}
	l.bitrate.start(time.Now())
	l.scrapeRate.start(time.Now())
	return l, nil
}

func (l *local) streams() (*gortsplib.ServerStream, *tcpFan) { return l.ss, l.fan }

// recordDeadline runs expire after d unless recording is called first.
func (l *local) recordDeadline(d time.Duration, expire func()) {
	l.recordTimer = time.AfterFunc(d, func() {
		if l.recorded.CompareAndSwap(0, -1) {
			expire()
		}
	})
}

// recording reports whether the publisher may record: its RECORD came
// before the deadline.
func (l *local) recording() bool {
	if l.recordTimer != nil {
		l.recordTimer.Stop()
	}
	return l.recorded.CompareAndSwap(0, 1) || l.recorded.Load() == 1
}

// close ends the stream and its readers' sessions.
func (l *local) close() {
	if l.recordTimer != nil {
		l.recordTimer.Stop()
	}
	l.fan.close()
	l.ss.Close()
}

func (l *local) write(medi *description.Media, pkt *rtp.Packet) {
	l.pktsIn.Add(1)
	g := l.gaps[medi]
	if g == nil {
		g = &seqGaps{}
		l.gaps[medi] = g
	}
	if n := g.add(pkt.SequenceNumber); n > 0 {
		l.lost.Add(n)
	}
	l.bytesIn.Add(uint64(pkt.MarshalSize()))
	_ = l.ss.WritePacketRTP(medi, pkt)
	if i := slices.Index(l.desc.Medias, medi); i >= 0 {
		l.fan.write(i, pkt)
	}
}

func (l *local) stats(now time.Time) event.StreamStats {
	return event.StreamStats{
		Stream:     "/" + l.name,
		Kind:       l.kind,
		Readers:    l.readers.Load(),
		PacketsIn:  l.pktsIn.Load(),
		PacketsOut: l.ss.Stats().RTPPacketsSent + l.fan.pktsOut.Load(),
		Lost:       l.lost.Load(),
		BitrateBPS: l.bitrate.rate(now, l.bytesIn.Load()),
	}
}

// seqGaps counts sequence numbers skipped by one RTP source.
type seqGaps struct {
	started bool
	last    uint16
}

// add returns how many packets were skipped before seq; reordered and
// repeated packets count nothing.
func (g *seqGaps) add(seq uint16) uint64 {
	if !g.started {
		g.started, g.last = true, seq
		return 0
	}
	d := int16(seq - g.last)
	if d <= 0 {
		return 0
	}
	g.last = seq
	return uint64(d - 1)
}
