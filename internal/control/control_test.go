package control_test

import (
	"bufio"
	"errors"
	"net"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ocm-overlay/ocm/internal/control"
)

// guard bounds blocking reads so a bug fails instead of hanging; it is a
// liveness limit, never a timing assertion.
const guard = 10 * time.Second

// pair returns the two ends of a loopback TCP connection, wrapped, and the
// raw client end for writing bytes that are not messages.
func pair(t *testing.T) (client, srv *control.Conn, raw net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		nc, err := ln.Accept()
		if err != nil {
			close(accepted)
			return
		}
		accepted <- nc
	}()
	raw, err = net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	sc, ok := <-accepted
	if !ok {
		t.Fatal("accept failed")
	}
	_ = sc.SetReadDeadline(time.Now().Add(guard))
	_ = raw.SetReadDeadline(time.Now().Add(guard))
	client, srv = control.NewConn(raw), control.NewConn(sc)
	t.Cleanup(func() {
		client.Close()
		srv.Close()
	})
	return client, srv, raw
}

func willing(b bool) *bool { return &b }

// messages are one of each shape the protocol uses.
var messages = []struct {
	name string
	m    control.Msg
}{
	{"hello", control.Msg{Op: control.OpHello, ID: 1, RTSP: "10.0.0.2:8554"}},
	{"hello reply", control.Msg{Re: 1, Node: "n1", Willing: willing(true)}},
	{"hello reply passive", control.Msg{Re: 1, Node: "n1", Willing: willing(false)}},
	{"resolve", control.Msg{Op: control.OpResolve, ID: 2, Stream: "rtsp://ms:554/cam",
		Exclude: []string{"10.0.0.3:8554", "10.0.0.4:8554"}, Redirect: true}},
	{"resolve reply", control.Msg{Re: 2, Upstream: &control.Upstream{URL: "rtsp://10.0.0.3:8554/cam?ms:554",
		Addr: "10.0.0.3:8554", Node: "n3"}}},
	{"resolve error", control.Msg{Re: 2, Error: "no usable parent"}},
	{"active", control.Msg{Op: control.OpActive, Stream: "rtsp://ms:554/cam",
		Upstream: &control.Upstream{URL: "rtsp://ms:554/cam", Addr: "ms:554", Node: "origin"}}},
	{"inactive", control.Msg{Op: control.OpInactive, Stream: "rtsp://ms:554/cam"}},
	{"stats", control.Msg{Op: control.OpStats, Streams: []control.StreamStats{
		{Stream: "rtsp://ms:554/cam", Upstream: "rtsp://ms:554/cam", Readers: 3, RelayReaders: 1,
			PacketsIn: 1 << 40, Lost: 7, BitrateBPS: 2.5e6},
		{Stream: "rtsp://ms:554/other"},
	}}},
	{"switch", control.Msg{Op: control.OpSwitch, Stream: "rtsp://ms:554/cam",
		Upstream: &control.Upstream{URL: "rtsp://10.0.0.5:8554/cam?ms:554", Addr: "10.0.0.5:8554"}}},
	{"unicode", control.Msg{Op: control.OpResolve, ID: 3, Stream: "rtsp://ms:554/caméra <&> \"q\"\u2028"}},
}

// TestRoundTrip: what one end writes, the other reads unchanged, in both
// directions.
func TestRoundTrip(t *testing.T) {
	client, srv, _ := pair(t)
	for _, tc := range messages {
		t.Run(tc.name, func(t *testing.T) {
			for _, dir := range []struct {
				name string
				w, r *control.Conn
			}{{"client to server", client, srv}, {"server to client", srv, client}} {
				if err := dir.w.Write(tc.m); err != nil {
					t.Fatalf("%s: write: %v", dir.name, err)
				}
				got, err := dir.r.Read()
				if err != nil {
					t.Fatalf("%s: read: %v", dir.name, err)
				}
				if !reflect.DeepEqual(got, tc.m) {
					t.Errorf("%s: read %+v, want %+v", dir.name, got, tc.m)
				}
			}
		})
	}
}

