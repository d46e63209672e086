package testutil

import (
	"bufio"
	"net"
	"strings"
	"sync"
	"testing"
	"time"
)

// Serve runs handle on every connection ln accepts, each in a goroutine
// of its own with a deadline of timeout (none when timeout is 0: a
// connection the test holds throughout), and closes the connection after;
// when the test ends, or earlier at Close, it closes ln and every
// connection still open, and waits for every handler.
func Serve(t testing.TB, ln net.Listener, timeout time.Duration, handle func(net.Conn)) *Served {
	s := &Served{ln: ln, open: map[net.Conn]bool{}}
	s.wg.Add(1)
	t.Cleanup(s.Close)
	go func() {
		defer s.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s.mu.Lock()
			if s.closed {
				s.mu.Unlock()
				c.Close()
				continue
			}
			s.open[c] = true
			s.wg.Add(1)
			s.mu.Unlock()
			go func() {
				defer s.wg.Done()
				defer func() {
					s.mu.Lock()
					delete(s.open, c)
					s.mu.Unlock()
					c.Close()
				}()
				if timeout > 0 {
					_ = c.SetDeadline(time.Now().Add(timeout))
				}
				handle(c)
			}()
		}
	}()
	return s
}

// Served is a listener Serve serves.
type Served struct {
	ln     net.Listener
	wg     sync.WaitGroup
	mu     sync.Mutex
	closed bool
	open   map[net.Conn]bool
}

// Close stops serving as the test's end does: it closes the listener and
// every connection still open, and waits for every handler.
func (s *Served) Close() {
	s.mu.Lock()
	s.closed = true
	s.ln.Close()
	for c := range s.open {
		c.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
}

// AnswerRTSP serves ln until the test ends (or Close): it answers every
// RTSP request read on each connection with 200 OK, as an origin answers
// the OPTIONS a probe sends.
func AnswerRTSP(t testing.TB, ln net.Listener, timeout time.Duration) *Served {
	return Serve(t, ln, timeout, func(c net.Conn) {
		br := bufio.NewReader(c)
		for {
			// One request: lines up to a blank one.
			for {
				l, err := br.ReadString('\n')
				if err != nil {
					return
				}
				if strings.TrimSpace(l) == "" {
					break
				}
			}
			if _, err := c.Write([]byte("RTSP/1.0 200 OK\r\nCSeq: 1\r\n\r\n")); err != nil {
				return
			}
		}
	})
}

// FirstLines serves ln until the test ends: it reads the first line of
// every connection (a hello, say), hangs up, and sends the line on the
// channel it returns. Lines beyond the channel's room are dropped, so a
// client that keeps retrying never blocks the cleanup.
func FirstLines(t testing.TB, ln net.Listener, timeout time.Duration) <-chan string {
	lines := make(chan string, 16)
	Serve(t, ln, timeout, func(c net.Conn) {
		line, _ := bufio.NewReader(c).ReadString('\n')
		select {
		case lines <- line:
		default:
		}
	})
	return lines
}
