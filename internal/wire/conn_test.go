package wire

import (
	"errors"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"
)

// pair returns two connected Conns over real TCP on 127.0.0.1.
func pair(t *testing.T) (*Conn, net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	ch := make(chan net.Conn, 1)
	go func() {
		c, _ := ln.Accept()
		ch <- c
	}()
	client, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	server := <-ch
	if server == nil {
		t.Fatal("accept failed")
	}
	c := NewConn(server)
	t.Cleanup(func() { c.Close(); client.Close() })
	return c, client
}

// lineOfLen returns a valid error message exactly n bytes long.
func lineOfLen(n int) string {
	const prefix, suffix = `{"v":1,"type":"error","code":"x","message":"`, `"}`
	return prefix + strings.Repeat("m", n-len(prefix)-len(suffix)) + suffix
}

func TestConnReadLines(t *testing.T) {
	tests := []struct {
		name  string
		input string
		// each entry: the wanted type, or the wanted error
		want []any
	}{
		{"two messages", "{\"v\":1,\"type\":\"heartbeat\"}\n{\"v\":1,\"type\":\"left\",\"stream\":\"s\"}\n",
			[]any{TypeHeartbeat, TypeLeft, io.EOF}},
		{"crlf and blank lines", "\r\n\n{\"v\":1,\"type\":\"heartbeat\"}\r\n\n",
			[]any{TypeHeartbeat, io.EOF}},
		{"garbage then good", "garbage\n{\"v\":1,\"type\":\"heartbeat\"}\n",
			[]any{ErrMalformed, TypeHeartbeat, io.EOF}},
		{"wrong version then good", "{\"v\":9,\"type\":\"heartbeat\"}\n{\"v\":1,\"type\":\"heartbeat\"}\n",
			[]any{ErrVersion, TypeHeartbeat, io.EOF}},
		{"truncated", "{\"v\":1,\"type\":\"heartbeat\"}\n{\"v\":1,\"ty",
			[]any{TypeHeartbeat, ErrTruncated}},
		{"oversized then good", strings.Repeat("x", MaxLineLen+10) + "\n{\"v\":1,\"type\":\"heartbeat\"}\n",
			[]any{ErrLineTooLong, TypeHeartbeat, io.EOF}},
		{"exactly the limit", lineOfLen(MaxLineLen) + "\n",
			[]any{TypeError, io.EOF}},
		{"one over the limit", lineOfLen(MaxLineLen+1) + "\n",
			[]any{ErrLineTooLong, io.EOF}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, peer := pair(t)
			go func() {
				_, _ = io.WriteString(peer, tt.input)
				peer.Close()
			}()
			for i, w := range tt.want {
				m, err := c.ReadMsg()
				switch w := w.(type) {
				case string:
					if err != nil || m.Type != w {
						t.Fatalf("read %d: got %q, %v; want %s", i, m.Type, err, w)
					}
				case error:
					if !errors.Is(err, w) {
						t.Fatalf("read %d: got err %v, want %v", i, err, w)
					}
				}
			}
		})
	}
}

func TestConnLineTooLongNamesLimit(t *testing.T) {
	c, peer := pair(t)
	c.SetMaxLine(100)
	go func() {
		_, _ = io.WriteString(peer, strings.Repeat("y", 200)+"\n")
	}()
	_, err := c.ReadMsg()
	if !errors.Is(err, ErrLineTooLong) || !strings.Contains(err.Error(), "100") {
		t.Fatalf("err = %v, want ErrLineTooLong naming 100", err)
	}
}

func TestConnReadTimeout(t *testing.T) {
	c, _ := pair(t)
	c.SetReadTimeout(time.Millisecond)
	_, err := c.ReadMsg()
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("err = %v, want a timeout", err)
	}
}

func TestConnConcurrentWrites(t *testing.T) {
	c, peer := pair(t)
	const writers, each = 8, 50
	var wg sync.WaitGroup
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < each; i++ {
				if _, err := c.Send(&Report{CPU: 0.5, Streams: []StreamReport{{Stream: strings.Repeat("s", 2000)}, {Stream: strings.Repeat("t", 2000)}}}); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	done := make(chan struct{})
	go func() { wg.Wait(); c.Close(); close(done) }()
	r := NewConn(peer)
	ids := map[uint64]bool{}
	for {
		m, err := r.ReadMsg()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("interleaved write? %v", err)
		}
		if ids[m.ID] {
			t.Fatalf("duplicate id %d", m.ID)
		}
		ids[m.ID] = true
	}
	<-done
	if len(ids) != writers*each {
		t.Fatalf("got %d messages, want %d", len(ids), writers*each)
	}
}

func TestConnReply(t *testing.T) {
	c, peer := pair(t)
	r := NewConn(peer)
	id, err := r.Send(&Heartbeat{})
	if err != nil {
		t.Fatal(err)
	}
	m, err := c.ReadMsg()
	if err != nil || m.ID != id {
		t.Fatalf("got %+v, %v", m, err)
	}
	if err := c.Reply(m.ID, &Heartbeat{}); err != nil {
		t.Fatal(err)
	}
	m, err = r.ReadMsg()
	if err != nil || m.Re != id || m.Type != TypeHeartbeat {
		t.Fatalf("got %+v, %v", m, err)
	}
}

func TestConnWriteTooLong(t *testing.T) {
	c, _ := pair(t)
	c.SetMaxLine(50)
	err := c.WriteMsg(Msg{Body: &Error{Code: "x", Message: strings.Repeat("z", 100)}})
	if !errors.Is(err, ErrLineTooLong) {
		t.Fatalf("err = %v", err)
	}
}

func TestConnCloseIdempotent(t *testing.T) {
	c, _ := pair(t)
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := c.ReadMsg(); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("read after close: %v", err)
	}
}
