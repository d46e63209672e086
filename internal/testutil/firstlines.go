package testutil

import (
	"bufio"
	"net"
	"sync"
	"testing"
	"time"
)

// Serve runs handle on every connection ln accepts, each in a goroutine
// of its own with a deadline of timeout, and closes the connection after;
// when the test ends it closes ln and every connection still open, and
// waits for every handler.
func Serve(t testing.TB, ln net.Listener, timeout time.Duration, handle func(net.Conn)) {
	var wg sync.WaitGroup
	var mu sync.Mutex
	open := map[net.Conn]bool{}
	wg.Add(1)
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for c := range open {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			open[c] = true
			mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer func() {
					mu.Lock()
					delete(open, c)
					mu.Unlock()
					c.Close()
				}()
				_ = c.SetDeadline(time.Now().Add(timeout))
				handle(c)
			}()
		}
	}()
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
