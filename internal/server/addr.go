package server

import (
	"net"
	"net/netip"
)

// fillHost replaces an empty or unspecified host in addr (":8554",
// "0.0.0.0:8554") by the host of remote, the address the node's
// connection comes from: a relay behind one interface need not know the
// address others reach it on.
func fillHost(addr, remote string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	if ip := net.ParseIP(host); host != "" && (ip == nil || !ip.IsUnspecified()) {
		return addr
	}
	rhost, _, err := net.SplitHostPort(remote)
	if err != nil {
		return addr
	}
	return net.JoinHostPort(rhost, port)
}

// remoteAddr is the IP of a connection's remote address (the zero Addr if
// it has none): the locality hint of tree.NodeInfo.Addr.
func remoteAddr(remote string) netip.Addr {
	ap, err := netip.ParseAddrPort(remote)
	if err != nil {
		return netip.Addr{}
	}
	return ap.Addr().Unmap()
}