// TestWireFormat: one JSON object per line, empty fields left out, so a
// mediator written in another language can speak it.
func TestWireFormat(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		nc, err := ln.Accept()
		if err != nil {
			return
		}
		c := control.NewConn(nc)
		_ = c.Write(control.Msg{Op: control.OpHello, ID: 1, RTSP: "h:1"})
		_ = c.Write(control.Msg{Re: 1, Willing: willing(false)})
		c.Close()
	}()
	nc, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	_ = nc.SetReadDeadline(time.Now().Add(guard))
	br := bufio.NewReader(nc)
	for _, want := range []string{`{"op":"hello","id":1,"rtsp":"h:1"}`, `{"re":1,"willing":false}`} {
		line, err := br.ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		if line != want+"\n" {
			t.Errorf("line %q, want %q", line, want+"\n")
		}
	}
}

// TestConcurrentWrites: Write is safe for concurrent use; every message
// arrives whole.
func TestConcurrentWrites(t *testing.T) {
	client, srv, _ := pair(t)
	const writers, each = 8, 50
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				m := control.Msg{Op: control.OpStats, ID: uint64(w*each + i + 1),
					Streams: []control.StreamStats{{Stream: strings.Repeat("x", 1000+i)}}}
				if err := client.Write(m); err != nil {
					t.Errorf("write: %v", err)
					return
				}
			}
		}()
	}
	seen := map[uint64]bool{}
	for range writers * each {
		m, err := srv.Read()
		if err != nil {
			t.Fatalf("read after %d messages: %v", len(seen), err)
		}
		if seen[m.ID] || m.ID == 0 || len(m.Streams) != 1 || !strings.HasPrefix(m.Streams[0].Stream, "xxx") {
			t.Fatalf("bad or repeated message %d", m.ID)
		}
		seen[m.ID] = true
	}
	wg.Wait()
}

// TestBadLine: a line that is not a message is an ErrBadMessage, and the
// next good line still reads; blank lines are skipped.
func TestBadLine(t *testing.T) {
	cases := []struct {
		name, line string
	}{
		{"not json", "hello there"},
		{"truncated object", `{"op":"hello"`},
		{"wrong type", `{"op":5}`},
		{"negative id", `{"op":"resolve","id":-1}`},
		{"array", `["hello"]`},
		{"willing not a bool", `{"re":1,"willing":"yes"}`},
		{"binary", "\x00\xff\xfe"},
	}
	client, srv, raw := pair(t)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := raw.Write([]byte(tc.line + "\n\n\r\n")); err != nil {
				t.Fatal(err)
			}
			good := control.Msg{Op: control.OpInactive, Stream: "rtsp://ms:554/" + tc.name}
			if err := client.Write(good); err != nil {
				t.Fatal(err)
			}
			_, err := srv.Read()
			if !errors.Is(err, control.ErrBadMessage) {
				t.Fatalf("read %q: err = %v, want ErrBadMessage", tc.line, err)
			}
			// The blank lines after it (with or without "\r") are skipped.
			got, err := srv.Read()
			if err != nil {
				t.Fatalf("read after the bad line: %v", err)
			}
			if !reflect.DeepEqual(got, good) {
				t.Errorf("read %+v, want %+v", got, good)
			}
		})
	}
}

