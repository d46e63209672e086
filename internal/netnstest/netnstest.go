// Package netnstest builds small LANs of network namespaces for tests that
// must cross a real network: a bridge in its own namespace and hosts, each
// a namespace with one veth on 10.X.Y.0/24 and a multicast route. It needs
// root; Need says whether the machine allows it.
package netnstest

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"

	"golang.org/x/net/ipv4"
	"golang.org/x/sys/unix"
)

// LAN is a bridge with hosts attached.
type LAN struct {
	prefix string
	sw     string
	Hosts  []Host
}

// Host is one namespace on the LAN.
type Host struct {
	NS, Dev string
	IP      netip.Addr
}

// Skip skips t, or fails it when the CI environment variable is set (CI
// must run every test), when ok is false.
func Skip(t testing.TB, ok bool, what string) {
	t.Helper()
	if ok {
		return
	}
	if os.Getenv("CI") != "" {
		t.Fatalf("CI is set but %s", what)
	}
	t.Skipf("skipped: %s", what)
}

// Need checks what the namespace tests need: root, ip, and the right to
// create a namespace (a container may lack it even as root).
func Need(t testing.TB) {
	t.Helper()
	if testing.Short() {
		t.Skip("network namespace test skipped in -short mode")
	}
	Skip(t, os.Geteuid() == 0, "network namespaces need root")
	_, err := exec.LookPath("ip")
	Skip(t, err == nil, "ip (iproute2) is not installed")
	probe := fmt.Sprintf("nt%06x-probe", rand.Uint32()&0xffffff)
	out, err := exec.Command("ip", "netns", "add", probe).CombinedOutput()
	if err == nil {
		_ = exec.Command("ip", "netns", "del", probe).Run()
	}
	Skip(t, err == nil, fmt.Sprintf("cannot create a network namespace: %v %s", err, bytes.TrimSpace(out)))
}

// IP runs the ip command, failing t on error.
func IP(t testing.TB, args ...string) {
	t.Helper()
	if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
		t.Fatalf("ip %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// AddNetns creates a namespace removed when the test ends.
func AddNetns(t testing.TB, name string) {
	t.Helper()
	IP(t, "netns", "add", name)
	t.Cleanup(func() {
		if out, err := exec.Command("ip", "netns", "del", name).CombinedOutput(); err != nil {
			t.Logf("ip netns del %s: %v %s", name, err, out)
		}
	})
}

// NewLAN builds a LAN of n hosts with names unique to this run.
func NewLAN(t testing.TB, n int) *LAN {
	t.Helper()
	id := rand.Uint32() & 0xffffff
	l := &LAN{prefix: fmt.Sprintf("nt%06x", id)}
	l.sw = l.prefix + "-sw"
	AddNetns(t, l.sw)
	IP(t, "-n", l.sw, "link", "add", "br0", "type", "bridge", "mcast_snooping", "0")
	IP(t, "-n", l.sw, "link", "set", "br0", "up")
	subnet := fmt.Sprintf("10.%d.%d", 100+id%100, (id>>8)%250)
	for i := range n {
		h := Host{
			NS:  fmt.Sprintf("%s-%c", l.prefix, 'a'+i),
			Dev: fmt.Sprintf("%s%c", l.prefix, 'a'+i),
			IP:  netip.MustParseAddr(fmt.Sprintf("%s.%d", subnet, i+1)),
		}
		peer := fmt.Sprintf("%sp%c", l.prefix, 'a'+i)
		AddNetns(t, h.NS)
		IP(t, "link", "add", h.Dev, "netns", h.NS, "type", "veth", "peer", "name", peer, "netns", l.sw)
		IP(t, "-n", l.sw, "link", "set", peer, "master", "br0", "up")
		IP(t, "-n", h.NS, "link", "set", "lo", "up")
		IP(t, "-n", h.NS, "addr", "add", h.IP.String()+"/24", "dev", h.Dev)
		IP(t, "-n", h.NS, "link", "set", h.Dev, "up")
		IP(t, "-n", h.NS, "route", "add", "224.0.0.0/4", "dev", h.Dev)
		l.Hosts = append(l.Hosts, h)
	}
	return l
}

// InNetns runs fn on an OS thread switched into namespace ns; sockets
// created there stay in it.
func InNetns(t testing.TB, ns string, fn func()) {
	t.Helper()
	done := make(chan struct{})
	var ferr error
	go func() {
		defer close(done)
		runtime.LockOSThread()
		orig, err := os.Open("/proc/thread-self/ns/net")
		if err != nil {
			ferr = err
			runtime.UnlockOSThread()
			return
		}
		defer orig.Close()
		target, err := os.Open("/var/run/netns/" + ns)
		if err != nil {
			ferr = err
			runtime.UnlockOSThread()
			return
		}
		defer target.Close()
		if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
			ferr = err
			runtime.UnlockOSThread()
			return
		}
		fn()
		if err := unix.Setns(int(orig.Fd()), unix.CLONE_NEWNET); err != nil {
			ferr = err
			return // the thread stays locked and dies with the goroutine
		}
		runtime.UnlockOSThread()
	}()
	<-done
	if ferr != nil {
		t.Fatalf("netns %s: %v", ns, ferr)
	}
}

// GroupReceiver counts the packets of a multicast group received in a
// namespace and the TTL they arrived with.
type GroupReceiver struct {
	Packets  atomic.Int64
	BadTTL   atomic.Int64 // packets whose TTL was above the one expected
	WorstTTL atomic.Int64 // the last of those TTLs
	TTL      atomic.Int64 // the last TTL seen
}

// JoinGroup joins group on h's interface inside h's namespace and counts
// what arrives; packets with a TTL above wantTTL are counted in BadTTL.
func JoinGroup(t testing.TB, h Host, group netip.AddrPort, wantTTL int) *GroupReceiver {
	t.Helper()
	var c *net.UDPConn
	var err error
	InNetns(t, h.NS, func() {
		var ifi *net.Interface
		if ifi, err = net.InterfaceByName(h.Dev); err != nil {
			return
		}
		c, err = net.ListenMulticastUDP("udp4", ifi, net.UDPAddrFromAddrPort(group))
	})
	if err != nil {
		t.Fatalf("join %s in %s: %v", group, h.NS, err)
	}
	pc := ipv4.NewPacketConn(c)
	if err := pc.SetControlMessage(ipv4.FlagTTL, true); err != nil {
		t.Fatal(err)
	}
	r := &GroupReceiver{}
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 2048)
		for {
			_, cm, _, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			r.Packets.Add(1)
			if cm != nil {
				r.TTL.Store(int64(cm.TTL))
				// Above wantTTL it could cross more routers than
				// wanted; below it (0: a copy that never left its
				// host), it crosses fewer.
				if cm.TTL > wantTTL {
					r.BadTTL.Add(1)
					r.WorstTTL.Store(int64(cm.TTL))
				}
			}
		}
	}()
	t.Cleanup(func() { c.Close(); <-done })
	return r
}
