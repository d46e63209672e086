package fanout

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"

	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
)

// udpSource receives RTP on a UDP port (and RTCP on port+1), unicast or
// from a joined multicast group.
type udpSource struct {
	f       *Fanout
	rtp     *net.UDPConn
	rtcp    *net.UDPConn // nil without RTCP
	bound   Input
	closing atomic.Bool
}

// pairTries bounds the search for two adjacent free ports when the input
// asks for port 0.
const pairTries = 64

func openUDP(f *Fanout) (*udpSource, error) {
	in := f.in
	reuse := in.Group.IsValid()
	s := &udpSource{f: f, bound: in}
	var err error
	switch {
	case in.RTCP && in.Bind.Port() == 0:
		for range pairTries {
			if s.rtp, err = listenInput(in.Bind, reuse, f.ReadBuffer); err != nil {
				return nil, fmt.Errorf("listen %s: %w", in.Bind, err)
			}
			p := uint16(s.rtp.LocalAddr().(*net.UDPAddr).Port)
			if p < 65535 {
				if s.rtcp, err = listenInput(netip.AddrPortFrom(in.Bind.Addr(), p+1), reuse, f.ReadBuffer); err == nil {
					break
				}
			}
			s.rtp.Close()
			s.rtp = nil
		}
		if s.rtp == nil {
			return nil, fmt.Errorf("listen %s: no two adjacent free ports for RTP and RTCP", in.Bind)
		}
	default:
		if s.rtp, err = listenInput(in.Bind, reuse, f.ReadBuffer); err != nil {
			return nil, fmt.Errorf("listen %s: %w", in.Bind, err)
		}
		if in.RTCP {
			rtcpAddr := netip.AddrPortFrom(in.Bind.Addr(), in.Bind.Port()+1)
			if s.rtcp, err = listenInput(rtcpAddr, reuse, f.ReadBuffer); err != nil {
				s.rtp.Close()
				return nil, fmt.Errorf("listen %s for RTCP: %w (add ?rtcp=0 to --from to go without RTCP)", rtcpAddr, err)
			}
		}
	}
	s.bound.Bind = netip.AddrPortFrom(in.Bind.Addr(), uint16(s.rtp.LocalAddr().(*net.UDPAddr).Port))
	if in.Group.IsValid() {
		for _, c := range []*net.UDPConn{s.rtp, s.rtcp} {
			if c == nil {
				continue
			}
			if err := joinGroup(c, in.Group, f.ifi); err != nil {
				s.close()
				return nil, err
			}
		}
	}
	return s, nil
}

func joinGroup(c *net.UDPConn, group netip.Addr, ifi *net.Interface) error {
	g := &net.UDPAddr{IP: group.AsSlice()}
	var err error
	if group.Is4() {
		err = ipv4.NewPacketConn(c).JoinGroup(ifi, g)
	} else {
		err = ipv6.NewPacketConn(c).JoinGroup(ifi, g)
	}
	if err != nil {
		on := "the default interface (set --iface to choose one)"
		if ifi != nil {
			on = ifi.Name
		}
		return fmt.Errorf("join group %s on %s: %w", group, on, err)
	}
	return nil
}

func (s *udpSource) addr() string { return s.bound.String() }

func (s *udpSource) close() {
	s.closing.Store(true)
	s.rtp.Close()
	if s.rtcp != nil {
		s.rtcp.Close()
	}
}

func (s *udpSource) run() error {
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i, c := range []*net.UDPConn{s.rtp, s.rtcp} {
		if c == nil {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if errs[i] = s.loop(c, uint8(i)); errs[i] != nil {
				s.close() // one socket failing ends the input
			}
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// loop is the input's hot path: recvmmsg into pooled buffers, then one
// dispatch per batch.
func (s *udpSource) loop(c *net.UDPConn, ch uint8) error {
	f := s.f
	n := f.BatchSize
	r, err := newBatchReader(c, n)
	if err != nil {
		return err
	}
	owned := make([]*packet, 0, n) // empty buffers held between reads
	bufs := make([][]byte, n)
	sizes := make([]int, n)
	trunc := make([]bool, n)
	out := make([]*packet, 0, n)
	scratch := make([]byte, f.MaxPacketSize)
	defer func() {
		for _, p := range owned {
			p.release()
		}
	}()
	for {
		for len(owned) < n {
			p := f.pool.get()
			if p == nil {
				break
			}
			owned = append(owned, p)
		}
		k := len(owned)
		if k == 0 {
			// Every buffer is in flight: read and drop, so the socket
			// does not back up with stale packets.
			bufs[0] = scratch
			got, err := r.read(bufs[:1], sizes, trunc)
			if err != nil {
				return s.readErr(c, err)
			}
			f.inStats.drops.Add(uint64(got))
			continue
		}
		for i, p := range owned {
			bufs[i] = p.buf
		}
		got, err := r.read(bufs[:k], sizes, trunc)
		if err != nil {
			return s.readErr(c, err)
		}
		var bytes uint64
		out = out[:0]
		for i := range got {
			p := owned[i]
			if trunc[i] {
				f.inStats.truncated.Add(1)
				p.release()
				continue
			}
			p.n, p.ch = sizes[i], ch
			bytes += uint64(p.n)
			if ch == 0 {
				f.observeRTP(0, p.data())
			}
			out = append(out, p)
		}
		copy(owned, owned[got:])
		clear(owned[k-got:])
		owned = owned[:k-got]
		if ch == 0 {
			f.inStats.packets.Add(uint64(len(out)))
			f.inStats.bytes.Add(bytes)
		} else {
			f.inStats.rtcpPackets.Add(uint64(len(out)))
			f.inStats.rtcpBytes.Add(bytes)
		}
		f.dispatch(out)
		clear(out)
	}
}

func (s *udpSource) readErr(c *net.UDPConn, err error) error {
	if s.closing.Load() || errors.Is(err, net.ErrClosed) {
		return nil
	}
	return fmt.Errorf("read %s: %w", c.LocalAddr(), err)
}

// observeRTP feeds the sequence-gap counter of media and, on the first RTP
// packet, writes the SDP if it waited for the payload type.
func (f *Fanout) observeRTP(media int, b []byte) {
	if len(b) < 12 || b[0]>>6 != 2 {
		f.inStats.nonRTP.Add(1)
		return
	}
	pt := b[1] & 0x7f
	if pt >= 72 && pt <= 76 { // RTCP multiplexed on the RTP port
		return
	}
	seq := uint16(b[2])<<8 | uint16(b[3])
	ssrc := uint32(b[8])<<24 | uint32(b[9])<<16 | uint32(b[10])<<8 | uint32(b[11])
	f.gaps[media].Observe(ssrc, seq)
	if f.SDPFile != "" && !f.sdpDone.Load() {
		f.writeSniffedSDP(pt)
	}
}
