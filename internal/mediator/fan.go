package mediator

import (
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bluenviron/gortsplib/v4"
	"github.com/bluenviron/gortsplib/v4/pkg/base"
	"github.com/bluenviron/gortsplib/v4/pkg/description"
	"github.com/bluenviron/gortsplib/v4/pkg/format"
	"github.com/bluenviron/gortsplib/v4/pkg/headers"
	"github.com/bluenviron/gortsplib/v4/pkg/rtcpsender"
	"github.com/pion/rtcp"
	"github.com/pion/rtp"
)

// senderReportPeriod is how often TCP readers get an RTCP sender report,
// gortsplib's own default (a variable for tests).
var senderReportPeriod = 10 * time.Second

// A tcpFan delivers a stream to its TCP readers itself. gortsplib queues
// every packet for every reader and wakes each reader's writer goroutine
// for it, which costs several times the writes themselves; here a packet
// is marshaled once and appended to each reader's coalescingConn, and the
// end of a frame is one non-blocking write per reader, from the goroutine
// that received it.
//
// gortsplib still runs the readers' RTSP sessions: TCP readers are set up
// on shadow, a stream with the same description that is never written to,
// so gortsplib never sends them media, and they receive it here once their
// PLAY answer is out. UDP and multicast readers stay on the stream
// gortsplib writes.
type tcpFan struct {
	shadow *gortsplib.ServerStream
	desc   *description.Session
	medias []fanMedia

	wmu     sync.Mutex // serializes write and writeRTCP
	scratch []byte
	timer   *time.Timer
	armed   bool

	readers atomic.Pointer[[]*fanReader] // playing, copy on write

	mu       sync.Mutex
	sessions map[*gortsplib.ServerSession]*fanReader

	pktsOut atomic.Uint64
}

type fanMedia struct {
	// keyframe, for an H264 or H265 media, reports whether a packet starts
	// an access unit a decoder can start from; nil for other medias.
	keyframe func(*rtp.Packet) bool
	formats  map[uint8]format.Format
	ssrc     map[uint8]uint32
	senders  map[uint8]*rtcpsender.RTCPSender
}

type fanReader struct {
	conn    *coalescingConn
	setups  []*[2]int // interleaved IDs asked for, per SETUP; nil: the server chose
	channel []int     // per media of the description, -1 when not set up
	// waitKey, per media, holds a player's video back until the first
	// packet of a keyframe, so the first frame it decodes is complete
	// (otherwise ffmpeg logs "Missing reference picture" for the P-frames
	// of the GOP it joined in). Downstream relays are not held back: their
	// players already have the references, and a relay switching to a new
	// parent must not lose a GOP. Set before the reader starts; then
	// touched only by write, under wmu.
	waitKey   []bool
	waitUntil time.Time // when to stop waiting for a keyframe
	gone      bool      // session closed (under tcpFan.mu)
}

func newTCPFan(srv *gortsplib.Server, desc *description.Session) (*tcpFan, error) {
	shadow := &gortsplib.ServerStream{Server: srv, Desc: desc}
	if err := shadow.Initialize(); err != nil {
		return nil, err
	}
	f := &tcpFan{shadow: shadow, desc: desc, sessions: map[*gortsplib.ServerSession]*fanReader{},
		scratch: make([]byte, 0, 2048)}
	f.readers.Store(&[]*fanReader{})
	stats := shadow.Stats()
	for i, medi := range desc.Medias {
		fm := fanMedia{formats: map[uint8]format.Format{}, ssrc: map[uint8]uint32{},
			senders: map[uint8]*rtcpsender.RTCPSender{}}
		for _, forma := range medi.Formats {
			switch forma.(type) {
			case *format.H264:
				fm.keyframe = h264KeyStart
			case *format.H265:
				fm.keyframe = h265KeyStart
			}
			pt := forma.PayloadType()
			fm.formats[pt] = forma
			fm.ssrc[pt] = stats.Medias[medi].Formats[forma].LocalSSRC
			fm.senders[pt] = rtcpsender.New(forma.ClockRate(), senderReportPeriod, time.Now,
				func(pkt rtcp.Packet) { f.writeRTCP(i, pkt) })
		}
		f.medias = append(f.medias, fm)
	}
	f.timer = time.AfterFunc(time.Hour, f.timedFlush)
	f.timer.Stop()
	return f, nil
}

// close stops the sender reports and ends the TCP readers' sessions.
func (f *tcpFan) close() {
	f.timer.Stop()
	for _, fm := range f.medias {
		for _, s := range fm.senders {
			s.Close()
		}
	}
	f.shadow.Close()
}

