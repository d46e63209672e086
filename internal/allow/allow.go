// Package allow says which origins a mediator or a relay may reach
// (--allow-origin), so neither becomes an open proxy into someone's network.
package allow

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"

	"github.com/ocm-overlay/ocm/internal/streamurl"
)

// List says which origins enhanced requests may reach, so a mediator
// never becomes an open proxy into someone's network. Entries: "any",
// "public" (publicly routable unicast), "loopback", "private" (RFC 1918,
// RFC 6598 shared space, RFC 4193), a CIDR, an IP, or a host name.
//
// Some addresses are never reached through a keyword, not even "any":
// link-local (169.254.0.0/16, where cloud metadata answers, and
// fe80::/10), unspecified (0.0.0.0/8, ::, both of which reach this host),
// multicast and broadcast. Only a CIDR or IP entry inside one of those
// ranges opens it (an IP camera on 169.254.x.y: --allow-origin
// 169.254.0.0/16).
//
// A host name is resolved and every address it resolves to must pass
// (a name listed by name passes the ranges, not the never-reached
// addresses). Dial connects to the addresses it checked, so a name that
// resolves differently a moment later (DNS rebinding) gains nothing.
type List struct {
	// Lookup resolves a host name; nil means the system resolver.
	Lookup func(ctx context.Context, host string) ([]netip.Addr, error)

	any, public bool
	nets        []allowNet
	names       map[string]bool
	spec        string
	note        string // why this list, when it is a default
}

type allowNet struct {
	p        netip.Prefix
	explicit bool // a CIDR or IP entry, not a keyword: may open a never-reached range
}

// neverReached are the ranges no keyword opens.
var neverReached = []struct {
	p    netip.Prefix
	what string
}{
	{netip.MustParsePrefix("169.254.0.0/16"), "link-local (169.254.0.0/16, where cloud metadata answers)"},
	{netip.MustParsePrefix("fe80::/10"), "link-local (fe80::/10)"},
	{netip.MustParsePrefix("0.0.0.0/8"), "unspecified (0.0.0.0/8, which reaches this host)"},
	{netip.MustParsePrefix("::/128"), "unspecified (::, which reaches this host)"},
	{netip.MustParsePrefix("224.0.0.0/4"), "multicast (224.0.0.0/4)"},
	{netip.MustParsePrefix("ff00::/8"), "multicast (ff00::/8)"},
	{netip.MustParsePrefix("255.255.255.255/32"), "broadcast (255.255.255.255)"},
}

var (
	loopbackNets = prefixes("127.0.0.0/8", "::1/128")
	privateNets  = prefixes("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10", "fc00::/7")
	// notPublic4 are the IPv4 special-purpose ranges (RFC 6890 and
	// successors) that are not globally reachable unicast.
	notPublic4 = prefixes("0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16",
		"172.16.0.0/12", "192.0.0.0/24", "192.0.2.0/24", "192.88.99.0/24", "192.168.0.0/16", "198.18.0.0/15",
		"198.51.100.0/24", "203.0.113.0/24", "224.0.0.0/4", "240.0.0.0/4")
	// public6 is global unicast; notPublic6 the parts of it that are
	// documentation or carry an IPv4 address inside (6to4, Teredo).
	public6    = netip.MustParsePrefix("2000::/3")
	notPublic6 = prefixes("2001::/32", "2001:db8::/32", "2002::/16", "3fff::/20")
	nat64      = netip.MustParsePrefix("64:ff9b::/96")
)

func prefixes(cidrs ...string) []netip.Prefix {
	out := make([]netip.Prefix, len(cidrs))
	for i, c := range cidrs {
		out[i] = netip.MustParsePrefix(c)
	}
	return out
}

// Parse reads a comma-separated list of entries.
func Parse(spec string) (*List, error) {
	a := &List{names: map[string]bool{}, spec: spec}
	for _, e := range strings.Split(spec, ",") {
		e = strings.TrimSpace(strings.ToLower(e))
		switch {
		case e == "":
		case e == "any" || e == "*":
			a.any = true
		case e == "public":
			a.public = true
		case e == "loopback":
			a.add(false, loopbackNets...)
		case e == "private":
			a.add(false, privateNets...)
		case strings.Contains(e, "/"):
			p, err := netip.ParsePrefix(e)
			if err != nil {
				return nil, fmt.Errorf("allow-origin entry %q: %w", e, err)
			}
			if p.Addr().Is4In6() {
				p = netip.PrefixFrom(p.Addr().Unmap(), max(p.Bits()-96, 0))
			}
			a.add(true, p.Masked())
		default:
			if ip, err := netip.ParseAddr(e); err == nil {
				ip = canonical(ip)
				a.add(true, netip.PrefixFrom(ip, ip.BitLen()))
				continue
			}
			if !streamurl.ValidHost(e) {
				return nil, fmt.Errorf("allow-origin entry %q is not any, public, loopback, private, a CIDR, an IP or a host name", e)
			}
			a.names[strings.TrimSuffix(e, ".")] = true
		}
	}
	return a, nil
}

// Default is the list of a mediator listening on listen when none
// is given: any origin when it listens on loopback only (its players are
// this host's users, who reach those origins anyway), else only publicly
// routable addresses, so a player elsewhere cannot use it to reach this
// host's network.
func Default(listen string) *List {
	if loopbackOnly(listen) {
		a, _ := Parse("any")
		a.note = "the default for a mediator listening on loopback only"
		return a
	}
	a, _ := Parse("public")
	a.note = "the default for a mediator listening beyond loopback; name other origins in --allow-origin"
	return a
}

