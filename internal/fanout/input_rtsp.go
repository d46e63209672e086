package fanout

import (
	"fmt"
	"sync/atomic"

	"github.com/bluenviron/gortsplib/v4"
	"github.com/bluenviron/gortsplib/v4/pkg/base"
	"github.com/bluenviron/gortsplib/v4/pkg/description"
	"github.com/bluenviron/gortsplib/v4/pkg/format"
	"github.com/pion/rtcp"
	"github.com/pion/rtp"
)

// rtspSource pulls every media of an RTSP URL; media i goes to the
// destinations' port+2i (RTP) and port+2i+1 (RTCP).
type rtspSource struct {
	f       *Fanout
	c       *gortsplib.Client
	u       *base.URL
	medias  []*description.Media
	index   map[*description.Media]int // read-only once playing
	closing atomic.Bool
}

func openRTSP(f *Fanout) (*rtspSource, error) {
	u, err := base.ParseURL(f.in.URL)
	if err != nil {
		return nil, fmt.Errorf("--from: %w: %v", ErrBadURL, err)
	}
	s := &rtspSource{f: f, u: u, index: map[*description.Media]int{}}
	s.c = &gortsplib.Client{
		Scheme:            u.Scheme,
		Host:              u.Host,
		UDPReadBufferSize: f.ReadBuffer,
		OnTransportSwitch: func(err error) { f.Log.Info("rtsp transport switched", "reason", err) },
		OnPacketsLost:     func(uint64) {}, // counted by the sequence-gap counter
		OnDecodeError:     func(error) { f.inStats.errors.Add(1) },
	}
	if f.RTSPTransport != "" {
		var t gortsplib.Transport
		switch f.RTSPTransport {
		case "udp":
			t = gortsplib.TransportUDP
		case "tcp":
			t = gortsplib.TransportTCP
		case "multicast":
			t = gortsplib.TransportUDPMulticast
		default:
			return nil, fmt.Errorf("rtsp transport %q: want udp, tcp or multicast", f.RTSPTransport)
		}
		s.c.Transport = &t
	}
	if err := s.c.Start2(); err != nil {
		return nil, fmt.Errorf("rtsp %s: %w", s.addr(), err)
	}
	desc, _, err := s.c.Describe(u)
	if err != nil {
		s.c.Close()
		return nil, fmt.Errorf("rtsp describe %s: %w", s.addr(), err)
	}
	for _, m := range desc.Medias {
		if !m.IsBackChannel {
			s.index[m] = len(s.medias)
			s.medias = append(s.medias, m)
		}
	}
	if len(s.medias) == 0 {
		s.c.Close()
		return nil, fmt.Errorf("rtsp %s: no media to receive", s.addr())
	}
	if len(s.medias) > 127 {
		s.c.Close()
		return nil, fmt.Errorf("rtsp %s: %d medias, at most 127 supported", s.addr(), len(s.medias))
	}
	if err := s.c.SetupAll(desc.BaseURL, s.medias); err != nil {
		s.c.Close()
		return nil, fmt.Errorf("rtsp setup %s: %w", s.addr(), err)
	}
	s.c.OnPacketRTPAny(s.onRTP)
	s.c.OnPacketRTCPAny(s.onRTCP)
	return s, nil
}

// play starts the flow once the outputs exist.
func (s *rtspSource) play() error {
	if _, err := s.c.Play(nil); err != nil {
		return fmt.Errorf("rtsp play %s: %w", s.addr(), err)
	}
	return nil
}

func (s *rtspSource) addr() string { return s.f.in.String() }

func (s *rtspSource) close() {
	s.closing.Store(true)
	s.c.Close()
}

func (s *rtspSource) run() error {
	err := s.c.Wait()
	if s.closing.Load() {
		return nil
	}
	return fmt.Errorf("rtsp %s: %w", s.addr(), err)
}

func (s *rtspSource) onRTP(m *description.Media, _ format.Format, pkt *rtp.Packet) {
	f := s.f
	i := s.index[m]
	p := f.pool.get()
	if p == nil {
		f.inStats.drops.Add(1)
		return
	}
	n, err := pkt.MarshalTo(p.buf)
	if err != nil {
		f.inStats.truncated.Add(1)
		p.release()
		return
	}
	p.n, p.ch = n, uint8(2*i)
	f.inStats.packets.Add(1)
	f.inStats.bytes.Add(uint64(n))
	f.gaps[i].Observe(pkt.SSRC, pkt.SequenceNumber)
	one := [1]*packet{p}
	f.dispatch(one[:])
}

func (s *rtspSource) onRTCP(m *description.Media, pkt rtcp.Packet) {
	f := s.f
	b, err := pkt.Marshal() // a few per second: allocating is fine here
	if err != nil {
		f.inStats.errors.Add(1)
		return
	}
	p := f.pool.get()
	if p == nil {
		f.inStats.drops.Add(1)
		return
	}
	if len(b) > len(p.buf) {
		f.inStats.truncated.Add(1)
		p.release()
		return
	}
	p.n, p.ch = copy(p.buf, b), uint8(2*s.index[m]+1)
	f.inStats.rtcpPackets.Add(1)
	f.inStats.rtcpBytes.Add(uint64(p.n))
	one := [1]*packet{p}
	f.dispatch(one[:])
}
