package mediator

import (
	"context"
	"fmt"
	"net"
	"strings"
)

// AllowList says which origins enhanced requests may reach, so a mediator
// never becomes an open proxy into someone's network. Entries: "any",
// "loopback", "private" (RFC 1918, RFC 4193 and link-local), a CIDR, an IP,
// or a host name (matched by name, case-insensitively).
type AllowList struct {
	any   bool
	nets  []*net.IPNet
	names map[string]bool
	spec  string
}

// ParseAllowList reads a comma-separated list of entries.
func ParseAllowList(spec string) (*AllowList, error) {
	a := &AllowList{names: map[string]bool{}, spec: spec}
	for _, e := range strings.Split(spec, ",") {
		e = strings.TrimSpace(strings.ToLower(e))
		switch {
		case e == "":
		case e == "any" || e == "*":
			a.any = true
		case e == "loopback":
			a.addCIDR("127.0.0.0/8", "::1/128")
		case e == "private":
			a.addCIDR("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fc00::/7",
				"169.254.0.0/16", "fe80::/10", "100.64.0.0/10")
		case strings.Contains(e, "/"):
			_, n, err := net.ParseCIDR(e)
			if err != nil {
				return nil, fmt.Errorf("allow-origin entry %q: %w", e, err)
			}
			a.nets = append(a.nets, n)
		case net.ParseIP(e) != nil:
			ip := net.ParseIP(e)
			bits := 128
			if ip.To4() != nil {
				ip, bits = ip.To4(), 32
			}
			a.nets = append(a.nets, &net.IPNet{IP: ip, Mask: net.CIDRMask(bits, bits)})
		case validHost(e):
			a.names[e] = true
		default:
			return nil, fmt.Errorf("allow-origin entry %q is not any, loopback, private, a CIDR, an IP or a host name", e)
		}
	}
	return a, nil
}

func (a *AllowList) addCIDR(cidrs ...string) {
	for _, c := range cidrs {
		_, n, _ := net.ParseCIDR(c)
		a.nets = append(a.nets, n)
	}
}

// String returns the list as it was given.
func (a *AllowList) String() string { return a.spec }

// Allowed reports whether the origin host may be reached. A host name not
// listed by name is allowed when every address it resolves to is allowed.
func (a *AllowList) Allowed(ctx context.Context, host string) (bool, error) {
	if a.any {
		return true, nil
	}
	if a.names[strings.ToLower(host)] {
		return true, nil
	}
	if ip := net.ParseIP(host); ip != nil {
		return a.allowedIP(ip), nil
	}
	addrs, err := net.DefaultResolver.LookupIPAddr(ctx, host)
	if err != nil {
		return false, fmt.Errorf("look up %s: %w", host, err)
	}
	for _, ad := range addrs {
		if !a.allowedIP(ad.IP) {
			return false, nil
		}
	}
	return len(addrs) > 0, nil
}

func (a *AllowList) allowedIP(ip net.IP) bool {
	for _, n := range a.nets {
		if n.Contains(ip) {
			return true
		}
	}
	return false
}
