package server

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ocm-overlay/ocm/internal/testutil"
)

// dialHTTP opens a raw TCP connection to the server's HTTP port.
func dialHTTP(t *testing.T, ts *testServer) net.Conn {
	t.Helper()
	return testutil.Dial(t, ts.HTTPAddr(), guard)
}

// waitDropped reads until the server ends the connection and returns
// what it sent; it fails the test if the connection is still open after
// guard.
func waitDropped(t *testing.T, r io.Reader, nc net.Conn) string {
	t.Helper()
	_ = nc.SetReadDeadline(time.Now().Add(guard))
	b, err := io.ReadAll(r)
	if ne, ok := errors.AsType[net.Error](err); ok && ne.Timeout() {
		t.Errorf("connection still open after %v (read %q)", guard, b)
	}
	return string(b)
}

// TestHTTPSlowBodyDropped: clients that send a POST's headers and then
// trickle (or never send) the body are dropped by the read timeout, and
// the action does not run; the API keeps answering others meanwhile.
func TestHTTPSlowBodyDropped(t *testing.T) {
	ts := startServer(t, func(s *Server) { s.HTTPReadTimeout = 300 * time.Millisecond })
	const clients = 20
	start := time.Now()
	var wg sync.WaitGroup
	answers := make([]string, clients)
	for i := range clients {
		nc := dialHTTP(t, ts)
		req := "POST /api/v1/policy?recovery=drop HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n0123456789"
		if _, err := nc.Write([]byte(req)); err != nil {
			t.Fatal(err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			answers[i] = waitDropped(t, nc, nc)
		}()
	}
	var p struct{ Recovery string }
	if code := ts.getJSON(t, "/api/v1/policy", &p); code != http.StatusOK {
		t.Errorf("GET policy during the slow bodies: %d", code)
	}
	wg.Wait()
	t.Logf("%d slow-body clients dropped within %v; first answer %q", clients, time.Since(start), firstLine(answers[0]))
	ts.getJSON(t, "/api/v1/policy", &p)
	if p.Recovery != string(DefaultRecovery) {
		t.Errorf("recovery = %q: an action ran on a request whose body never arrived", p.Recovery)
	}
}

func firstLine(s string) string {
	l, _, _ := strings.Cut(s, "\r\n")
	return l
}

// TestHTTPIdleDropped: a kept-alive connection that sends nothing more is
// closed after the idle timeout.
func TestHTTPIdleDropped(t *testing.T) {
	ts := startServer(t, func(s *Server) { s.HTTPIdleTimeout = 300 * time.Millisecond })
	nc := dialHTTP(t, ts)
	if _, err := nc.Write([]byte("GET /api/v1/policy HTTP/1.1\r\nHost: x\r\n\r\n")); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(nc)
	_ = nc.SetReadDeadline(time.Now().Add(guard))
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Close {
		t.Fatalf("first request: %d, close %v", resp.StatusCode, resp.Close)
	}
	start := time.Now()
	rest := waitDropped(t, br, nc)
	t.Logf("idle connection closed after %v (%d more bytes)", time.Since(start), len(rest))
}

// TestHTTPBodyLimit: a POST with a body over the limit is refused with
// 413 whether it says its length or not, and the action does not run.
func TestHTTPBodyLimit(t *testing.T) {
	ts := startServer(t, func(s *Server) { s.HTTPMaxBody = 1024 })
	for _, chunked := range []bool{false, true} {
		t.Run(fmt.Sprintf("chunked=%v", chunked), func(t *testing.T) {
			body := strings.NewReader(strings.Repeat("x", 4096))
			req, err := http.NewRequest(http.MethodPost, ts.url("/api/v1/policy?recovery=drop"), body)
			if err != nil {
				t.Fatal(err)
			}
			if chunked {
				req.ContentLength = -1
				req.Body = io.NopCloser(body)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusRequestEntityTooLarge || !strings.Contains(string(b), "over 1024 bytes") {
				t.Errorf("answer %d %s, want 413 naming the limit", resp.StatusCode, b)
			}
		})
	}
	var p struct{ Recovery string }
	ts.getJSON(t, "/api/v1/policy", &p)
	if p.Recovery != string(DefaultRecovery) {
		t.Errorf("recovery = %q: an action ran on a refused request", p.Recovery)
	}
	// A small body is read and ignored.
	resp, err := http.Post(ts.url("/api/v1/policy?recovery=drop"), "text/plain", strings.NewReader("ignored"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("small body: %d", resp.StatusCode)
	}
}

// TestHTTPIdleCrowdAndSlowloris: a thousand connections that send nothing
// and a client trickling its headers one byte at a time do not stop the
// API answering others; the trickler is dropped by the read timeout.
func TestHTTPIdleCrowdAndSlowloris(t *testing.T) {
	ts := startServer(t, func(s *Server) { s.HTTPReadTimeout = 500 * time.Millisecond })
	const idle = 1000
	for i := 0; i < idle; i++ {
		dialHTTP(t, ts) // connected, silent
	}
	slow := dialHTTP(t, ts)
	stop := make(chan struct{})
	trickled := make(chan error, 1)
	go func() {
		req := "GET /api/v1/policy HTTP/1.1\r\nHost: x\r\nX-Slow: " + strings.Repeat("a", 1000)
		for i := 0; i < len(req); i++ {
			select {
			case <-stop:
				trickled <- nil
				return
			case <-time.After(50 * time.Millisecond):
			}
			if _, err := slow.Write([]byte{req[i]}); err != nil {
				trickled <- err // dropped
				return
			}
		}
		trickled <- errors.New("sent every byte")
	}()
	for i := 0; i < 5; i++ {
		var p struct{ Recovery string }
		if code := ts.getJSON(t, "/api/v1/policy", &p); code != http.StatusOK || p.Recovery == "" {
			t.Fatalf("request %d beside %d idle connections and a slowloris: %d %+v", i, idle, code, p)
		}
	}
	// The trickler's request never completes: the server closes it
	// (a write fails, or reading shows the end).
	rest := waitDropped(t, slow, slow)
	close(stop)
	t.Logf("slowloris dropped (%q; writer: %v)", rest, <-trickled)
}
