package allow

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"
)

// fakeDNS answers lookups from a table; other names are not found.
func fakeDNS(table map[string][]string) func(context.Context, string) ([]netip.Addr, error) {
	return func(_ context.Context, host string) ([]netip.Addr, error) {
		ips, ok := table[host]
		if !ok {
			return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
		}
		out := make([]netip.Addr, len(ips))
		for i, s := range ips {
			out[i] = netip.MustParseAddr(s)
		}
		return out, nil
	}
}

var testDNS = map[string][]string{
	"localhost":      {"127.0.0.1", "::1"},
	"ms.example.org": {"203.0.114.7"},
	"rebind.example": {"203.0.114.8", "127.0.0.1"},
	"meta.example":   {"169.254.169.254"},
	"lan.example":    {"10.1.2.3"},
	"public.example": {"203.0.114.9", "2606:4700::1"},
}

func TestAllowList(t *testing.T) {
	beyond := Default("0.0.0.0:0")
	local := Default("127.0.0.1:0")
	parse := func(spec string) *List {
		a, err := Parse(spec)
		if err != nil {
			t.Fatalf("Parse(%q): %v", spec, err)
		}
		return a
	}
	// want: "" allowed, else a word the refusal must contain; "lookup"
	// for a failed lookup (not a refusal).
	cases := []struct {
		name string
		list *List
		host string
		want string
	}{
		{"public v4", beyond, "8.8.8.8", ""},
		{"public v6", beyond, "2606:4700::1", ""},
		{"public name", beyond, "public.example", ""},
		{"cloud metadata", beyond, "169.254.169.254", "link-local"},
		{"CGNAT", beyond, "100.64.0.1", "not in --allow-origin"},
		{"ULA", beyond, "fd00::1", "not in --allow-origin"},
		{"loopback v4", beyond, "127.0.0.1", "not in --allow-origin"},
		{"loopback v6", beyond, "::1", "not in --allow-origin"},
		{"RFC 1918 10/8", beyond, "10.1.2.3", "not in"},
		{"RFC 1918 172.16/12", beyond, "172.16.0.1", "not in"},
		{"RFC 1918 192.168/16", beyond, "192.168.1.1", "not in"},
		{"this host by 0.0.0.0", beyond, "0.0.0.0", "unspecified"},
		{"this host by ::", beyond, "::", "unspecified"},
		{"multicast", beyond, "224.0.0.1", "multicast"},
		{"broadcast", beyond, "255.255.255.255", "broadcast"},
		{"reserved 240/4", beyond, "240.0.0.1", "not in"},
		{"documentation", beyond, "192.0.2.1", "not in"},
		{"benchmarking", beyond, "198.18.0.1", "not in"},
		{"v6 documentation", beyond, "2001:db8::1", "not in"},
		{"v4-mapped metadata", beyond, "::ffff:169.254.169.254", "link-local"},
		{"v4-mapped loopback", beyond, "::ffff:127.0.0.1", "not in"},
		{"NAT64 of metadata", beyond, "64:ff9b::a9fe:a9fe", "link-local"},
		{"NAT64 of a public address", beyond, "64:ff9b::808:808", ""},
		{"6to4 of loopback", beyond, "2002:7f00:1::1", "not in"},
		{"v6 link-local with zone", beyond, "fe80::1%eth0", "link-local"},
		{"name resolving to loopback", beyond, "localhost", "resolves to 127.0.0.1"},
		{"name resolving to metadata", beyond, "meta.example", "link-local"},
		{"one bad address among good", beyond, "rebind.example", "resolves to 127.0.0.1"},
		{"unknown name", beyond, "nowhere.example", "lookup"},
		{"trailing dot", beyond, "ms.example.org.", ""},

		{"loopback-only: any LAN host", local, "10.1.2.3", ""},
		{"loopback-only: loopback", local, "localhost", ""},
		{"loopback-only: metadata", local, "169.254.169.254", "link-local"},
		{"loopback-only: 0.0.0.0", local, "0.0.0.0", "unspecified"},
		{"loopback-only: fe80", local, "fe80::1", "link-local"},

		{"private: 10/8", parse("private"), "10.0.0.1", ""},
		{"private: CGNAT", parse("private"), "100.64.0.1", ""},
		{"private: ULA", parse("private"), "fd00::1", ""},
		{"private: not link-local", parse("private"), "169.254.1.1", "link-local"},
		{"private: not public", parse("private"), "8.8.8.8", "not in"},
		{"public+CIDR", parse("public,10.1.0.0/16"), "lan.example", ""},
		{"public+CIDR, outside", parse("public,10.1.0.0/16"), "10.2.0.1", "not in"},

		{"a link-local CIDR opens it", parse("any,169.254.0.0/16"), "169.254.169.254", ""},
		{"a link-local IP opens it", parse("169.254.169.254"), "169.254.169.254", ""},
		{"a smaller range opens its part", parse("169.254.10.0/24"), "169.254.10.9", ""},
		{"a smaller range opens no more", parse("169.254.10.0/24"), "169.254.169.254", "link-local"},
		{"a range around it does not", parse("0.0.0.0/0"), "169.254.169.254", "link-local"},
		{"0.0.0.0/0 opens the rest", parse("0.0.0.0/0"), "10.0.0.1", ""},
		{"fe80::/10 opens v6 link-local", parse("fe80::/10"), "fe80::1", ""},

		{"listed name", parse("loopback,lan.example"), "lan.example", ""},
		{"listed name, case", parse("LAN.Example"), "lan.example", ""},
		{"listed name to metadata", parse("meta.example"), "meta.example", "link-local"},
		{"listed IP, mapped form", parse("::ffff:10.0.0.1"), "10.0.0.1", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tc.list.Lookup = fakeDNS(testDNS)
			addrs, err := tc.list.Check(t.Context(), tc.host)
			switch {
			case tc.want == "":
				if err != nil || len(addrs) == 0 {
					t.Fatalf("Check(%s) with %q: %v, want allowed", tc.host, tc.list, err)
				}
			case tc.want == "lookup":
				if err == nil || errors.Is(err, ErrNotAllowed) {
					t.Fatalf("Check(%s): %v, want a lookup error", tc.host, err)
				}
			default:
				if !errors.Is(err, ErrNotAllowed) || !strings.Contains(err.Error(), tc.want) {
					t.Fatalf("Check(%s) with %q: %v, want a refusal saying %q", tc.host, tc.list, err, tc.want)
				}
				t.Logf("%s", err)
			}
		})
	}
}

