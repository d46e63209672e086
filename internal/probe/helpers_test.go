package probe

import (
	"bufio"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ocm-overlay/ocm/internal/testutil"
)

// startResponder runs a responder on 127.0.0.1:0 answering info.
func startResponder(t *testing.T, info func(string) Info) *Responder {
	t.Helper()
	r := &Responder{Listen: "127.0.0.1:0", Info: info}
	if err := r.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.Close)
	return r
}

// fixedInfo answers the same metrics for any stream, with level for want
// and -1 for others.
func fixedInfo(in Info, want string) func(string) Info {
	return func(stream string) Info {
		out := in
		if stream != want {
			out.Level = -1
		}
		return out
	}
}

// fakeResponder reads probe requests on a UDP socket of 127.0.0.1 until
// the test ends and hands each (the i-th valid one, from 0) to answer,
// with a function that sends a datagram back to its sender; it returns
// the socket's address.
func fakeResponder(t *testing.T, answer func(i int, req request, send func([]byte))) string {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	t.Cleanup(func() { pc.Close(); <-done })
	go func() {
		defer close(done)
		buf := make([]byte, MaxDatagram)
		for i := 0; ; {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			req, err := parseRequest(buf[:n])
			if err != nil {
				continue
			}
			answer(i, req, func(b []byte) { _, _ = pc.WriteTo(b, from) })
			i++
		}
	}()
	return pc.LocalAddr().String()
}

// rtspServer answers every request read on each connection with answer
// ("" never answers) and records the request lines.
type rtspServer struct {
	addr string
	mu   sync.Mutex
	reqs []string
}

func startRTSP(t *testing.T, answer string) *rtspServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &rtspServer{addr: ln.Addr().String()}
	// A silent server (answer "") reads on and never answers, until the
	// test ends and closes the connection.
	testutil.Serve(t, ln, time.Minute, func(c net.Conn) {
		br := bufio.NewReader(c)
		var lines []string
		for {
			l, err := br.ReadString('\n')
			if err != nil {
				return
			}
			if strings.TrimSpace(l) != "" {
				lines = append(lines, strings.TrimSpace(l))
				continue
			}
			if len(lines) > 0 {
				s.mu.Lock()
				s.reqs = append(s.reqs, lines[0])
				s.mu.Unlock()
			}
			lines = nil
			if answer == "" {
				continue
			}
			if _, err := c.Write([]byte(answer)); err != nil {
				return
			}
		}
	})
	return s
}

func (s *rtspServer) requests() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.reqs...)
}
