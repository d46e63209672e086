// Package testsrc is the built-in test stream: a short H264 clip embedded in
// the binary and played in real time as RTP, so the whole system runs on a
// machine with nothing but Go.
package testsrc

import (
	"context"
	_ "embed" // for the clip
	"errors"
	"fmt"
	"math/rand/v2"
	"sync/atomic"
	"time"

	"github.com/bluenviron/gortsplib/v4/pkg/description"
	"github.com/bluenviron/gortsplib/v4/pkg/format"
	"github.com/bluenviron/gortsplib/v4/pkg/format/rtph264"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"
	"github.com/pion/rtp"
)

// clip is 10 s of 640x360 H264 at 25 fps, a GOP of 1 s, SPS and PPS before
// every IDR; gen-clip.sh regenerates it.
//
//go:embed clip.h264
var clip []byte

const (
	payloadType = 96
	// payloadMaxSize keeps an RTP packet (12-byte header) inside a 1500-byte
	// MTU with room for IP/UDP or TCP and the interleaved-frame header.
	payloadMaxSize = 1400
	clockRate      = 90000
	frameRate      = 25
	frameDuration  = time.Second / frameRate
	tsPerFrame     = clockRate / frameRate // 3600
	// maxLag is how far behind its schedule Run may fall (a stalled process,
	// a suspended VM) before it gives up catching up and restarts the
	// schedule from now, rather than bursting the backlog at readers.
	maxLag = time.Second
)

// ErrRunning is returned by Run when the Source is already running.
var ErrRunning = errors.New("testsrc: source already running")

// frame is one access unit, packetized once at New: Run only stamps the
// headers, so playing allocates nothing per packet.
type frame struct {
	payloads [][]byte // RTP payloads; the last one carries the marker bit
}

// Source plays the embedded clip in real time as RTP packets, looping forever
// with continuous sequence numbers and timestamps across loops.
type Source struct {
	media  *description.Media
	frames []frame
	ssrc   uint32

	// interval is the wall time between frames: frameDuration, shortened in
	// tests so a loop takes milliseconds. RTP timestamps always step by
	// tsPerFrame whatever it is.
	interval time.Duration

	running atomic.Bool
	// Where the next Run continues, so a restarted Source never sends its
	// readers backwards. Only the running Run touches them.
	nextSeq uint16
	nextTS  uint32
	lastRun time.Time // when the previous Run sent its last frame
}

// New parses the embedded clip: its SPS and PPS and its access units.
func New() (*Source, error) {
	return newSource(clip)
}

func newSource(data []byte) (*Source, error) {
	aus, err := splitAccessUnits(data)
	if err != nil {
		return nil, err
	}
	if len(aus) == 0 {
		return nil, errors.New("testsrc: clip has no access units")
	}
	if !h264.IsRandomAccess(aus[0]) {
		return nil, errors.New("testsrc: clip does not start with an IDR")
	}
	var sps, pps []byte
	for _, nalu := range aus[0] {
		switch h264.NALUType(nalu[0] & 0x1f) {
		case h264.NALUTypeSPS:
			sps = nalu
		case h264.NALUTypePPS:
			pps = nalu
		}
	}
	if sps == nil || pps == nil {
		return nil, errors.New("testsrc: first access unit lacks SPS or PPS")
	}
	var parsed h264.SPS
	if err := parsed.Unmarshal(sps); err != nil {
		return nil, fmt.Errorf("testsrc: SPS: %w", err)
	}

	forma := &format.H264{
		PayloadTyp:        payloadType,
		SPS:               sps,
		PPS:               pps,
		PacketizationMode: 1,
	}
	enc := &rtph264.Encoder{
		PayloadType:       payloadType,
		PayloadMaxSize:    payloadMaxSize,
		PacketizationMode: 1,
	}
	if err := enc.Init(); err != nil {
		return nil, err
	}
	frames := make([]frame, len(aus))
	for i, au := range aus {
		pkts, err := enc.Encode(au)
		if err != nil {
			return nil, fmt.Errorf("testsrc: packetize frame %d: %w", i, err)
		}
		f := frame{payloads: make([][]byte, len(pkts))}
		for j, p := range pkts {
			f.payloads[j] = p.Payload
		}
		frames[i] = f
	}

	return &Source{
		media: &description.Media{
			Type:    description.MediaTypeVideo,
			Formats: []format.Format{forma},
		},
		frames:   frames,
		ssrc:     *enc.SSRC,
		interval: frameDuration,
		nextSeq:  uint16(rand.Uint32()),
		nextTS:   rand.Uint32(),
	}, nil
}

