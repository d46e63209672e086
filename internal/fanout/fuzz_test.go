package fanout

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/netip"
	"slices"
	"strings"
	"testing"
)

// loopbackLookup stands in for DNS in fuzzing: every name is 127.0.0.1,
// so no test ever asks a resolver, and "bad" names fail as unknown ones
// would.
func loopbackLookup(host string) (netip.Addr, error) {
	if strings.HasPrefix(host, "bad") {
		return netip.Addr{}, errors.New("no such host")
	}
	return netip.AddrFrom4([4]byte{127, 0, 0, 1}), nil
}

var urlSeeds = []string{
	"udp://127.0.0.1:5004", "udp://127.0.0.1:0?rtcp=0", "udp://:5004",
	"udp://239.1.2.3:5004", "udp://239.1.2.3@0.0.0.0:5004", "rtp://[ff15::1]:5004",
	"udp://[fe80::1%25lo]:5004", "udp://[ff02::1%25lo]:5004?ttl=3",
	"udp://[::ffff:127.0.0.1]:5004", "udp://host:5004", "udp://bad.host:5004",
	"udp://239.1.1.1:5004?ttl=255&iface=eth0&rtcp=0", "udp://127.0.0.1:5004?iface=a%26b",
	"udp://127.0.0.1:5004?ttl=0", "udp://127.0.0.1:65535", "udp://127.0.0.1:65534",
	"udp://127.0.0.1:5004?rtcp=maybe", "udp://127.0.0.1:5004?x=1", "udp://127.0.0.1:5004/p",
	"udp://u@127.0.0.1:5004", "udp://0.0.0.0:5004", "udp://127.0.0.1", "udp://127.0.0.1:+5",
	"rtsp://user:pw@ms:8554/live?ms:554", "rtsps://ms/x", "rtsp://", "http://x/", "%%%", "",
}

// fuzzURL seeds f with urlSeeds and feeds parse: never a panic; every
// error wraps ErrBadURL; check looks at what it accepts.
func fuzzURL[T any](f *testing.F, parse func(string, LookupFunc) (T, error), check func(t *testing.T, s string, v T)) {
	for _, s := range urlSeeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		v, err := parse(s, loopbackLookup)
		if err != nil {
			if !errors.Is(err, ErrBadURL) {
				t.Fatalf("%q: error %v does not wrap ErrBadURL", s, err)
			}
			return
		}
		check(t, s, v)
	})
}

// FuzzParseInput feeds --from URLs: never a panic; errors wrap ErrBadURL;
// an accepted udp input is written back (ready line) as a URL that parses
// to the same input.
func FuzzParseInput(f *testing.F) {
	fuzzURL(f, parseInput, func(t *testing.T, s string, in Input) {
		switch in.Scheme {
		case "rtsp":
			if in.URL != s {
				t.Fatalf("%q: rtsp input %+v", s, in)
			}
		case "udp":
			if in.Group.IsValid() && !in.Group.IsMulticast() || !in.Bind.IsValid() {
				t.Fatalf("%q: udp input %+v", s, in)
			}
			in2, err := parseInput(in.String(), loopbackLookup)
			if err != nil || in2 != in {
				t.Fatalf("%q parses as %+v, written %q, which parses as %+v, %v", s, in, in.String(), in2, err)
			}
		default:
			t.Fatalf("%q: scheme %q", s, in.Scheme)
		}
	})
}

// FuzzParseOutput feeds --to URLs and those of add and remove commands:
// never a panic; errors wrap ErrBadURL; an accepted output's canonical
// name (what list and stats show, and what remove takes) parses to the
// same output.
func FuzzParseOutput(f *testing.F) {
	fuzzURL(f, parseOutput, func(t *testing.T, s string, o Output) {
		if !o.Addr.IsValid() || o.Addr.Port() == 0 || o.Addr.Port() == 65535 || o.Addr.Addr().IsUnspecified() ||
			o.TTL < 0 || o.TTL > 255 || o.Multicast() && o.TTL == 0 {
			t.Fatalf("%q: accepted %+v", s, o)
		}
		o2, err := parseOutput(o.String(), loopbackLookup)
		if err != nil || o2 != o {
			t.Fatalf("%q parses as %+v, named %q, which parses as %+v, %v", s, o, o.String(), o2, err)
		}
	})
}

// FuzzHandle feeds stdin command lines to a running fanout (no input
// traffic, so nothing is sent anywhere): never a panic; one reply per
// line that encodes as JSON and is either ok or says what was wrong; the
// outputs listed are those added and not removed, never more than the
// limit.
func FuzzHandle(f *testing.F) {
	for _, s := range []string{
		`{"op":"add","to":"udp://127.0.0.1:5004","id":7}`,
		`{"op":"add","to":"udp://127.0.0.1:5004"}` + "\n" + `{"op":"remove","to":"udp://127.0.0.1:5004"}`,
		`{"op":"add","to":"udp://host:5004"}` + "\n" + `{"op":"list"}` + "\n" + `{"op":"stats","id":"s"}`,
		`{"op":"add","to":"udp://[::1]:5004?ttl=2&rtcp=0"}` + "\n" + `{"op":"remove","to":"udp://[::1]:5004"}`,
		`{"op":"add","to":"udp://127.0.0.2:1"}` + "\n" + `{"op":"add","to":"udp://127.0.0.3:1"}` + "\n" +
			`{"op":"add","to":"udp://127.0.0.4:1"}` + "\n" + `{"op":"add","to":"udp://127.0.0.5:1"}` + "\n" +
			`{"op":"add","to":"udp://127.0.0.6:1"}`,
		`{"op":"add","to":"udp://239.255.0.1:5004?iface=lo"}`,
		`{"op":"add","to":"udp://127.0.0.1:5004?iface=nosuch0"}`,
		`{"op":"add"}`, `{"op":""}`, `{"op":"jump"}`, `{"op":"list","extra":1}`,
		`{"op":"list"} {"op":"list"}`, `{"op":"list","id":{"a":[1,2]}}`, `{"op":"list","id":null}`,
		`{"OP":"LIST"}`, `{"op":"add","to":5}`, "not json", "", "\n\n", `[]`, `null`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		fo := &Fanout{From: "udp://127.0.0.1:0?rtcp=0", MaxDestinations: 4, LookupHost: loopbackLookup}
		if err := fo.Start(); err != nil {
			t.Fatal(err)
		}
		defer fo.Close()
		var want []string
		for line := range bytes.SplitSeq(data, []byte("\n")) {
			r := fo.Handle(line)
			if _, err := json.Marshal(r); err != nil {
				t.Fatalf("%q: reply %+v does not encode: %v", line, r, err)
			}
			if r.OK == (r.Error != "") {
				t.Fatalf("%q: reply %+v", line, r)
			}
			if r.OK && (r.Op == "add" || r.Op == "remove") {
				name, _ := r.To.(string)
				if r.Op == "add" {
					want = append(want, name)
				} else {
					want = slices.DeleteFunc(want, func(s string) bool { return s == name })
				}
			}
			if got := fo.List(); !slices.Equal(got, want) || len(got) > fo.MaxDestinations {
				t.Fatalf("after %q: outputs %q, want %q", line, got, want)
			}
		}
		if st := fo.Stats(); st.In.Packets != 0 || len(st.Out) != len(want) {
			t.Fatalf("stats %+v", st)
		}
	})
}
