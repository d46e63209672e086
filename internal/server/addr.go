package server

import (
	"fmt"
	"net"
	"net/url"
)

// originAddr returns the origin's RTSP address (host:port) from a stream
// key, the normalised origin URL rtsp://MSHOST:MSPORT/MEDIA. A missing
// port is the scheme's default (554 for rtsp, 322 for rtsps), as in the
// mediator's normalisation; keys are otherwise compared as given.
func originAddr(stream string) (string, error) {
	u, err := url.Parse(stream)
	if err != nil {
		return "", fmt.Errorf("stream key %q: %w", stream, err)
	}
	port := ""
	switch u.Scheme {
	case "rtsp":
		port = "554"
	case "rtsps":
		port = "322"
	default:
		return "", fmt.Errorf("stream key %q is not an rtsp:// origin URL", stream)
	}
	host := u.Hostname()
	if host == "" {
		return "", fmt.Errorf("stream key %q has no origin host", stream)
	}
	if p := u.Port(); p != "" {
		port = p
	}
	return net.JoinHostPort(host, port), nil
}

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
