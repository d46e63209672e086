package fanout

import (
	"encoding/binary"
	"net"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/net/ipv4"
)

// receiver counts the datagrams arriving on a UDP port of 127.0.0.1.
type receiver struct {
	c       *net.UDPConn
	addr    netip.AddrPort
	packets atomic.Int64
	bytes   atomic.Int64
	rtp     atomic.Int64 // datagrams that look like our RTP
}

func newReceiver(t testing.TB) *receiver {
	t.Helper()
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	return startReceiver(t, c)
}

func startReceiver(t testing.TB, c *net.UDPConn) *receiver {
	_ = c.SetReadBuffer(4 << 20)
	r := &receiver{c: c, addr: c.LocalAddr().(*net.UDPAddr).AddrPort()}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		buf := make([]byte, 65536)
		for {
			n, _, err := c.ReadFromUDPAddrPort(buf)
			if err != nil {
				return
			}
			r.packets.Add(1)
			r.bytes.Add(int64(n))
			if n >= 12 && buf[0] == 0x80 {
				r.rtp.Add(1)
			}
		}
	}()
	t.Cleanup(func() { c.Close(); wg.Wait() })
	return r
}

// newReceivers starts n receivers and returns them with their URLs.
func newReceivers(t testing.TB, n int) ([]*receiver, []string) {
	t.Helper()
	var rs []*receiver
	var urls []string
	for range n {
		r := newReceiver(t)
		rs = append(rs, r)
		urls = append(urls, r.url())
	}
	return rs, urls
}

// receiverPair listens on two adjacent ports, for RTP and RTCP.
func receiverPair(t testing.TB) (rtp, rtcp *receiver) {
	t.Helper()
	for range 100 {
		a, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			t.Fatal(err)
		}
		p := a.LocalAddr().(*net.UDPAddr).Port
		b, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: p + 1})
		if err != nil {
			a.Close()
			continue
		}
		return startReceiver(t, a), startReceiver(t, b)
	}
	t.Fatal("no two adjacent free ports")
	return nil, nil
}

func (r *receiver) url() string { return "udp://" + r.addr.String() }

// rtpSender writes RTP packets of a fixed size with consecutive sequence
// numbers.
type rtpSender struct {
	c   *net.UDPConn
	to  netip.AddrPort
	seq uint16
	buf []byte
}

func newRTPSender(t testing.TB, to netip.AddrPort, size int) *rtpSender {
	t.Helper()
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	buf := make([]byte, size)
	buf[0], buf[1] = 0x80, 96
	binary.BigEndian.PutUint32(buf[8:], 0x1234abcd)
	return &rtpSender{c: c, to: to, buf: buf}
}

func (s *rtpSender) send(t testing.TB, n int) {
	t.Helper()
	for range n {
		binary.BigEndian.PutUint16(s.buf[2:], s.seq)
		s.seq++
		if _, err := s.c.WriteToUDPAddrPort(s.buf, s.to); err != nil {
			t.Fatal(err)
		}
	}
}

// sendPaced sends n packets in bursts of burst, a millisecond apart.
func (s *rtpSender) sendPaced(t testing.TB, n, burst int) {
	t.Helper()
	for sent := 0; sent < n; sent += burst {
		s.send(t, min(burst, n-sent))
		time.Sleep(time.Millisecond)
	}
}

// sendAtRate sends n packets as a 25 fps video stream of bitrate bits/s
// would: one burst of packets per frame.
func (s *rtpSender) sendAtRate(t testing.TB, n int, bitrate int) {
	t.Helper()
	pps := bitrate / 8 / len(s.buf)
	perFrame := max(pps/25, 1)
	start := time.Now()
	for sent, frame := 0, 0; sent < n; frame++ {
		k := min(perFrame, n-sent)
		s.send(t, k)
		sent += k
		if d := time.Until(start.Add(time.Duration(frame+1) * 40 * time.Millisecond)); d > 0 {
			time.Sleep(d)
		}
	}
}

// waitFor polls cond; the timeout only bounds a broken test, nothing is
// asserted about time.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// waitStats is waitFor that shows the fanout's stats and the receivers'
// counts when it fails.
func waitStats(t testing.TB, f *Fanout, rs []*receiver, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			var got []int64
			for _, r := range rs {
				got = append(got, r.packets.Load())
			}
			t.Fatalf("timed out waiting for %s\nstats: %+v\nreceived: %v", what, f.Stats(), got)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func startFanout(t testing.TB, f *Fanout) *Fanout {
	t.Helper()
	if err := f.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(f.Close)
	return f
}

// inputAddr is where to send to reach a udp input.
func inputAddr(f *Fanout) netip.AddrPort { return f.src.(*udpSource).bound.Bind }

// deadPort returns a local UDP address nobody listens on, so sends to it
// draw ICMP port unreachable.
func deadPort(t testing.TB) netip.AddrPort {
	t.Helper()
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	a := c.LocalAddr().(*net.UDPAddr).AddrPort()
	c.Close()
	return a
}

// fakeSocket wraps a sending socket's writer: it plays a full socket
// while full is set, and fails every message to failAddr as the kernel
// does (the call stops at the first failing message).
type fakeSocket struct {
	w        batchWriter
	full     atomic.Bool
	failAddr netip.AddrPort
	calls    atomic.Int64
}

func (f *fakeSocket) WriteBatch(ms []ipv4.Message, flags int) (int, error) {
	f.calls.Add(1)
	if flags&syscall.MSG_DONTWAIT == 0 {
		panic("a blocking write on the data path")
	}
	if f.full.Load() {
		return -1, &net.OpError{Op: "write", Net: "udp", Err: os.NewSyscallError("sendmmsg", syscall.EAGAIN)}
	}
	for i, m := range ms {
		if a, ok := m.Addr.(*net.UDPAddr); ok && f.failAddr.IsValid() && a.AddrPort() == f.failAddr {
			if i == 0 {
				return -1, &net.OpError{Op: "write", Net: "udp", Err: os.NewSyscallError("sendmmsg", syscall.EPERM)}
			}
			return f.w.WriteBatch(ms[:i], flags)
		}
	}
	return f.w.WriteBatch(ms, flags)
}
