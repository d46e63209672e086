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
// when the test ends it closes ln and waits for every handler.
func Serve(t testing.TB, ln net.Listener, timeout time.Duration, handle func(net.Conn)) {
	var wg sync.WaitGroup
	wg.Add(1)
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
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
