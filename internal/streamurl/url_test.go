package streamurl

import (
	"errors"
	"testing"
)

func TestParseEnhanced(t *testing.T) {
	tests := []struct {
		path, query string
		want        string // normalised origin URL; "" means an error
	}{
		{"/live", "ms.example.org:8554", "rtsp://ms.example.org:8554/live"},
		{"/live", "MS.Example.org", "rtsp://ms.example.org:554/live"},
		{"/a/b", "10.0.0.1:1", "rtsp://10.0.0.1:1/a/b"},
		{"/live", "[::1]:8554", "rtsp://[::1]:8554/live"},
		{"/live", "[::1]", "rtsp://[::1]:554/live"},
		{"/live", "", ""},
		{"/", "host:554", ""},
		{"/live", "host:", ""},
		{"/live", "host:0", ""},
		{"/live", "host:70000", ""},
		{"/live", "host:port", ""},
		{"/live", "::1:8554", ""},
		{"/live", "[::1", ""},
		{"/live", "a/b", ""},
		{"/live", "user@host", ""},
		{"/live", "x=1&y=2", ""},
		{"/live", "bad_-.host", ""},
		{"/live", "-bad:1", ""},
	}
	for _, tt := range tests {
		t.Run(tt.path+"?"+tt.query, func(t *testing.T) {
			o, err := ParseEnhanced(tt.path, tt.query)
			if tt.want == "" {
				if err == nil || !errors.Is(err, ErrBadQuery) {
					t.Fatalf("got %v, %v; want an ErrBadQuery", o.URL(), err)
				}
				return
			}
			if err != nil || o.URL() != tt.want {
				t.Fatalf("got %q, %v; want %q", o.URL(), err, tt.want)
			}
		})
	}
}

func TestEnhancedURLRoundTrip(t *testing.T) {
	o, err := Parse("rtsp://ms:8554/cam/1")
	if err != nil {
		t.Fatal(err)
	}
	u := o.EnhancedURL("localhost:8555")
	if u != "rtsp://localhost:8555/cam/1?ms:8554" {
		t.Fatalf("enhanced URL %q", u)
	}
	o2, err := Parse(u)
	if err != nil || o2 != o {
		t.Fatalf("round trip: %v %v", o2, err)
	}
}

func TestKeyAddr(t *testing.T) {
	tests := []struct {
		stream, want string
		ok           bool
	}{
		{"rtsp://ms:8554/live", "ms:8554", true},
		{"rtsp://ms/live", "ms:554", true},
		{"rtsps://ms/live", "ms:322", true},
		{"rtsp://[::1]:8554/a/b", "[::1]:8554", true},
		{"rtsp://10.0.0.1:554/live?x", "10.0.0.1:554", true},
		{"http://ms/live", "", false},
		{"live", "", false},
		{"rtsp:///live", "", false},
		{"rtsp://ms:bad/live", "", false},
	}
	for _, tt := range tests {
		got, err := KeyAddr(tt.stream)
		if (err == nil) != tt.ok || got != tt.want {
			t.Errorf("KeyAddr(%q) = %q, %v", tt.stream, got, err)
		}
	}
}
