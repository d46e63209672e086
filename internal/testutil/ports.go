package testutil

import (
	"net"
	"testing"
	"time"
)

// ClosedTCP returns a 127.0.0.1 address where nothing listens: a port
// just freed.
func ClosedTCP(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// SilentUDP returns the address of a UDP socket on 127.0.0.1 that never
// answers (and keeps its port busy) until the test ends.
func SilentUDP(t testing.TB) string {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	return pc.LocalAddr().String()
}

// Dial connects to the TCP address addr within timeout, failing the test
// if it cannot; the connection closes when the test ends.
func Dial(t testing.TB, addr string, timeout time.Duration) net.Conn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, timeout)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}
