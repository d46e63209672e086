package control_test

import (
	"bufio"
	"errors"
	"io"
	"net"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ocm-overlay/ocm/internal/control"
	"github.com/ocm-overlay/ocm/internal/wire"
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

// messages are one of each type, in the direction the protocol uses.
var messages = []struct {
	name string
	m    wire.Msg
}{
	{"hello", wire.Msg{ID: 1, Body: &control.Hello{RTSP: "10.0.0.2:8554"}}},
	{"welcome", wire.Msg{ID: 1, Re: 1, Body: &control.Welcome{Node: "n1", Willing: true}}},
	{"welcome passive", wire.Msg{ID: 1, Re: 1, Body: &control.Welcome{Node: "n1", Willing: false}}},
	{"resolve", wire.Msg{ID: 2, Body: &control.Resolve{Stream: "rtsp://ms:554/cam", Mode: control.ModeAfterLoss,
		Exclude: []string{"10.0.0.3:8554", "10.0.0.4:8554"}}}},
	{"resolve redirect", wire.Msg{ID: 2, Body: &control.Resolve{Stream: "rtsp://ms:554/cam", Mode: control.ModeRedirect}}},
	{"resolved", wire.Msg{ID: 2, Re: 2, Body: &control.Resolved{Upstream: control.Upstream{URL: "rtsp://10.0.0.3:8554/cam?ms:554",
		Addr: "10.0.0.3:8554", Node: "n3"}}}},
	{"resolve error", wire.Msg{ID: 3, Re: 2, Body: &wire.Error{Code: control.CodeNoUpstream, Message: "no usable parent"}}},
	{"active", wire.Msg{ID: 4, Body: &control.Active{Stream: "rtsp://ms:554/cam",
		Upstream: control.Upstream{URL: "rtsp://ms:554/cam", Addr: "ms:554", Node: "origin"}}}},
	{"inactive", wire.Msg{ID: 5, Body: &control.Inactive{Stream: "rtsp://ms:554/cam"}}},
	{"stats", wire.Msg{ID: 6, Body: &control.Stats{Streams: []control.StreamStats{
		{Stream: "rtsp://ms:554/cam", Upstream: "rtsp://ms:554/cam", Readers: 3, RelayReaders: 1,
			PacketsIn: 1 << 40, Lost: 7, BitrateBPS: 2.5e6},
		{Stream: "rtsp://ms:554/other"},
	}}}},
	{"switch", wire.Msg{ID: 7, Body: &control.Switch{Stream: "rtsp://ms:554/cam",
		Upstream: control.Upstream{URL: "rtsp://10.0.0.5:8554/cam?ms:554", Addr: "10.0.0.5:8554"}}}},
	{"unicode", wire.Msg{ID: 8, Body: &control.Resolve{Stream: "rtsp://ms:554/caméra <&> \"q\"\u2028", Mode: control.ModeJoin}}},
}

// decoded is m as a reader sees it: the envelope's version and type set.
func decoded(m wire.Msg) wire.Msg {
	m.V, m.Type = control.Version, m.Body.Type()
	return m
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
				if err := dir.w.WriteMsg(tc.m); err != nil {
					t.Fatalf("%s: write: %v", dir.name, err)
				}
				got, err := dir.r.ReadMsg()
				if err != nil {
					t.Fatalf("%s: read: %v", dir.name, err)
				}
				if want := decoded(tc.m); !reflect.DeepEqual(got, want) {
					t.Errorf("%s: read %+v, want %+v", dir.name, got, want)
				}
			}
		})
	}
}

// TestWireFormat: one JSON object per line in wire's envelope, empty
// fields left out, so a mediator written in another language can speak
// it.
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
		_ = c.WriteMsg(wire.Msg{ID: 1, Body: &control.Hello{RTSP: "h:1"}})
		_ = c.WriteMsg(wire.Msg{Re: 1, Body: &control.Welcome{}})
		_ = c.WriteMsg(wire.Msg{ID: 2, Body: &control.Resolve{Stream: "s", Mode: control.ModeJoin}})
		c.Close()
	}()
	nc, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	_ = nc.SetReadDeadline(time.Now().Add(guard))
	br := bufio.NewReader(nc)
	for _, want := range []string{
		`{"v":1,"type":"hello","id":1,"rtsp":"h:1"}`,
		`{"v":1,"type":"welcome","re":1,"willing":false}`,
		`{"v":1,"type":"resolve","id":2,"stream":"s","mode":"join"}`,
	} {
		line, err := br.ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		if line != want+"\n" {
			t.Errorf("line %q, want %q", line, want+"\n")
		}
	}
}

