//go:build unix && !linux

package fanout

import (
	"context"
	"net"
	"net/netip"
)

// dialOutput without Linux's pre-connect options: the group must be
// routable, then the options are set on the connected socket.
func dialOutput(o Output, ifi *net.Interface, port int) (*net.UDPConn, error) {
	ifi, err := outputIface(o, ifi)
	if err != nil {
		return nil, err
	}
	addr := netip.AddrPortFrom(o.Addr.Addr(), uint16(port))
	c, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(addr))
	if err != nil {
		return nil, err
	}
	if _, err := setOutputOptions(c, !o.Addr.Addr().Is4(), o.Multicast(), o.TTL, ifi); err != nil {
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
	return withReadBuffer(pc, rcvbuf), nil
}
