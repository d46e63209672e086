package server

import (
	"net"
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