// TestConcurrentWrites: WriteMsg is safe for concurrent use; every
// message arrives whole.
func TestConcurrentWrites(t *testing.T) {
	client, srv, _ := pair(t)
	const writers, each = 8, 50
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				m := wire.Msg{ID: uint64(w*each + i + 1),
					Body: &control.Stats{Streams: []control.StreamStats{{Stream: strings.Repeat("x", 1000+i)}}}}
				if err := client.WriteMsg(m); err != nil {
					t.Errorf("write: %v", err)
					return
				}
			}
		}()
	}
	seen := map[uint64]bool{}
	for range writers * each {
		m, err := srv.ReadMsg()
		if err != nil {
			t.Fatalf("read after %d messages: %v", len(seen), err)
		}
		st, ok := m.Body.(*control.Stats)
		if seen[m.ID] || m.ID == 0 || !ok || len(st.Streams) != 1 || !strings.HasPrefix(st.Streams[0].Stream, "xxx") {
			t.Fatalf("bad or repeated message %d", m.ID)
		}
		seen[m.ID] = true
	}
	wg.Wait()
}

// TestBadLine: a line that is not a message of the link is a bad-message
// error naming what was wrong, with the envelope's id when there was one,
// and the next good line still reads; blank lines are skipped.
func TestBadLine(t *testing.T) {
	cases := []struct {
		name, line string
		err        error
		says       string // in the error
	}{
		{"not json", "hello there", wire.ErrMalformed, "not a JSON object"},
		{"truncated object", `{"v":1,"type":"hello"`, wire.ErrMalformed, "unexpected end"},
		{"wrong type", `{"v":1,"type":5}`, wire.ErrMalformed, "type"},
		{"negative id", `{"v":1,"type":"resolve","id":-1}`, wire.ErrMalformed, "id"},
		{"array", `["hello"]`, wire.ErrMalformed, "not a JSON object"},
		{"willing not a bool", `{"v":1,"type":"welcome","re":1,"willing":"yes"}`, wire.ErrMalformed, "willing"},
		{"binary", "\x00\xff\xfe", wire.ErrMalformed, "not a JSON object"},
		{"unknown type", `{"v":1,"type":"frobnicate","id":4}`, wire.ErrUnknownType, `"frobnicate" (not a control message)`},
		{"wire type", `{"v":1,"type":"get_candidates","id":4,"stream":"s"}`, wire.ErrUnknownType, "get_candidates"},
		{"no mode", `{"v":1,"type":"resolve","id":4,"stream":"s"}`, wire.ErrInvalid, "mode is empty"},
		{"unknown mode", `{"v":1,"type":"resolve","id":4,"stream":"s","mode":"soon"}`, wire.ErrInvalid, `mode "soon" is not join, after_loss or redirect`},
		{"after_loss excluding nothing", `{"v":1,"type":"resolve","id":4,"stream":"s","mode":"after_loss"}`, wire.ErrInvalid, "mode after_loss without exclude"},
		{"join excluding", `{"v":1,"type":"resolve","id":4,"stream":"s","mode":"join","exclude":["h:1"]}`, wire.ErrInvalid, "exclude with mode join"},
		{"active without upstream", `{"v":1,"type":"active","id":4,"stream":"s"}`, wire.ErrInvalid, "upstream.url is empty"},
		{"switch without stream", `{"v":1,"type":"switch","upstream":{"url":"u"}}`, wire.ErrInvalid, "stream is empty"},
		{"bad stats", `{"v":1,"type":"stats","streams":[{"stream":"s","readers":-1}]}`, wire.ErrInvalid, "streams[0].readers -1 is negative"},
		{"stream not text", `{"v":1,"type":"inactive","stream":"a\u0001b"}`, wire.ErrInvalid, "stream has control characters or invalid UTF-8"},
	}
	client, srv, raw := pair(t)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := raw.Write([]byte(tc.line + "\n\n\r\n")); err != nil {
				t.Fatal(err)
			}
			good := wire.Msg{ID: 9, Body: &control.Inactive{Stream: "rtsp://ms:554/" + tc.name}}
			if err := client.WriteMsg(good); err != nil {
				t.Fatal(err)
			}
			m, err := srv.ReadMsg()
			if !errors.Is(err, tc.err) || !wire.IsBadMessage(err) || !strings.Contains(err.Error(), tc.says) {
				t.Fatalf("read %q: err = %v, want %v saying %q", tc.line, err, tc.err, tc.says)
			}
			if strings.Contains(tc.line, `"id":4`) && m.ID != 4 {
				t.Errorf("read %q: envelope id %d, want 4 (to answer with re)", tc.line, m.ID)
			}
			// The blank lines after it (with or without "\r") are skipped.
			got, err := srv.ReadMsg()
			if err != nil {
				t.Fatalf("read after the bad line: %v", err)
			}
			if want := decoded(good); !reflect.DeepEqual(got, want) {
				t.Errorf("read %+v, want %+v", got, want)
			}
		})
	}
}

// TestVersion: the control link is versioned like wire: a line without v
// (the flat messages of before) or of another version is ErrVersion,
// which is not a bad message (the peer answers and closes).
func TestVersion(t *testing.T) {
	for _, line := range []string{
		`{"op":"hello","id":1,"rtsp":"h:1"}`,
		`{"v":2,"type":"hello","id":1,"rtsp":"h:1"}`,
	} {
		m, err := control.Link.Decode([]byte(line))
		if !errors.Is(err, wire.ErrVersion) || wire.IsBadMessage(err) || wire.ErrorCode(err) != wire.CodeVersion {
			t.Errorf("decode %s: err = %v, want ErrVersion", line, err)
		}
		if m.ID != 1 {
			t.Errorf("decode %s: id %d, want 1 (to answer with re)", line, m.ID)
		}
	}
	if _, err := control.Link.Encode(wire.Msg{V: 2, Body: &control.Inactive{Stream: "s"}}); !errors.Is(err, wire.ErrVersion) {
		t.Errorf("encode v=2: err = %v, want ErrVersion", err)
	}
}

