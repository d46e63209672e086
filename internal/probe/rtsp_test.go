package probe

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/ocm-overlay/ocm/internal/testutil"
)

func TestProbeRTSP(t *testing.T) {
	tests := []struct {
		name    string
		answer  string
		wantErr error // nil: alive
	}{
		{"200", "RTSP/1.0 200 OK\r\nCSeq: 1\r\n\r\n", nil},
		{"404 is alive", "RTSP/1.0 404 Not Found\r\nCSeq: 1\r\n\r\n", nil},
		{"401 is alive", "RTSP/1.0 401 Unauthorized\r\nCSeq: 1\r\nWWW-Authenticate: Basic realm=\"x\"\r\n\r\n", nil},
		{"bare status", "RTSP/1.0 200\r\n\r\n", nil},
		{"http", "HTTP/1.1 400 Bad Request\r\n\r\n", ErrNotRTSP},
		{"junk", "hello\n", ErrNotRTSP},
		{"no newline, long", strings.Repeat("x", 2000), ErrNotRTSP},
		{"silent", "", ErrNoAnswer},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := startRTSP(t, tt.answer)
			timeout := 5 * time.Second
			if tt.answer == "" {
				timeout = 100 * time.Millisecond
			}
			rtt, err := ProbeRTSP(context.Background(), s.addr, timeout)
			if tt.wantErr == nil {
				if err != nil || rtt <= 0 {
					t.Fatalf("rtt %v, err %v", rtt, err)
				}
				if reqs := s.requests(); len(reqs) != 1 || reqs[0] != "OPTIONS rtsp://"+s.addr+"/ RTSP/1.0" {
					t.Errorf("requests = %q", reqs)
				}
				return
			}
			if !errors.Is(err, tt.wantErr) {
				t.Errorf("err = %v, want %v", err, tt.wantErr)
			}
		})
	}
}

func TestProbeRTSPClosedPort(t *testing.T) {
	_, err := ProbeRTSP(context.Background(), testutil.ClosedTCP(t), 5*time.Second)
	if err == nil {
		t.Fatal("probe of a closed port succeeded")
	}
}

func TestStatusLine(t *testing.T) {
	for l, want := range map[string]bool{
		"RTSP/1.0 200 OK\r\n":  true,
		"RTSP/1.0 200\r\n":     true,
		"RTSP/2.0 454 Nope\n":  true,
		"RTSP/1.0 20 OK\r\n":   false,
		"RTSP/1.0 2000 OK\r\n": false,
		"RTSP/1.0\r\n":         false,
		"rtsp/1.0 200 OK\r\n":  false,
		"HTTP/1.0 200 OK\r\n":  false,
	} {
		if got := statusLine([]byte(l)); got != want {
			t.Errorf("statusLine(%q) = %v, want %v", l, got, want)
		}
	}
}
