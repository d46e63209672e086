package server

import (
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"
)

// The monitor page and its assets are served from the binary, open even
// when reads need a token (they hold no data; the page asks for the
// token), and load nothing from elsewhere.
func TestMonitorPageServed(t *testing.T) {
	ts := startServer(t, func(s *Server) { s.Token = "s3cret"; s.APIReadToken = "reader" })
	external := regexp.MustCompile(`(?i)(src|href)\s*=\s*["']?(https?:)?//|url\(\s*["']?(https?:)?//|fetch\(\s*['"]https?:`)
	for path, ct := range map[string]string{"/": "text/html", "/monitor/monitor.js": "text/javascript", "/monitor/monitor.css": "text/css"} {
		resp, err := http.Get(ts.url(path))
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), ct) {
			t.Errorf("GET %s: %d %q, want 200 %s", path, resp.StatusCode, resp.Header.Get("Content-Type"), ct)
		}
		if m := external.Find(b); m != nil {
			t.Errorf("GET %s loads from the network: %q", path, m)
		}
	}
	for _, path := range []string{"/api/v1/tree", "/api/v1/events", "/monitor/../api/v1/tree"} {
		if code, _ := authCall(t, ts, http.MethodGet, path, ""); code != http.StatusUnauthorized {
			t.Errorf("GET %s without the read token: %d, want 401", path, code)
		}
	}
	if code, _ := authCall(t, ts, http.MethodGet, "/monitor/nothing.js", ""); code != http.StatusNotFound {
		t.Errorf("GET an unknown asset: %d, want 404", code)
	}
}
