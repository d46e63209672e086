package server

import (
	"net/netip"
	"testing"
)

// The locality hint is the IP a relay connects from, IPv4-in-IPv6 as
// IPv4; anything else gives none.
func TestRemoteAddr(t *testing.T) {
	for _, tc := range []struct{ remote, want string }{
		{"203.0.113.7:40000", "203.0.113.7"},
		{"[2001:db8::1]:7070", "2001:db8::1"},
		{"[::ffff:198.51.100.2]:1", "198.51.100.2"},
		{"pipe", ""},
		{"", ""},
	} {
		got := remoteAddr(tc.remote)
		if want, _ := netip.ParseAddr(tc.want); got != want {
			t.Errorf("%q: %v, want %v", tc.remote, got, want)
		}
	}
}
