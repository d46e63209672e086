package fanout

import (
	"net"
	"net/netip"
	"os"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/ocm-overlay/ocm/internal/testutil/udptest"
	"golang.org/x/net/ipv4"
)

// newReceivers starts n receivers and returns them with their URLs.
func newReceivers(t testing.TB, n int) ([]*udptest.Receiver, []string) {
	t.Helper()
	var rs []*udptest.Receiver
	var urls []string
	for range n {
		r := udptest.NewReceiver(t)
		rs = append(rs, r)
		urls = append(urls, r.URL())
	}
	return rs, urls
}

// receiverPair counts the datagrams on an even port and the one above
// it, for RTP and RTCP.
func receiverPair(t testing.TB) (rtp, rtcp *udptest.Receiver) {
	t.Helper()
	a, b := udptest.Pair(t)
	return udptest.StartReceiver(t, a), udptest.StartReceiver(t, b)
}

// waitStats is udptest.WaitFor that shows the fanout's stats and the receivers'
// counts when it fails.
func waitStats(t testing.TB, f *Fanout, rs []*udptest.Receiver, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			var got []int64
			for _, r := range rs {
				got = append(got, r.Packets.Load())
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
