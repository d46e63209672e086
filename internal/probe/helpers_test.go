package probe

import (
	"bufio"
	"net"
	"strings"
	"sync"
	"testing"
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

// silentUDP returns the address of a UDP socket that never answers.
func silentUDP(t *testing.T) string {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	return pc.LocalAddr().String()
}

// closedTCP returns an address where nothing listens (a port just freed).
func closedTCP(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
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
	var wg sync.WaitGroup
	done := make(chan struct{})
	var conns sync.Map
	t.Cleanup(func() {
		close(done)
		ln.Close()
		conns.Range(func(k, _ any) bool { k.(net.Conn).Close(); return true })
		wg.Wait()
	})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			conns.Store(c, nil)
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
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
						<-done
						return
					}
					if _, err := c.Write([]byte(answer)); err != nil {
						return
					}
				}
			}()
		}
	}()
	return s
}

func (s *rtspServer) requests() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.reqs...)
}
