package testutil

import (
	"bufio"
	"io"
	"net"
	"testing"
	"time"
)

// AnswerRTSP answers each request on a connection; Close ends the serving
// before the test does: the open connection is closed and no new one is
// served.
func TestAnswerRTSPAndClose(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	srv := AnswerRTSP(t, ln, 20*time.Second)
	c := Dial(t, addr, 20*time.Second)
	_ = c.SetDeadline(time.Now().Add(20 * time.Second))
	br := bufio.NewReader(c)
	for i := range 2 {
		if _, err := io.WriteString(c, "OPTIONS rtsp://"+addr+"/ RTSP/1.0\r\nCSeq: 1\r\n\r\n"); err != nil {
			t.Fatal(err)
		}
		if l, err := br.ReadString('\n'); err != nil || l != "RTSP/1.0 200 OK\r\n" {
			t.Fatalf("answer %d: %q, %v", i+1, l, err)
		}
		for l := ""; l != "\r\n"; {
			if l, err = br.ReadString('\n'); err != nil {
				t.Fatal(err)
			}
		}
	}
	srv.Close()
	if _, err := br.ReadString('\n'); err == nil {
		t.Error("the connection is still open after Close")
	}
	if c2, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
		c2.Close()
		t.Error("a new connection was accepted after Close")
	}
}