// TestLongLine: a line up to the limit reads; a longer one is
// ErrLineTooLong, which is not a bad message (the connection cannot go
// on: the relay answers and closes).
func TestLongLine(t *testing.T) {
	// padded returns a message whose JSON line is n bytes long.
	const head, tail = `{"v":1,"type":"error","code":"x","message":"`, `"}`
	padded := func(n int) []byte {
		return []byte(head + strings.Repeat("a", n-len(head)-len(tail)) + tail)
	}
	t.Run("under the limit", func(t *testing.T) {
		_, srv, raw := pair(t)
		line := padded(control.MaxLine - 1)
		go func() { _, _ = raw.Write(append(line, '\n')) }()
		m, err := srv.ReadMsg()
		if err != nil {
			t.Fatalf("read a %d-byte line: %v", len(line), err)
		}
		e, ok := m.Body.(*wire.Error)
		if !ok || len(e.Message) != len(line)-len(head+tail) {
			t.Errorf("read %q with a %d-byte line", m.Type, len(line))
		}
	})
	t.Run("over the limit", func(t *testing.T) {
		_, srv, raw := pair(t)
		line := padded(control.MaxLine + 100)
		go func() {
			_, _ = raw.Write(append(line, '\n'))
			_, _ = raw.Write([]byte(`{"v":1,"type":"inactive","stream":"s"}` + "\n"))
		}()
		_, err := srv.ReadMsg()
		if err == nil || wire.IsBadMessage(err) {
			t.Fatalf("read a %d-byte line: err = %v, want a fatal error", len(line), err)
		}
		if !errors.Is(err, wire.ErrLineTooLong) || !strings.Contains(err.Error(), strconv.Itoa(control.MaxLine)) {
			t.Errorf("err = %v, want ErrLineTooLong naming the limit", err)
		}
	})
}

// TestLineOfMaxLine: MaxLine "bounds one message": a line of exactly
// MaxLine bytes reads (wire's limit is on the line without its
// terminator).
func TestLineOfMaxLine(t *testing.T) {
	_, srv, raw := pair(t)
	const head, tail = `{"v":1,"type":"error","code":"x","message":"`, `"}`
	line := head + strings.Repeat("a", control.MaxLine-len(head)-len(tail)) + tail
	go func() { _, _ = raw.Write([]byte(line + "\n")) }()
	if _, err := srv.ReadMsg(); err != nil {
		t.Fatalf("read a line of exactly MaxLine bytes: %v", err)
	}
}

// TestWriteOverMaxLine: WriteMsg must not send what the peer's ReadMsg
// refuses: the peer would drop the connection (a stats message listing
// every stream grows with the number of streams).
func TestWriteOverMaxLine(t *testing.T) {
	client, srv, _ := pair(t)
	var streams []control.StreamStats
	for i := 0; len(streams)*200 < control.MaxLine+10000; i++ {
		streams = append(streams, control.StreamStats{Stream: "rtsp://origin.example:554/camera/" + strings.Repeat("x", 120),
			Upstream: "rtsp://10.0.0.3:8554/camera?origin.example:554", Readers: i})
	}
	done := make(chan error, 1)
	go func() {
		_, err := srv.ReadMsg()
		done <- err
	}()
	err := client.WriteMsg(wire.Msg{Body: &control.Stats{Streams: streams}})
	if err == nil {
		t.Errorf("WriteMsg sent a %d-stream stats message over MaxLine without error; the peer read: %v",
			len(streams), <-done)
	} else if !errors.Is(err, wire.ErrLineTooLong) {
		t.Errorf("err = %v, want ErrLineTooLong", err)
	}
}

// TestReadAfterClose: the peer closing is io.EOF; writing on a closed
// Conn is an error.
func TestReadAfterClose(t *testing.T) {
	client, srv, _ := pair(t)
	if err := client.WriteMsg(wire.Msg{Body: &control.Inactive{Stream: "s"}}); err != nil {
		t.Fatal(err)
	}
	client.Close()
	if m, err := srv.ReadMsg(); err != nil || m.Body.(*control.Inactive).Stream != "s" {
		t.Fatalf("read before the close = %+v, %v", m, err)
	}
	if _, err := srv.ReadMsg(); !errors.Is(err, io.EOF) {
		t.Errorf("read after the peer closed: err = %v, want io.EOF", err)
	}
	if err := client.WriteMsg(wire.Msg{Body: &control.Inactive{Stream: "s"}}); err == nil {
		t.Error("write on a closed Conn succeeded")
	}
	if client.RemoteAddr() == nil || client.RemoteAddr().String() == "" {
		t.Error("no remote address")
	}
}
