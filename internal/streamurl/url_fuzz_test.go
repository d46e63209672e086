package streamurl

import (
	"errors"
	"strings"
	"testing"
)

// checkOrigin fails unless o is a well-formed origin that survives every
// form the tools write it in: the origin URL (the stream's key), the
// enhanced URL a player or relay opens, and the enhanced query alone.
func checkOrigin(t *testing.T, o Origin) {
	t.Helper()
	if o.Host == "" || o.Media == "" || o.Port < 1 || o.Port > 65535 {
		t.Fatalf("accepted a malformed origin %#v", o)
	}
	if o.Host != strings.ToLower(o.Host) || strings.HasPrefix(o.Media, "/") || strings.HasSuffix(o.Media, "/") {
		t.Fatalf("origin not normalised: %#v", o)
	}
	for _, s := range []string{o.URL(), o.EnhancedURL("localhost:0"), o.EnhancedURL("[::1]:0")} {
		o2, err := Parse(s)
		if err != nil {
			t.Fatalf("%#v written as %q does not parse: %v", o, s, err)
		}
		if o2 != o {
			t.Fatalf("%#v written as %q parses as %#v", o, s, o2)
		}
	}
	if o2, err := ParseEnhanced("/"+o.Media, o.Query()); err != nil || o2 != o {
		t.Fatalf("%#v: query %q parses as %#v, %v", o, o.Query(), o2, err)
	}
}

var enhancedSeeds = []struct{ path, query string }{
	{"/live", "ms.example.org:8554"},
	{"/live", "MS.Example.org"},
	{"/a/b", "10.0.0.1:1"},
	{"/live", "[::1]:8554"},
	{"/live", "[fe80::1%25eth0]:554"},
	{"/live", "%5B::1%5D:8554"},
	{"live/", "h:65535"},
	{"/x", "h:0"},
	{"/x", "h:+1"},
	{"/x", "h:00554"},
	{"/a%2Fb", "h"},
	{"/a b", "h:1"},
	{"/a/../b", "h"},
	{"/", "h"},
	{"/x", ""},
	{"/x", "a..b"},
	{"/x", "xn--bcher-kva.example"},
	{"/x", strings.Repeat("a.", 130) + "a"},
}

// FuzzParseEnhanced feeds the path and query of an RTSP request, as a
// player or another relay sends them, to ParseEnhanced: it never panics,
// refuses with ErrBadQuery, and what it accepts survives a round trip.
func FuzzParseEnhanced(f *testing.F) {
	for _, s := range enhancedSeeds {
		f.Add(s.path, s.query)
	}
	f.Fuzz(func(t *testing.T, path, query string) {
		o, err := ParseEnhanced(path, query)
		if err != nil {
			if !errors.Is(err, ErrBadQuery) {
				t.Fatalf("error %v does not wrap ErrBadQuery", err)
			}
			return
		}
		checkOrigin(t, o)
	})
}

// FuzzParse feeds stream keys and URLs as they arrive from the
// control socket, the tree server and the command line.
func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"rtsp://ms:8554/cam/1",
		"rtsp://localhost:8555/cam/1?ms:8554",
		"rtsp://[::1]:8554/live",
		"rtsp://MS.example.org/live",
		"rtsp://user:pw@ms:1/x",
		"rtsp://ms:1/x#frag",
		"rtsp://ms:1/x?",
		"rtsp://ms:1/x?y?z",
		"rtsps://ms/x",
		"rtsp:///x",
		"rtsp://ms/%41",
		"rtsp://ms/a%2Fb",
		"rtsp://h:99999/x",
		"http://ms/x",
		"rtsp://ms\x00/x",
		"",
	} {
		f.Add(s)
	}
	for _, s := range enhancedSeeds {
		f.Add("rtsp://localhost:8554" + s.path + "?" + s.query)
	}
	f.Fuzz(func(t *testing.T, s string) {
		o, err := Parse(s)
		if err != nil {
			return
		}
		checkOrigin(t, o)
	})
}
