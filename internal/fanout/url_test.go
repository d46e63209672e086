package fanout

import (
	"errors"
	"net/netip"
	"testing"
)

// checkParse parses in in a subtest of its own: a bad input must fail
// with ErrBadURL; any other must parse, and check looks at the result.
func checkParse[T any](t *testing.T, parse func(string) (T, error), in string, bad bool, check func(*testing.T, T)) {
	t.Run(in, func(t *testing.T) {
		v, err := parse(in)
		if bad {
			if !errors.Is(err, ErrBadURL) {
				t.Fatalf("err = %v, want ErrBadURL", err)
			}
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		check(t, v)
	})
}

func TestParseInput(t *testing.T) {
	cases := []struct {
		in      string
		scheme  string
		bind    string
		group   string
		rtcp    bool
		str     string
		wantErr bool
	}{
		{in: "udp://127.0.0.1:5004", scheme: "udp", bind: "127.0.0.1:5004", rtcp: true, str: "udp://127.0.0.1:5004"},
		{in: "udp://127.0.0.1:0?rtcp=0", scheme: "udp", bind: "127.0.0.1:0", str: "udp://127.0.0.1:0?rtcp=0"},
		{in: "udp://:5004", scheme: "udp", bind: "0.0.0.0:5004", rtcp: true, str: "udp://0.0.0.0:5004"},
		{in: "udp://239.1.2.3:5004", scheme: "udp", bind: "239.1.2.3:5004", group: "239.1.2.3", rtcp: true, str: "udp://239.1.2.3:5004"},
		{in: "udp://239.1.2.3@0.0.0.0:5004", scheme: "udp", bind: "0.0.0.0:5004", group: "239.1.2.3", rtcp: true, str: "udp://239.1.2.3@0.0.0.0:5004"},
		{in: "rtp://[ff15::1]:5004", scheme: "udp", bind: "[ff15::1]:5004", group: "ff15::1", rtcp: true, str: "udp://[ff15::1]:5004"},
		{in: "rtsp://user:pw@ms:8554/live?ms:554", scheme: "rtsp", str: "rtsp://user:xxxxx@ms:8554/live?ms:554"},
		{in: "udp://127.0.0.1", wantErr: true},
		{in: "udp://127.0.0.1:99999", wantErr: true},
		{in: "udp://127.0.0.1:5004/path", wantErr: true},
		{in: "udp://10.0.0.1@0.0.0.0:5004", wantErr: true},
		{in: "udp://ff15::1@0.0.0.0:5004", wantErr: true},
		{in: "udp://127.0.0.1:5004?rtcp=maybe", wantErr: true},
		{in: "udp://127.0.0.1:5004?ttl=3", wantErr: true},
		{in: "http://example.com/", wantErr: true},
		{in: "rtsp://", wantErr: true},
		{in: "%%%", wantErr: true},
	}
	for _, c := range cases {
		checkParse(t, ParseInput, c.in, c.wantErr, func(t *testing.T, in Input) {
			if in.Scheme != c.scheme || in.RTCP != c.rtcp && c.scheme == "udp" {
				t.Errorf("got %+v", in)
			}
			if c.bind != "" && in.Bind != netip.MustParseAddrPort(c.bind) {
				t.Errorf("bind %v, want %s", in.Bind, c.bind)
			}
			if c.group != "" && in.Group != netip.MustParseAddr(c.group) || c.group == "" && in.Group.IsValid() {
				t.Errorf("group %v, want %q", in.Group, c.group)
			}
			if got := in.String(); got != c.str {
				t.Errorf("String() = %q, want %q", got, c.str)
			}
		})
	}
}

func TestParseOutput(t *testing.T) {
	cases := []struct {
		in      string
		str     string
		ttl     int
		mcast   bool
		wantErr bool
	}{
		{in: "udp://127.0.0.1:5004", str: "udp://127.0.0.1:5004"},
		{in: "udp://localhost:5004", str: "udp://127.0.0.1:5004"},
		{in: "udp://239.1.1.1:5004", str: "udp://239.1.1.1:5004?ttl=1", ttl: 1, mcast: true},
		{in: "udp://239.1.1.1:5004?ttl=4", str: "udp://239.1.1.1:5004?ttl=4", ttl: 4, mcast: true},
		{in: "udp://10.0.0.2:5004?ttl=9&rtcp=0", str: "udp://10.0.0.2:5004?ttl=9&rtcp=0", ttl: 9},
		{in: "udp://[::1]:5004", str: "udp://[::1]:5004"},
		{in: "udp://[ff02::1]:5004?iface=eth0", str: "udp://[ff02::1]:5004?ttl=1&iface=eth0", ttl: 1, mcast: true},
		{in: "udp://127.0.0.1:0", wantErr: true},
		{in: "udp://0.0.0.0:5004", wantErr: true},
		{in: "udp://:5004", wantErr: true},
		{in: "udp://127.0.0.1:65535", wantErr: true},
		{in: "udp://239.1.1.1:5004?ttl=0", wantErr: true},
		{in: "udp://239.1.1.1:5004?ttl=300", wantErr: true},
		{in: "udp://239.1.1.1:5004?tll=3", wantErr: true},
		{in: "udp://g@239.1.1.1:5004", wantErr: true},
		{in: "tcp://127.0.0.1:5004", wantErr: true},
		{in: "udp://no.such.host.invalid:5004", wantErr: true},
	}
	for _, c := range cases {
		checkParse(t, ParseOutput, c.in, c.wantErr, func(t *testing.T, o Output) {
			if o.String() != c.str || o.TTL != c.ttl || o.Multicast() != c.mcast {
				t.Errorf("got %+v (%s)", o, o)
			}
		})
	}
}