func (a *List) add(explicit bool, ps ...netip.Prefix) {
	for _, p := range ps {
		a.nets = append(a.nets, allowNet{p: p, explicit: explicit})
	}
}

// String returns the list as it was given.
func (a *List) String() string { return a.spec }

// ErrNotAllowed is wrapped by every refusal of an origin.
var ErrNotAllowed = errors.New("origin not allowed")

// RefusedError says which address of an origin was refused and why.
type RefusedError struct {
	Host   string     // the origin host as requested
	Addr   netip.Addr // the refused address (the host itself, or one it resolves to)
	Reason string     // what the address is, e.g. `is not in --allow-origin "public"`
}

func (e *RefusedError) Error() string {
	if _, err := netip.ParseAddr(e.Host); err == nil { // an address, maybe in another spelling
		return fmt.Sprintf("origin %s %s", e.Host, e.Reason)
	}
	return fmt.Sprintf("origin host %s resolves to %s, which %s", e.Host, e.Addr, e.Reason)
}

// Is makes errors.Is(err, ErrNotAllowed) true.
func (e *RefusedError) Is(target error) bool { return target == ErrNotAllowed }

// Check resolves host and returns its addresses if every one of them may
// be reached; otherwise a *RefusedError for the first that may not, or
// the lookup's error.
func (a *List) Check(ctx context.Context, host string) ([]netip.Addr, error) {
	host = strings.TrimSuffix(strings.ToLower(host), ".")
	if ip, err := netip.ParseAddr(host); err == nil {
		ip = ip.Unmap()
		if reason := a.refuse(ip, false); reason != "" {
			return nil, &RefusedError{Host: host, Addr: ip, Reason: reason}
		}
		return []netip.Addr{ip}, nil
	}
	lookup := a.Lookup
	if lookup == nil {
		lookup = func(ctx context.Context, host string) ([]netip.Addr, error) {
			return net.DefaultResolver.LookupNetIP(ctx, "ip", host)
		}
	}
	addrs, err := lookup(ctx, host)
	if err != nil {
		return nil, fmt.Errorf("look up %s: %w", host, err)
	}
	if len(addrs) == 0 {
		return nil, fmt.Errorf("look up %s: no address", host)
	}
	listed := a.names[host]
	out := make([]netip.Addr, len(addrs))
	for i, ip := range addrs {
		out[i] = ip.Unmap()
		if reason := a.refuse(out[i], listed); reason != "" {
			return nil, &RefusedError{Host: host, Addr: out[i], Reason: reason}
		}
	}
	return out, nil
}

// refuse says why ip may not be reached, or "" if it may. A listed name's
// addresses pass the ranges but not the never-reached addresses.
func (a *List) refuse(ip netip.Addr, listed bool) string {
	ip = canonical(ip)
	for _, nr := range neverReached {
		if !nr.p.Contains(ip) {
			continue
		}
		for _, n := range a.nets {
			if n.explicit && n.p.Contains(ip) && n.p.Bits() >= nr.p.Bits() {
				return ""
			}
		}
		return "is " + nr.what + ": reached only if --allow-origin names a range inside it"
	}
	if a.any || listed || a.public && isPublic(ip) {
		return ""
	}
	for _, n := range a.nets {
		if n.p.Contains(ip) {
			return ""
		}
	}
	reason := fmt.Sprintf("is not in --allow-origin %q", a.spec)
	if a.note != "" {
		reason += " (" + a.note + ")"
	}
	return reason
}

// Dial returns a dial function that connects only to addresses Check
// allows, and to exactly those it checked.
func (a *List) Dial(d *net.Dialer) func(ctx context.Context, network, address string) (net.Conn, error) {
	return func(ctx context.Context, network, address string) (net.Conn, error) {
		host, port, err := net.SplitHostPort(address)
		if err != nil {
			return nil, err
		}
		addrs, err := a.Check(ctx, host)
		if err != nil {
			return nil, err
		}
		var first error
		for _, ip := range addrs {
			c, err := d.DialContext(ctx, network, net.JoinHostPort(ip.String(), port))
			if err == nil {
				return c, nil
			}
			if first == nil {
				first = err
			}
		}
		return nil, first
	}
}

// canonical drops a zone and unwraps IPv4-mapped and NAT64 addresses, so
// an IPv4 address is judged the same whatever its IPv6 spelling (the dial
// still goes to the address as resolved).
func canonical(ip netip.Addr) netip.Addr {
	ip = ip.WithZone("").Unmap()
	if nat64.Contains(ip) {
		b := ip.As16()
		return netip.AddrFrom4([4]byte(b[12:]))
	}
	return ip
}

// isPublic reports whether ip is globally routable unicast.
func isPublic(ip netip.Addr) bool {
	if ip.Is4() {
		for _, p := range notPublic4 {
			if p.Contains(ip) {
				return false
			}
		}
		return true
	}
	if !public6.Contains(ip) {
		return false
	}
	for _, p := range notPublic6 {
		if p.Contains(ip) {
			return false
		}
	}
	return true
}

// loopbackOnly reports whether addr listens only on a loopback address.
func loopbackOnly(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