func TestParseAllowListErrors(t *testing.T) {
	for _, spec := range []string{"10.0.0.0/33", "bad_host!", "10.0.0.0/8,exa mple"} {
		if _, err := Parse(spec); err == nil || !strings.Contains(err.Error(), "allow-origin entry") {
			t.Errorf("Parse(%q): %v, want an error naming the entry", spec, err)
		}
	}
}

// Dial connects to the address it checked, not to whatever the name
// resolves to by the time of the dial, and to nothing it refused.
func TestAllowListDialsWhatItChecked(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 4)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				close(accepted)
				return
			}
			accepted <- c
		}
	}()
	port := ln.Addr().(*net.TCPAddr).Port

	a, err := Parse("127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	// Names the system resolver does not know: only the checked
	// addresses can be dialed.
	a.Lookup = fakeDNS(map[string][]string{
		"origin.invalid":  {"127.0.0.1"},
		"rebound.invalid": {"127.0.0.1", "169.254.169.254"},
	})
	dial := a.Dial(&net.Dialer{Timeout: 5 * time.Second})

	c, err := dial(t.Context(), "tcp", fmt.Sprintf("origin.invalid:%d", port))
	if err != nil {
		t.Fatalf("dial an allowed name: %v", err)
	}
	c.Close()
	(<-accepted).Close()

	if _, err := dial(t.Context(), "tcp", fmt.Sprintf("rebound.invalid:%d", port)); !errors.Is(err, ErrNotAllowed) {
		t.Fatalf("dial a name with a refused address: %v, want a refusal", err)
	}
	if _, err := dial(t.Context(), "tcp", fmt.Sprintf("127.0.0.2:%d", port)); !errors.Is(err, ErrNotAllowed) {
		t.Fatalf("dial an address outside the list: %v, want a refusal", err)
	}
	ln.Close()
	for c := range accepted {
		c.Close()
		t.Error("a refused dial reached the listener")
	}
}
