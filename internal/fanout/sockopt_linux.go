package fanout

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"syscall"

	"golang.org/x/sys/unix"
)

// dialOutput opens a UDP socket connected to o's address on port, which
// checks that the output can be reached. The multicast options are set
// before connect, because connect chooses the route: a multicast group on
// a host without a multicast or default route is only reachable once
// IP_MULTICAST_IF names the interface.
func dialOutput(o Output, ifi *net.Interface, port int) (*net.UDPConn, error) {
	ifi, err := outputIface(o, ifi)
	if err != nil {
		return nil, err
	}
	v4 := o.Addr.Addr().Is4()
	mcast := o.Multicast()
	d := net.Dialer{Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		err := c.Control(func(fd uintptr) {
			s := int(fd)
			set := func(level, opt, v int) {
				if serr == nil {
					serr = unix.SetsockoptInt(s, level, opt, v)
				}
			}
			switch {
			case v4 && mcast:
				if ifi != nil {
					serr = unix.SetsockoptIPMreqn(s, unix.IPPROTO_IP, unix.IP_MULTICAST_IF, &unix.IPMreqn{Ifindex: int32(ifi.Index)})
				}
				// Loopback on, so receivers on this host see the group too.
				set(unix.IPPROTO_IP, unix.IP_MULTICAST_LOOP, 1)
				if o.TTL > 0 {
					set(unix.IPPROTO_IP, unix.IP_MULTICAST_TTL, o.TTL)
				}
			case v4:
				if o.TTL > 0 {
					set(unix.IPPROTO_IP, unix.IP_TTL, o.TTL)
				}
			case mcast:
				if ifi != nil {
					set(unix.IPPROTO_IPV6, unix.IPV6_MULTICAST_IF, ifi.Index)
				}
				set(unix.IPPROTO_IPV6, unix.IPV6_MULTICAST_LOOP, 1)
				if o.TTL > 0 {
					set(unix.IPPROTO_IPV6, unix.IPV6_MULTICAST_HOPS, o.TTL)
				}
			default:
				if o.TTL > 0 {
					set(unix.IPPROTO_IPV6, unix.IPV6_UNICAST_HOPS, o.TTL)
				}
			}
		})
		return errors.Join(err, serr)
	}}
	network := "udp6"
	if v4 {
		network = "udp4"
	}
	addr := netip.AddrPortFrom(o.Addr.Addr(), uint16(port))
	c, err := d.DialContext(context.Background(), network, addr.String())
	if err != nil {
		if mcast && ifi == nil && errors.Is(err, syscall.ENETUNREACH) {
			err = fmt.Errorf("%w (no route to the group: set --iface or ?iface=)", err)
		}
		return nil, err
	}
	return c.(*net.UDPConn), nil
}

// listenInput binds a UDP socket; reuse lets several receivers of one
// multicast group share the port, as multicast receivers expect.
func listenInput(bind netip.AddrPort, reuse bool, rcvbuf int) (*net.UDPConn, error) {
	lc := net.ListenConfig{}
	if reuse {
		lc.Control = func(_, _ string, c syscall.RawConn) error {
			var serr error
			err := c.Control(func(fd uintptr) {
				serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEADDR, 1)
			})
			return errors.Join(err, serr)
		}
	}
	network := "udp6"
	if bind.Addr().Is4() {
		network = "udp4"
	}
	pc, err := lc.ListenPacket(context.Background(), network, bind.String())
	if err != nil {
		return nil, err
	}
	return withReadBuffer(pc, rcvbuf), nil
}
