package fanout

import (
	"context"
	"errors"
	"fmt"
	"net"

	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
)

// outSendBuffer is the SO_SNDBUF of the sending sockets (capped by the
// kernel's net.core.wmem_max): room for bursts to many destinations, so a
// full socket stays rare.
const outSendBuffer = 4 << 20

// batchWriter is what ipv4.PacketConn and ipv6.PacketConn have in common:
// sendmmsg on Linux.
type batchWriter interface {
	WriteBatch(ms []ipv4.Message, flags int) (int, error)
}

// sockKey is what outputs sharing a socket have in common: the family and
// the options that apply per socket.
type sockKey struct {
	v6      bool
	mcast   bool
	ttl     int
	ifindex int
}

// outSocket is an unconnected UDP socket that sends to every output of a
// kind: one sendmmsg carries packets to many destinations, as cheap per
// packet as the kernel gets.
type outSocket struct {
	key sockKey
	c   *net.UDPConn
	w   batchWriter
}

func openOutSocket(k sockKey, ifi *net.Interface) (*outSocket, error) {
	network, laddr := "udp4", "0.0.0.0:0"
	if k.v6 {
		network, laddr = "udp6", "[::]:0"
	}
	pc, err := (&net.ListenConfig{}).ListenPacket(context.Background(), network, laddr)
	if err != nil {
		return nil, err
	}
	c := pc.(*net.UDPConn)
	_ = c.SetWriteBuffer(outSendBuffer)
	w, err := setOutputOptions(c, k.v6, k.mcast, k.ttl, ifi)
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("socket options: %w", err)
	}
	return &outSocket{key: k, c: c, w: w}, nil
}

// setOutputOptions sets a sending socket's TTL (hop limit) and, for a
// multicast group, its interface and loopback; it returns the socket's
// batch writer.
func setOutputOptions(c *net.UDPConn, v6, mcast bool, ttl int, ifi *net.Interface) (batchWriter, error) {
	var p multicastConn
	var setTTL, setMulticastTTL func(int) error // TTL for IPv4, hop limit for IPv6
	if v6 {
		p6 := ipv6.NewPacketConn(c)
		p, setTTL, setMulticastTTL = p6, p6.SetHopLimit, p6.SetMulticastHopLimit
	} else {
		p4 := ipv4.NewPacketConn(c)
		p, setTTL, setMulticastTTL = p4, p4.SetTTL, p4.SetMulticastTTL
	}
	var errs []error
	if mcast {
		if ifi != nil {
			errs = append(errs, p.SetMulticastInterface(ifi))
		}
		// Loopback on, so receivers on this host see the group too.
		errs = append(errs, p.SetMulticastLoopback(true), setMulticastTTL(max(ttl, 1)))
	} else if ttl > 0 {
		errs = append(errs, setTTL(ttl))
	}
	return p, errors.Join(errs...)
}

// multicastConn is what ipv4.PacketConn and ipv6.PacketConn have in
// common for a sending socket.
type multicastConn interface {
	batchWriter
	SetMulticastInterface(*net.Interface) error
	SetMulticastLoopback(bool) error
}

func (s *outSocket) close() { s.c.Close() }

// outputIface is the interface o names with ?iface=, else ifi (--iface).
func outputIface(o Output, ifi *net.Interface) (*net.Interface, error) {
	if o.Iface == "" {
		return ifi, nil
	}
	i, err := net.InterfaceByName(o.Iface)
	if err != nil {
		return nil, fmt.Errorf("interface %q: %w", o.Iface, err)
	}
	return i, nil
}

// withReadBuffer is a bound input socket with its SO_RCVBUF asked for
// (best effort: the kernel caps it at net.core.rmem_max).
func withReadBuffer(pc net.PacketConn, rcvbuf int) *net.UDPConn {
	c := pc.(*net.UDPConn)
	if rcvbuf > 0 {
		_ = c.SetReadBuffer(rcvbuf)
	}
	return c
}

// outputKey resolves o's interface and returns its socket kind.
func outputKey(o Output, ifi *net.Interface) (sockKey, *net.Interface, error) {
	ifi, err := outputIface(o, ifi)
	if err != nil {
		return sockKey{}, nil, err
	}
	k := sockKey{v6: !o.Addr.Addr().Is4(), mcast: o.Multicast(), ttl: o.TTL}
	if !k.mcast {
		ifi = nil // only multicast takes an interface
	}
	if ifi != nil {
		k.ifindex = ifi.Index
	}
	return k, ifi, nil
}

// checkRoute connects a throwaway socket with o's options, so an output
// that cannot be reached (no route to a group, no such interface) is
// refused when added rather than failing every send.
func checkRoute(o Output, ifi *net.Interface) error {
	c, err := dialOutput(o, ifi, int(o.Addr.Port()))
	if err != nil {
		return err
	}
	return c.Close()
}
