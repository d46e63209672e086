package fanout

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/bluenviron/gortsplib/v4"
	"github.com/bluenviron/gortsplib/v4/pkg/base"
	"github.com/bluenviron/gortsplib/v4/pkg/description"
	"github.com/bluenviron/gortsplib/v4/pkg/format"
	"github.com/pion/rtcp"
	"github.com/pion/rtp"

	"github.com/ocm-overlay/ocm/internal/retry"
)

// rtspSource pulls every media of an RTSP URL; media i goes to the
// destinations' port+2i (RTP) and port+2i+1 (RTCP). A lost session is
// opened again for up to Fanout.RTSPReconnect.
type rtspSource struct {
	f      *Fanout
	u      *base.URL
	ctx    context.Context // ended by close
	cancel context.CancelFunc

	mu     sync.Mutex
	c      *gortsplib.Client
	medias []*description.Media
	// index is read by the client's callbacks; it is replaced only while
	// no client is playing (before Play).
	index map[*description.Media]int
}

func openRTSP(f *Fanout) (*rtspSource, error) {
	u, err := base.ParseURL(f.in.URL)
	if err != nil {
		return nil, fmt.Errorf("--from: %w: %v", ErrBadURL, err)
	}
	if f.RTSPTransport != "" {
		switch f.RTSPTransport {
		case "udp", "tcp", "multicast":
		default:
			return nil, fmt.Errorf("rtsp transport %q: want udp, tcp or multicast", f.RTSPTransport)
		}
	}
	s := &rtspSource{f: f, u: u}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	c, medias, index, err := s.connect()
	if err != nil {
		return nil, err
	}
	s.c, s.medias, s.index = c, medias, index
	return s, nil
}

// connect opens a session and sets up every media, not playing yet.
func (s *rtspSource) connect() (*gortsplib.Client, []*description.Media, map[*description.Media]int, error) {
	f, u := s.f, s.u
	c := &gortsplib.Client{
		Scheme:            u.Scheme,
		Host:              u.Host,
		UDPReadBufferSize: f.ReadBuffer,
		OnTransportSwitch: func(err error) { f.Log.Info("rtsp transport switched", "reason", err) },
		OnPacketsLost:     func(uint64) {}, // counted by the sequence-gap counter
		OnDecodeError:     func(error) { f.inStats.errors.Add(1) },
	}
	if f.RTSPTransport != "" {
		t := map[string]gortsplib.Transport{"udp": gortsplib.TransportUDP, "tcp": gortsplib.TransportTCP,
			"multicast": gortsplib.TransportUDPMulticast}[f.RTSPTransport]
		c.Transport = &t
	}
	if err := c.Start2(); err != nil {
		return nil, nil, nil, fmt.Errorf("rtsp %s: %w", s.addr(), err)
	}
	desc, _, err := c.Describe(u)
	if err != nil {
		c.Close()
		return nil, nil, nil, fmt.Errorf("rtsp describe %s: %w", s.addr(), err)
	}
	var medias []*description.Media
	index := map[*description.Media]int{}
	for _, m := range desc.Medias {
		if !m.IsBackChannel {
			index[m] = len(medias)
			medias = append(medias, m)
		}
	}
	if len(medias) == 0 {
		c.Close()
		return nil, nil, nil, fmt.Errorf("rtsp %s: no media to receive", s.addr())
	}
	if len(medias) > 127 {
		c.Close()
		return nil, nil, nil, fmt.Errorf("rtsp %s: %d medias, at most 127 supported", s.addr(), len(medias))
	}
	if err := c.SetupAll(desc.BaseURL, medias); err != nil {
		c.Close()
		return nil, nil, nil, fmt.Errorf("rtsp setup %s: %w", s.addr(), err)
	}
	c.OnPacketRTPAny(s.onRTP)
	c.OnPacketRTCPAny(s.onRTCP)
	return c, medias, index, nil
}

// play starts the flow once the outputs exist.
func (s *rtspSource) play() error {
	if _, err := s.client().Play(nil); err != nil {
		return fmt.Errorf("rtsp play %s: %w", s.addr(), err)
	}
	return nil
}

func (s *rtspSource) addr() string { return s.f.in.String() }

func (s *rtspSource) client() *gortsplib.Client {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.c
}

func (s *rtspSource) close() {
	s.cancel()
	s.client().Close()
}

// run waits for the session to end and opens it again while
// RTSPReconnect allows.
func (s *rtspSource) run() error {
	for {
		err := s.client().Wait()
		if s.ctx.Err() != nil {
			return nil
		}
		err = fmt.Errorf("rtsp %s: %w", s.addr(), err)
		if s.f.RTSPReconnect <= 0 {
			return err
		}
		s.f.Log.Warn("rtsp input lost: reconnecting", "from", s.addr(), "err", err, "for", s.f.RTSPReconnect)
		if err := s.reconnect(err); err != nil {
			return err
		}
	}
}

// reconnect opens the session again, with backoff, until RTSPReconnect has
// passed since it was lost; lost is returned when it gives up.
func (s *rtspSource) reconnect(lost error) error {
	give := time.Now().Add(s.f.RTSPReconnect)
	backoff := retry.Backoff{Min: 250 * time.Millisecond, Max: 5 * time.Second}
	for tries := 1; ; tries++ {
		c, medias, index, err := s.connect()
		if err == nil && len(medias) != len(s.medias) {
			c.Close()
			err = fmt.Errorf("rtsp %s: the stream now has %d medias, it had %d: the outputs' ports no longer match",
				s.addr(), len(medias), len(s.medias))
		}
		if err == nil {
			s.mu.Lock()
			s.c, s.medias, s.index = c, medias, index
			s.mu.Unlock()
			if s.ctx.Err() != nil {
				c.Close() // close ran before s.c was replaced
				return nil
			}
			if _, err = c.Play(nil); err == nil {
				s.f.inStats.reconnects.Add(1)
				s.f.Log.Info("rtsp input back", "from", s.addr(), "tries", tries)
				return nil
			}
			c.Close()
			err = fmt.Errorf("rtsp play %s: %w", s.addr(), err)
		}
		wait := backoff.Next()
		if !time.Now().Add(wait).Before(give) {
			return fmt.Errorf("%w; gave up reconnecting after %v (last try: %v)", lost, s.f.RTSPReconnect, err)
		}
		s.f.Log.Info("rtsp input: reconnect failed", "from", s.addr(), "err", err, "retry_in", wait)
		if !retry.Sleep(s.ctx, wait) {
			return nil
		}
	}
}

func (s *rtspSource) onRTP(m *description.Media, _ format.Format, pkt *rtp.Packet) {
	f := s.f
	i := s.index[m] // see index: no lock needed
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