// TestLongLine: a line up to the limit reads; a longer one is an error
// that is not ErrBadMessage (the connection cannot go on).
func TestLongLine(t *testing.T) {
	// padded returns a message whose JSON line is n bytes long.
	padded := func(n int) []byte {
		const head, tail = `{"op":"inactive","stream":"`, `"}`
		return []byte(head + strings.Repeat("a", n-len(head)-len(tail)) + tail)
	}
	t.Run("under the limit", func(t *testing.T) {
		_, srv, raw := pair(t)
		line := padded(control.MaxLine - 1)
		go func() { _, _ = raw.Write(append(line, '\n')) }()
		m, err := srv.Read()
		if err != nil {
			t.Fatalf("read a %d-byte line: %v", len(line), err)
		}
		if m.Op != control.OpInactive || len(m.Stream) != len(line)-len(`{"op":"inactive","stream":""}`) {
			t.Errorf("read %q with a %d-byte stream", m.Op, len(m.Stream))
		}
	})
	t.Run("over the limit", func(t *testing.T) {
		_, srv, raw := pair(t)
		line := padded(control.MaxLine + 100)
		go func() {
			_, _ = raw.Write(append(line, '\n'))
			_, _ = raw.Write([]byte(`{"op":"inactive","stream":"s"}` + "\n"))
		}()
		_, err := srv.Read()
		if err == nil || errors.Is(err, control.ErrBadMessage) {
			t.Fatalf("read a %d-byte line: err = %v, want a fatal error", len(line), err)
		}
		if !errors.Is(err, bufio.ErrTooLong) {
			t.Errorf("err = %v, want bufio.ErrTooLong", err)
		}
		if _, err2 := srv.Read(); err2 == nil {
			t.Errorf("read went on after a line too long")
		}
	})
}

// TestLineOfMaxLine: MaxLine "bounds one message": a line of exactly
// MaxLine bytes should read (as wire.MaxLineLen allows a line of that
// length without its terminator).
func TestLineOfMaxLine(t *testing.T) {
	_, srv, raw := pair(t)
	const head, tail = `{"op":"inactive","stream":"`, `"}`
	line := head + strings.Repeat("a", control.MaxLine-len(head)-len(tail)) + tail
	go func() { _, _ = raw.Write([]byte(line + "\n")) }()
	if _, err := srv.Read(); err != nil {
		t.Fatalf("read a line of exactly MaxLine bytes: %v", err)
	}
}

// TestWriteOverMaxLine: Write must not send what the peer's Read refuses:
// the peer would drop the connection (a stats message listing every
// stream grows with the number of streams).
func TestWriteOverMaxLine(t *testing.T) {
	client, srv, _ := pair(t)
	var streams []control.StreamStats
	for i := 0; len(streams)*200 < control.MaxLine+10000; i++ {
		streams = append(streams, control.StreamStats{Stream: "rtsp://origin.example:554/camera/" + strings.Repeat("x", 120),
			Upstream: "rtsp://10.0.0.3:8554/camera?origin.example:554", Readers: i})
	}
	done := make(chan error, 1)
	go func() {
		_, err := srv.Read()
		done <- err
	}()
	if err := client.Write(control.Msg{Op: control.OpStats, Streams: streams}); err == nil {
		t.Errorf("Write sent a %d-stream stats message over MaxLine without error; the peer read: %v",
			len(streams), <-done)
	}
}

// TestReadAfterClose: the peer closing is net.ErrClosed; writing on a
// closed Conn is an error.
func TestReadAfterClose(t *testing.T) {
	client, srv, _ := pair(t)
	if err := client.Write(control.Msg{Op: control.OpInactive, Stream: "s"}); err != nil {
		t.Fatal(err)
	}
	client.Close()
	if m, err := srv.Read(); err != nil || m.Stream != "s" {
		t.Fatalf("read before the close = %+v, %v", m, err)
	}
	if _, err := srv.Read(); !errors.Is(err, net.ErrClosed) {
		t.Errorf("read after the peer closed: err = %v, want net.ErrClosed", err)
	}
	if err := client.Write(control.Msg{Op: control.OpInactive}); err == nil {
		t.Error("write on a closed Conn succeeded")
	}
	if client.RemoteAddr() == nil || client.RemoteAddr().String() == "" {
		t.Error("no remote address")
	}
}
