//go:build unix && !linux

package fanout

import (
	"context"
	"errors"
	"net"
	"net/netip"

	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
)

// dialOutput without Linux's pre-connect options: the group must be
// routable, then the options are set on the connected socket.
func dialOutput(o Output, ifi *net.Interface, port int) (*net.UDPConn, error) {
	if o.Iface != "" {
		i, err := net.InterfaceByName(o.Iface)
		if err != nil {
			return nil, err
		}
		ifi = i
	}
	addr := netip.AddrPortFrom(o.Addr.Addr(), uint16(port))
	c, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(addr))
	if err != nil {
		return nil, err
	}
	var errs []error
	if o.Addr.Addr().Is4() {
		p := ipv4.NewPacketConn(c)
		if o.Multicast() {
			if ifi != nil {
				errs = append(errs, p.SetMulticastInterface(ifi))
			}
			errs = append(errs, p.SetMulticastLoopback(true), p.SetMulticastTTL(max(o.TTL, 1)))
		} else if o.TTL > 0 {
			errs = append(errs, p.SetTTL(o.TTL))
		}
	} else {
		p := ipv6.NewPacketConn(c)
		if o.Multicast() {
			if ifi != nil {
				errs = append(errs, p.SetMulticastInterface(ifi))
			}
			errs = append(errs, p.SetMulticastLoopback(true), p.SetMulticastHopLimit(max(o.TTL, 1)))
		} else if o.TTL > 0 {
			errs = append(errs, p.SetHopLimit(o.TTL))
		}
	}
	if err := errors.Join(errs...); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

// listenInput binds a UDP socket; multicast groups use
// net.ListenMulticastUDP's address reuse where the platform allows.
func listenInput(bind netip.AddrPort, reuse bool, rcvbuf int) (*net.UDPConn, error) {
	pc, err := (&net.ListenConfig{}).ListenPacket(context.Background(), "udp", bind.String())
	if err != nil {
		return nil, err
	}
	c := pc.(*net.UDPConn)
	if rcvbuf > 0 {
		_ = c.SetReadBuffer(rcvbuf)
	}
	return c, nil
}