// setup records a TCP reader's SETUP; the session is set up on shadow.
func (f *tcpFan) setup(sess *gortsplib.ServerSession, conn *coalescingConn, req *base.Request) {
	var ids *[2]int
	var ths headers.Transports
	if err := ths.Unmarshal(req.Header["Transport"]); err == nil {
		for _, th := range ths {
			if th.Protocol == headers.TransportProtocolTCP {
				ids = th.InterleavedIDs
				break
			}
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	r := f.sessions[sess]
	if r == nil {
		r = &fanReader{conn: conn}
		f.sessions[sess] = r
	}
	r.setups = append(r.setups, ids)
}

// has reports whether sess reads through the fan.
func (f *tcpFan) has(sess *gortsplib.ServerSession) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.sessions[sess] != nil
}

// play maps the session's medias to interleaved channels the way gortsplib
// assigned them, and starts sending once the PLAY answer is queued. It
// relies on SetuppedMedias listing the medias in SETUP order.
// play starts sess. A player's H264 or H265 video waits for the next
// keyframe, for at most keyWait (0: it starts at once, mid-GOP).
func (f *tcpFan) play(sess *gortsplib.ServerSession, keyWait time.Duration) error {
	player := keyWait > 0
	f.mu.Lock()
	defer f.mu.Unlock()
	r := f.sessions[sess]
	if r == nil {
		return fmt.Errorf("PLAY on a session this stream never set up")
	}
	medias := sess.SetuppedMedias()
	if len(medias) != len(r.setups) {
		return fmt.Errorf("%d medias set up, %d SETUP requests seen", len(medias), len(r.setups))
	}
	chans, err := interleavedChannels(r.setups)
	if err != nil {
		return err
	}
	channel := make([]int, len(f.desc.Medias))
	for i := range channel {
		channel[i] = -1
	}
	for i, medi := range medias {
		idx := slices.Index(f.desc.Medias, medi)
		if idx < 0 {
			return fmt.Errorf("a set-up media is not in the stream")
		}
		channel[idx] = chans[i]
	}
	r.channel = channel
	r.waitKey = make([]bool, len(f.desc.Medias))
	r.waitUntil = time.Now().Add(keyWait)
	for i := range r.waitKey {
		r.waitKey[i] = player && f.medias[i].keyframe != nil
	}
	r.conn.mu.Lock()
	r.conn.afterResponse = func() { f.start(r) }
	r.conn.mu.Unlock()
	return nil
}

// interleavedChannels returns the RTP channel of each SETUP of a session,
// in order, given the interleaved IDs each asked for (nil: none). It
// copies what gortsplib v4.16.2 answers but does not export: the channel
// asked for, else the lowest even channel whose pair overlaps no channel
// pair already set up (ServerSession.findFreeChannelPair). The fan sends
// on these channels without seeing gortsplib's answer;
// TestFanChannelsMatchGortsplib fails if gortsplib starts choosing
// otherwise.
func interleavedChannels(setups []*[2]int) ([]int, error) {
	used := make([]int, 0, len(setups))
	inUse := func(ch int) bool {
		for _, u := range used {
			if u == ch || u+1 == ch || u == ch+1 {
				return true
			}
		}
		return false
	}
	for _, ids := range setups {
		var ch int
		if ids != nil {
			ch = ids[0]
		} else {
			for ch = 0; inUse(ch); ch += 2 {
			}
		}
		if ch < 0 || ch > 254 {
			return nil, fmt.Errorf("interleaved channel %d out of range", ch)
		}
		used = append(used, ch)
	}
	return used, nil
}

func (f *tcpFan) start(r *fanReader) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if r.gone {
		return // closed in between
	}
	cur := *f.readers.Load()
	if slices.Contains(cur, r) {
		return
	}
	next := append(slices.Clip(cur), r)
	f.readers.Store(&next)
}

// pause stops sending to a session; remove forgets it.
func (f *tcpFan) pause(sess *gortsplib.ServerSession) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.stopLocked(f.sessions[sess])
}

func (f *tcpFan) remove(sess *gortsplib.ServerSession) {
	f.mu.Lock()
	defer f.mu.Unlock()
	r := f.sessions[sess]
	delete(f.sessions, sess)
	if r != nil {
		r.gone = true
	}
	f.stopLocked(r)
}

func (f *tcpFan) stopLocked(r *fanReader) {
	if r == nil {
		return
	}
	r.conn.mu.Lock()
	r.conn.afterResponse = nil
	r.conn.mu.Unlock()
	cur := *f.readers.Load()
	if i := slices.Index(cur, r); i >= 0 {
		next := slices.Delete(slices.Clone(cur), i, i+1)
		f.readers.Store(&next)
		// A write that loaded the old list may still be appending to r:
		// wait for it, so nothing follows the PAUSE answer.
		f.wmu.Lock()
		f.wmu.Unlock()
	}
}

