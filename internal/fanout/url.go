package fanout

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
)

// ErrBadURL is wrapped by every input or output URL that cannot be used.
var ErrBadURL = errors.New("bad URL")

// Input is a parsed --from URL: a UDP socket to bind (joining a multicast
// group when Group is valid) or an RTSP URL to pull.
type Input struct {
	Scheme string // "udp" or "rtsp"

	Bind  netip.AddrPort // udp: local address to bind
	Group netip.Addr     // udp: multicast group to join; invalid for unicast
	RTCP  bool           // udp: also listen on Bind's port+1

	URL string // rtsp: the URL as given
}

// LookupFunc resolves a host name (never an IP literal) to an address.
type LookupFunc func(host string) (netip.Addr, error)

// ParseInput parses udp://[GROUP@]HOST:PORT[?rtcp=0] or rtsp://... (also
// rtsps://). A multicast HOST is joined as the group and bound; GROUP@HOST
// joins GROUP and binds HOST (usually 0.0.0.0). Host names are resolved
// by the system's resolver.
func ParseInput(s string) (Input, error) { return parseInput(s, SystemLookup) }

func parseInput(s string, lookup LookupFunc) (Input, error) {
	u, err := url.Parse(s)
	if err != nil {
		return Input{}, fmt.Errorf("%w: %q: %v", ErrBadURL, s, err)
	}
	switch u.Scheme {
	case "rtsp", "rtsps":
		if u.Host == "" {
			return Input{}, fmt.Errorf("%w: %q: no host", ErrBadURL, s)
		}
		return Input{Scheme: "rtsp", URL: s}, nil
	case "udp", "rtp":
	default:
		return Input{}, fmt.Errorf("%w: %q: scheme must be udp or rtsp", ErrBadURL, s)
	}
	if u.Path != "" && u.Path != "/" {
		return Input{}, fmt.Errorf("%w: %q: a udp URL has no path", ErrBadURL, s)
	}
	in := Input{Scheme: "udp", RTCP: true}
	host, port, err := splitHostPort(u.Host, true)
	if err != nil {
		return Input{}, fmt.Errorf("%w: %q: %v", ErrBadURL, s, err)
	}
	bind := netip.IPv4Unspecified()
	if host != "" {
		if bind, err = hostAddr(host, lookup); err != nil {
			return Input{}, fmt.Errorf("%w: %q: %v", ErrBadURL, s, err)
		}
	}
	in.Bind = netip.AddrPortFrom(bind, port)
	if u.User != nil && u.User.Username() != "" {
		g, err := netip.ParseAddr(u.User.Username())
		if err != nil || !g.IsMulticast() {
			return Input{}, fmt.Errorf("%w: %q: %q is not a multicast group", ErrBadURL, s, u.User.Username())
		}
		if g.Is4() != bind.Is4() {
			return Input{}, fmt.Errorf("%w: %q: group and bind address are of different families", ErrBadURL, s)
		}
		in.Group = g
	} else if bind.IsMulticast() {
		in.Group = bind
	}
	for k, v := range u.Query() {
		switch k {
		case "rtcp":
			b, err := strconv.ParseBool(v[0])
			if err != nil {
				return Input{}, fmt.Errorf("%w: %q: rtcp=%q is not a boolean", ErrBadURL, s, v[0])
			}
			in.RTCP = b
		default:
			return Input{}, fmt.Errorf("%w: %q: unknown option %q (known: rtcp)", ErrBadURL, s, k)
		}
	}
	return in, nil
}

// String is the URL of the input as bound.
func (in Input) String() string {
	if in.Scheme == "rtsp" {
		if u, err := url.Parse(in.URL); err == nil {
			return u.Redacted()
		}
		return in.URL
	}
	s := "udp://"
	if in.Group.IsValid() && in.Group != in.Bind.Addr() {
		s += in.Group.String() + "@"
	}
	s += urlHostPort(in.Bind)
	if !in.RTCP {
		s += "?rtcp=0"
	}
	return s
}

// Output is a parsed --to URL.
type Output struct {
	Addr  netip.AddrPort
	TTL   int    // multicast TTL / hop limit, or unicast TTL; 0 leaves the system default
	Iface string // outgoing interface for multicast; "" uses the fanout's
	RTCP  bool   // forward RTCP to port+1
}

// ParseOutput parses udp://HOST:PORT[?ttl=N&iface=NAME&rtcp=0]. Multicast
// outputs get TTL 1 (this LAN only) unless ttl is given. Host names are
// resolved by the system's resolver.
func ParseOutput(s string) (Output, error) { return parseOutput(s, SystemLookup) }