// Media returns the stream's one video media, the same pointer on every
// call so it can be used as a key (gortsplib's ServerStream does). Callers
// must not modify it.
func (s *Source) Media() *description.Media { return s.media }

// Run sends the clip through write, one access unit every 40 ms, looping
// forever, until ctx is done; it then returns nil. Each frame is due at
// start + n*40ms, so pacing does not drift. write must neither retain the
// packet nor modify its payload, which is shared. A later Run continues the
// sequence numbers and timestamps (advanced by the wall time in between)
// from the clip's first frame; Runs must not overlap (ErrRunning).
func (s *Source) Run(ctx context.Context, write func(*rtp.Packet)) error {
	if !s.running.CompareAndSwap(false, true) {
		return ErrRunning
	}
	defer s.running.Store(false)

	seq, ts := s.nextSeq, s.nextTS
	if !s.lastRun.IsZero() {
		// Keep timestamps in step with the wall clock across the pause, so
		// readers' jitter buffers see a gap rather than time standing still.
		gap := time.Since(s.lastRun)
		ts += uint32(int64(gap/s.interval)) * tsPerFrame
	}

	pkt := &rtp.Packet{}
	timer := time.NewTimer(time.Hour)
	timer.Stop() // armed per frame below; since Go 1.23 Reset needs no drain
	defer timer.Stop()

	start := time.Now()
	var n int64 // frames sent in this Run, for the schedule
	defer func() {
		s.nextSeq, s.nextTS = seq, ts
		s.lastRun = time.Now()
	}()

	for i := 0; ; i = (i + 1) % len(s.frames) {
		due := start.Add(time.Duration(n) * s.interval)
		if wait := time.Until(due); wait > 0 {
			timer.Reset(wait)
			select {
			case <-ctx.Done():
				return nil
			case <-timer.C:
			}
		} else {
			if ctx.Err() != nil {
				return nil
			}
			if -wait > maxLag {
				start, n = time.Now(), 0
			}
		}

		f := &s.frames[i]
		last := len(f.payloads) - 1
		for j, payload := range f.payloads {
			// The whole header, since write may have changed it (gortsplib
			// sets its own SSRC).
			pkt.Header = rtp.Header{
				Version:        2,
				PayloadType:    payloadType,
				SequenceNumber: seq,
				Timestamp:      ts,
				SSRC:           s.ssrc,
				Marker:         j == last,
			}
			pkt.Payload = payload
			write(pkt)
			seq++
		}
		ts += tsPerFrame
		n++
	}
}

// splitAccessUnits cuts an Annex-B stream into access units: a new one
// starts with a non-VCL NALU that may only precede a picture (AUD, SEI, SPS,
// PPS, ...) or with a slice whose first_mb_in_slice is 0, once the current
// unit already holds a slice (H.264 7.4.1.2.3, simplified for a stream
// without redundant pictures).
func splitAccessUnits(data []byte) ([][][]byte, error) {
	var nalus h264.AnnexB
	if err := nalus.Unmarshal(data); err != nil {
		return nil, fmt.Errorf("testsrc: clip: %w", err)
	}
	var aus [][][]byte
	var cur [][]byte
	hasSlice := false
	for _, nalu := range nalus {
		if len(nalu) < 2 {
			return nil, errors.New("testsrc: clip has an empty NALU")
		}
		typ := h264.NALUType(nalu[0] & 0x1f)
		isSlice := typ == h264.NALUTypeNonIDR || typ == h264.NALUTypeIDR
		startsAU := false
		switch {
		case isSlice:
			// first_mb_in_slice is the first ue(v) of the header: 0 is the
			// single bit 1.
			startsAU = hasSlice && nalu[1]&0x80 != 0
		case typ == h264.NALUTypeAccessUnitDelimiter || typ == h264.NALUTypeSEI ||
			typ == h264.NALUTypeSPS || typ == h264.NALUTypePPS ||
			(typ >= h264.NALUTypePrefix && typ <= h264.NALUTypeReserved18):
			startsAU = hasSlice
		}
		if startsAU {
			aus = append(aus, cur)
			cur, hasSlice = nil, false
		}
		cur = append(cur, nalu)
		hasSlice = hasSlice || isSlice
	}
	if hasSlice {
		aus = append(aus, cur)
	}
	return aus, nil
}