func (f *tcpFan) playing() int { return len(*f.readers.Load()) }

// write sends one packet of media to every playing TCP reader.
func (f *tcpFan) write(media int, pkt *rtp.Packet) {
	f.wmu.Lock()
	defer f.wmu.Unlock()
	fm := &f.medias[media]
	forma := fm.formats[pkt.PayloadType]
	if forma == nil {
		return
	}
	pkt.SSRC = fm.ssrc[pkt.PayloadType]
	fm.senders[pkt.PayloadType].ProcessPacket(pkt, time.Now(), forma.PTSEqualsDTS(pkt))
	readers := *f.readers.Load()
	if len(readers) == 0 {
		return
	}
	n := pkt.MarshalSize()
	if n > 0xffff {
		return // cannot be interleaved
	}
	f.scratch = slices.Grow(f.scratch[:0], n)[:n]
	if _, err := pkt.MarshalTo(f.scratch); err != nil {
		return
	}
	sent := 0
	key := -1 // whether pkt starts a keyframe, found out once if asked
	var now time.Time
	for _, r := range readers {
		if r.waitKey[media] {
			if key < 0 {
				key = 0
				if fm.keyframe(pkt) {
					key = 1
				}
				now = time.Now()
			}
			if key == 0 && now.Before(r.waitUntil) {
				continue
			}
			r.waitKey[media] = false
		}
		if ch := r.channel[media]; ch >= 0 {
			if r.conn.frame(byte(ch), f.scratch, pkt.Marker) == nil {
				sent++
			}
		}
	}
	f.pktsOut.Add(uint64(sent))
	if pkt.Marker {
		if f.armed {
			f.armed = false
			f.timer.Stop()
		}
	} else if !f.armed {
		f.armed = true
		f.timer.Reset(flushDelay)
	}
}

// timedFlush sends what waits for a frame end that is late.
func (f *tcpFan) timedFlush() {
	f.wmu.Lock()
	defer f.wmu.Unlock()
	if !f.armed {
		return
	}
	f.armed = false
	for _, r := range *f.readers.Load() {
		_ = r.conn.flush()
	}
}

func (f *tcpFan) writeRTCP(media int, pkt rtcp.Packet) {
	b, err := pkt.Marshal()
	if err != nil || len(b) > 0xffff {
		return
	}
	f.wmu.Lock()
	defer f.wmu.Unlock()
	for _, r := range *f.readers.Load() {
		if ch := r.channel[media]; ch >= 0 {
			_ = r.conn.frame(byte(ch+1), b, true)
		}
	}
}

// h264KeyStart reports whether an H264 RTP packet (RFC 6184) starts an
// access unit a decoder can start from: an SPS or an IDR slice, alone, at
// the start of a fragment, or in an aggregate.
func h264KeyStart(pkt *rtp.Packet) bool {
	p := pkt.Payload
	if len(p) < 1 {
		return false
	}
	key := func(t byte) bool { return t == 5 || t == 7 }
	switch t := p[0] & 0x1f; t {
	case 24: // STAP-A: 16-bit sizes, then units
		for p = p[1:]; len(p) > 2; {
			n := int(p[0])<<8 | int(p[1])
			if n < 1 || len(p) < 2+n {
				return false
			}
			if key(p[2] & 0x1f) {
				return true
			}
			p = p[2+n:]
		}
		return false
	case 28: // FU-A: the start fragment of an IDR slice
		return len(p) > 1 && p[1]&0x80 != 0 && key(p[1]&0x1f)
	default:
		return key(t)
	}
}

// h265KeyStart is h264KeyStart for H265 (RFC 7798): a VPS or SPS, or an
// IRAP picture (types 16..21).
func h265KeyStart(pkt *rtp.Packet) bool {
	p := pkt.Payload
	if len(p) < 3 {
		return false
	}
	key := func(t byte) bool { return (t >= 16 && t <= 21) || t == 32 || t == 33 }
	switch t := (p[0] >> 1) & 0x3f; t {
	case 48: // AP: 16-bit sizes, then units
		for p = p[2:]; len(p) > 3; {
			n := int(p[0])<<8 | int(p[1])
			if n < 2 || len(p) < 2+n {
				return false
			}
			if key((p[2] >> 1) & 0x3f) {
				return true
			}
			p = p[2+n:]
		}
		return false
	case 49: // FU: the start fragment of an IRAP picture
		return p[2]&0x80 != 0 && key(p[2]&0x3f)
	default:
		return key(t)
	}
}
