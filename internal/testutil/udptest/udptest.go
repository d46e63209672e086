// Package udptest holds the UDP receivers and RTP senders several
// packages' tests use, and a poll for a condition. It imports nothing of
// this module, so every package's own tests may use it (internal/fanout's
// included, which internal/testutil imports through lab).
package udptest

import (
	"encoding/binary"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Listen returns a UDP socket on a free port of 127.0.0.1, closed when
// the test ends.
func Listen(t testing.TB) *net.UDPConn {
	t.Helper()
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// Pair binds an even UDP port of 127.0.0.1 and the one above it, as RTP
// and RTCP use them; the caller closes them.
func Pair(t testing.TB) (rtp, rtcp *net.UDPConn) {
	t.Helper()
	for range 200 {
		a, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			t.Fatal(err)
		}
		p := a.LocalAddr().(*net.UDPAddr).Port
		if p%2 == 0 {
			if b, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: p + 1}); err == nil {
				return a, b
			}
		}
		a.Close()
	}
	t.Fatal("no free even port pair")
	return nil, nil
}

// Receiver counts the datagrams arriving on a UDP socket.
type Receiver struct {
	Addr    netip.AddrPort
	Packets atomic.Int64
	Bytes   atomic.Int64
	RTP     atomic.Int64 // datagrams that look like RTP version 2
}

// NewReceiver counts the datagrams arriving on a free port of 127.0.0.1
// until the test ends.
func NewReceiver(t testing.TB) *Receiver {
	t.Helper()
	return StartReceiver(t, Listen(t))
}

// StartReceiver counts the datagrams arriving on c until the test ends,
// then closes c.
func StartReceiver(t testing.TB, c *net.UDPConn) *Receiver {
	_ = c.SetReadBuffer(4 << 20)
	r := &Receiver{Addr: c.LocalAddr().(*net.UDPAddr).AddrPort()}
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
			r.Packets.Add(1)
			r.Bytes.Add(int64(n))
			if n >= 12 && buf[0] == 0x80 {
				r.RTP.Add(1)
			}
		}
	}()
	t.Cleanup(func() { c.Close(); wg.Wait() })
	return r
}

// URL is the receiver's address as an rtp-fanout output.
func (r *Receiver) URL() string { return "udp://" + r.Addr.String() }

// RTPSender writes RTP packets (version 2, payload type 96) of a fixed
// size with consecutive sequence numbers from a socket of 127.0.0.1.
type RTPSender struct {
	c   *net.UDPConn
	To  netip.AddrPort
	Seq uint16 // of the next packet
	Buf []byte // the packet, its sequence number written by Send
}

// NewRTPSender sends packets of size bytes to to; its socket closes when
// the test ends.
func NewRTPSender(t testing.TB, to netip.AddrPort, size int) *RTPSender {
	t.Helper()
	buf := make([]byte, size)
	buf[0], buf[1] = 0x80, 96
	binary.BigEndian.PutUint32(buf[8:], 0x1234abcd)
	return &RTPSender{c: Listen(t), To: to, Buf: buf}
}

// Send sends n packets at once.
func (s *RTPSender) Send(t testing.TB, n int) {
	t.Helper()
	for range n {
		binary.BigEndian.PutUint16(s.Buf[2:], s.Seq)
		s.Seq++
		if _, err := s.c.WriteToUDPAddrPort(s.Buf, s.To); err != nil {
			t.Fatal(err)
		}
	}
}

// SendPaced sends n packets in bursts of burst, a millisecond apart.
func (s *RTPSender) SendPaced(t testing.TB, n, burst int) {
	t.Helper()
	for sent := 0; sent < n; sent += burst {
		s.Send(t, min(burst, n-sent))
		time.Sleep(time.Millisecond)
	}
}

// SendAtRate sends n packets as a 25 fps video stream of bitrate bits/s
// would: one burst of packets per frame.
func (s *RTPSender) SendAtRate(t testing.TB, n int, bitrate int) {
	t.Helper()
	pps := bitrate / 8 / len(s.Buf)
	perFrame := max(pps/25, 1)
	start := time.Now()
	for sent, frame := 0, 0; sent < n; frame++ {
		k := min(perFrame, n-sent)
		s.Send(t, k)
		sent += k
		if d := time.Until(start.Add(time.Duration(frame+1) * 40 * time.Millisecond)); d > 0 {
			time.Sleep(d)
		}
	}
}

// WaitFor polls cond every 5 ms until it holds; the limit of 30 s only
// bounds a broken test, nothing is asserted about time.
func WaitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
