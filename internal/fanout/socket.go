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
	s := &outSocket{key: k, c: c}
	var errs []error
	if !k.v6 {
		p := ipv4.NewPacketConn(c)
		s.w = p
		if k.mcast {
			if ifi != nil {
				errs = append(errs, p.SetMulticastInterface(ifi))
			}
			// Loopback on, so receivers on this host see the group too.
			errs = append(errs, p.SetMulticastLoopback(true), p.SetMulticastTTL(max(k.ttl, 1)))
		} else if k.ttl > 0 {
			errs = append(errs, p.SetTTL(k.ttl))
		}
	} else {
		p := ipv6.NewPacketConn(c)
		s.w = p
		if k.mcast {
			if ifi != nil {
				errs = append(errs, p.SetMulticastInterface(ifi))
			}
			errs = append(errs, p.SetMulticastLoopback(true), p.SetMulticastHopLimit(max(k.ttl, 1)))
		} else if k.ttl > 0 {
			errs = append(errs, p.SetHopLimit(k.ttl))
		}
	}
	if err := errors.Join(errs...); err != nil {
		c.Close()
		return nil, fmt.Errorf("socket options: %w", err)
	}
	return s, nil
}

func (s *outSocket) close() { s.c.Close() }

// outputKey resolves o's interface and returns its socket kind.
func outputKey(o Output, ifi *net.Interface) (sockKey, *net.Interface, error) {
	if o.Iface != "" {
		i, err := net.InterfaceByName(o.Iface)
		if err != nil {
			return sockKey{}, nil, fmt.Errorf("interface %q: %w", o.Iface, err)
		}
		ifi = i
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