func parseOutput(s string, lookup LookupFunc) (Output, error) {
	u, err := url.Parse(s)
	if err != nil {
		return Output{}, fmt.Errorf("%w: %q: %v", ErrBadURL, s, err)
	}
	if u.Scheme != "udp" && u.Scheme != "rtp" {
		return Output{}, fmt.Errorf("%w: %q: scheme must be udp", ErrBadURL, s)
	}
	if u.User != nil || (u.Path != "" && u.Path != "/") {
		return Output{}, fmt.Errorf("%w: %q: expected udp://HOST:PORT", ErrBadURL, s)
	}
	host, port, err := splitHostPort(u.Host, false)
	if err != nil {
		return Output{}, fmt.Errorf("%w: %q: %v", ErrBadURL, s, err)
	}
	if host == "" {
		return Output{}, fmt.Errorf("%w: %q: no host", ErrBadURL, s)
	}
	ip, err := hostAddr(host, lookup)
	if err != nil {
		return Output{}, fmt.Errorf("%w: %q: %v", ErrBadURL, s, err)
	}
	if ip.IsUnspecified() {
		return Output{}, fmt.Errorf("%w: %q: cannot send to an unspecified address", ErrBadURL, s)
	}
	o := Output{Addr: netip.AddrPortFrom(ip, port), RTCP: true}
	if ip.IsMulticast() {
		o.TTL = 1
	}
	for k, v := range u.Query() {
		switch k {
		case "ttl":
			n, err := strconv.Atoi(v[0])
			if err != nil || n < 1 || n > 255 {
				return Output{}, fmt.Errorf("%w: %q: ttl must be 1..255", ErrBadURL, s)
			}
			o.TTL = n
		case "iface":
			o.Iface = v[0]
		case "rtcp":
			b, err := strconv.ParseBool(v[0])
			if err != nil {
				return Output{}, fmt.Errorf("%w: %q: rtcp=%q is not a boolean", ErrBadURL, s, v[0])
			}
			o.RTCP = b
		default:
			return Output{}, fmt.Errorf("%w: %q: unknown option %q (known: ttl, iface, rtcp)", ErrBadURL, s, k)
		}
	}
	return o, nil
}

// Multicast reports whether the output is a multicast group.
func (o Output) Multicast() bool { return o.Addr.Addr().IsMulticast() }

// String is the canonical form of the output, used as its name in
// commands and stats.
func (o Output) String() string {
	s := "udp://" + urlHostPort(o.Addr)
	var q []string
	if o.TTL > 0 {
		q = append(q, "ttl="+strconv.Itoa(o.TTL))
	}
	if o.Iface != "" {
		q = append(q, "iface="+url.QueryEscape(o.Iface))
	}
	if !o.RTCP {
		q = append(q, "rtcp=0")
	}
	if len(q) > 0 {
		s += "?" + strings.Join(q, "&")
	}
	return s
}

// urlHostPort writes a as the host:port of a URL, which escapes an IPv6
// zone ("[fe80::1%25eth0]:5004"), so the name reads back as the same
// address.
func urlHostPort(a netip.AddrPort) string {
	ip := a.Addr()
	zone := ip.Zone()
	if zone == "" {
		return a.String()
	}
	host := "[" + ip.WithZone("").String() + "%25" + url.PathEscape(zone) + "]"
	return host + ":" + strconv.Itoa(int(a.Port()))
}

func splitHostPort(hostport string, zeroOK bool) (string, uint16, error) {
	host, ps, err := net.SplitHostPort(hostport)
	if err != nil {
		return "", 0, err
	}
	p, err := strconv.ParseUint(ps, 10, 16)
	if err != nil {
		return "", 0, fmt.Errorf("bad port %q", ps)
	}
	if p == 0 && !zeroOK {
		return "", 0, errors.New("port 0 is not a destination")
	}
	if p == 65535 {
		return "", 0, errors.New("port 65535 leaves no room for RTCP on port+1")
	}
	return host, uint16(p), nil
}

// hostAddr accepts an IP literal or resolves a host name with lookup.
func hostAddr(host string, lookup LookupFunc) (netip.Addr, error) {
	if a, err := netip.ParseAddr(host); err == nil {
		return a.Unmap(), nil
	}
	a, err := lookup(host)
	if err != nil {
		return netip.Addr{}, err
	}
	return a.Unmap(), nil
}

// SystemLookup resolves a host name with the system's resolver,
// preferring IPv4.
func SystemLookup(host string) (netip.Addr, error) {
	ua, err := net.ResolveUDPAddr("udp", net.JoinHostPort(host, "0"))
	if err != nil {
		return netip.Addr{}, err
	}
	a, ok := netip.AddrFromSlice(ua.IP)
	if !ok {
		return netip.Addr{}, fmt.Errorf("cannot resolve %q", host)
	}
	return a, nil
}
