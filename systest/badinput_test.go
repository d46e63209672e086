package systest

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/textproto"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ocm-overlay/ocm/internal/event"
	"github.com/ocm-overlay/ocm/internal/testutil"
)

// TestBadInput sends a mediator requests it must refuse, and garbage it
// must shrug off while a player reads.
func TestBadInput(t *testing.T) {
	systemTest(t)
	t.Parallel()
	origin := startMediator(t, "origin", "--test-source", "test")
	b := startMediator(t, "B")

	t.Run("malformed-query", func(t *testing.T) {
		require(t, "ffprobe")
		for _, c := range []struct{ query, reason string }{
			{"127.0.0.1:99999", `port "99999" is not a number`},
			{"127.0.0.1:", "empty port"},
			{"a:b:c", "write IPv6 origins in brackets"},
		} {
			url := enhanced(b.Addr, "test", c.query)
			_, errOut, err := run(t, "ffprobe", "-v", "error", "-rtsp_transport", "tcp", url)
			if err == nil || !strings.Contains(errOut, "400 Bad Request") {
				t.Errorf("ffprobe %s: %v, want a 400 answer; stderr:\n%s", url, err, errOut)
			}
			// ffmpeg does not print the reason of a 400; ask directly.
			if line := statusLine(t, b.Addr, url); !strings.HasPrefix(line, "RTSP/1.0 400 ") || !strings.Contains(line, c.reason) {
				t.Errorf("DESCRIBE %s answered %q, want 400 saying %q", url, line, c.reason)
			}
		}
		if !b.WaitStderr(func(s string) bool { return strings.Count(s, "bad enhanced request") >= 3 }) {
			t.Errorf("B logged %d bad enhanced requests, want at least 3", strings.Count(b.Stderr(), "bad enhanced request"))
		}
	})

	t.Run("origin-not-allowed", func(t *testing.T) {
		require(t, "ffprobe")
		strict := startMediator(t, "B (allow 10.0.0.0/8)", "--allow-origin", "10.0.0.0/8")
		url := enhanced(strict.Addr, "test", origin.Addr)
		_, errOut, err := run(t, "ffprobe", "-v", "error", "-rtsp_transport", "tcp", url)
		if err == nil || !strings.Contains(errOut, "403 Forbidden") {
			t.Errorf("ffprobe %s: %v, want a 403 answer; stderr:\n%s", url, err, errOut)
		}
		if !strict.WaitStderr(func(s string) bool { return hasLine(s, "origin not allowed", origin.Addr) }) {
			t.Errorf("B's log does not say origin %s was not allowed", origin.Addr)
		}
		if ev := eventsOf[event.Upstream](strict); len(ev) > 0 {
			t.Errorf("B opened an upstream to an origin it must not reach: %v", ev)
		}
	})

	t.Run("origin-unreachable", func(t *testing.T) {
		require(t, "ffprobe")
		closed := testutil.ClosedTCP(t)
		url := enhanced(b.Addr, "test", closed)
		_, errOut, err := run(t, "ffprobe", "-v", "error", "-rtsp_transport", "tcp", url)
		if err == nil || !regexp.MustCompile(`DESCRIBE failed: 5\d\d`).MatchString(errOut) {
			t.Errorf("ffprobe %s: %v, want a 5xx answer; stderr:\n%s", url, err, errOut)
		}
		if !b.WaitStderr(func(s string) bool { return hasLine(s, closed, "connection refused") }) {
			t.Errorf("B's log has no line naming origin %s and the cause (connection refused)", closed)
		}
	})

	t.Run("junk-while-playing", func(t *testing.T) {
		url := enhanced(b.Addr, "test", origin.Addr)
		r := startReader(t, "reader", url)
		waitEvent(t, r, "50 packets", 0, progressAtLeast(50))

		junk := make([]byte, 64<<10)
		rng := rand.NewChaCha8([32]byte{1})
		_, _ = rng.Read(junk)
		for _, c := range []struct {
			name  string
			bytes []byte
		}{
			{"random bytes", junk},
			{"an interleaved frame header announcing 64 KiB, then nothing", []byte("$\x00\xff\xffhalf a frame")},
			{"a request without its final empty line", []byte("DESCRIBE " + url + " RTSP/1.0\r\nCSeq: 1\r\n")},
			{"a 256 KiB request line", bytes.Repeat([]byte("A"), 256<<10)},
			{"an HTTP request", []byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n")},
			{"nothing", nil},
		} {
			// The connections stay open, half-done, until the test ends.
			conn := dial(t, b.Addr)
			_ = conn.SetWriteDeadline(time.Now().Add(patience))
			if _, err := conn.Write(c.bytes); err != nil {
				t.Logf("writing %s: %v (B may close such a connection)", c.name, err)
			}
		}
		stalledPlayer(t, b.Addr, url)
		waitEvent(t, b, "stats counting the stalled player as a reader", 0, func(e event.StreamStats) bool {
			return e.Stream == "rtsp://"+origin.Addr+"/test" && e.Readers >= 2
		})
		reset := dial(t, b.Addr)
		_ = reset.(*net.TCPConn).SetLinger(0) // close with RST
		reset.Close()

		after := packetsSoFar(r)
		waitEvent(t, r, "150 packets more after the junk", 0, progressAtLeast(after+150))

		// B still serves a new player while the junk connections hang on.
		out, errOut, err := run(t, tool("rtsp-mediator"), "read", url, "--duration", "2s")
		if err != nil {
			t.Errorf("a second reader failed: %v\n%s\n%s", err, out, errOut)
		}

		sum := stopReader(t, r)
		t.Logf("reader: %v packets, %v lost", sum.Packets, sum.Lost)
		if sum.Lost != 0 {
			t.Errorf("the reader lost %v packets; the junk must not disturb it", sum.Lost)
		}
		if b.Exited() {
			t.Errorf("B exited: %v", b.Err())
		}
	})
}

// statusLine sends DESCRIBE url to addr and returns the answer's status line.
func statusLine(t *testing.T, addr, url string) string {
	t.Helper()
	return statusLineOn(t, dial(t, addr), url)
}

// statusLineOn is statusLine on an open connection, which it closes.
func statusLineOn(t *testing.T, conn net.Conn, url string) string {
	t.Helper()
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(patience))
	if _, err := fmt.Fprintf(conn, "DESCRIBE %s RTSP/1.0\r\nCSeq: 1\r\n\r\n", url); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil {
		t.Fatalf("DESCRIBE %s: %v", url, err)
	}
	return strings.TrimSpace(line)
}

// stalledPlayer plays url over TCP with a tiny receive buffer and then
// never reads: a reader that stopped, whose connection B's writes fill up.
func stalledPlayer(t *testing.T, addr, url string) {
	t.Helper()
	d := net.Dialer{Timeout: patience, Control: func(_, _ string, rc syscall.RawConn) error {
		var err error
		if cerr := rc.Control(func(fd uintptr) {
			err = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096)
		}); cerr != nil {
			return cerr
		}
		return err
	}}
	conn, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	_ = conn.SetDeadline(time.Now().Add(patience))
	br := bufio.NewReader(conn)
	cseq := 0
	request := func(method, u string, headers ...string) (*textproto.MIMEHeader, string) {
		t.Helper()
		cseq++
		req := fmt.Sprintf("%s %s RTSP/1.0\r\nCSeq: %d\r\n", method, u, cseq)
		for _, h := range headers {
			req += h + "\r\n"
		}
		if _, err := conn.Write([]byte(req + "\r\n")); err != nil {
			t.Fatal(err)
		}
		tp := textproto.NewReader(br)
		status, err := tp.ReadLine()
		if err != nil {
			t.Fatalf("%s %s: %v", method, u, err)
		}
		if !strings.HasPrefix(status, "RTSP/1.0 200 ") {
			t.Fatalf("%s %s answered %q", method, u, status)
		}
		h, err := tp.ReadMIMEHeader()
		if err != nil {
			t.Fatalf("%s %s: %v", method, u, err)
		}
		var body []byte
		if n, _ := strconv.Atoi(h.Get("Content-Length")); n > 0 {
			body = make([]byte, n)
			if _, err := io.ReadFull(br, body); err != nil {
				t.Fatalf("%s %s: %v", method, u, err)
			}
		}
		return &h, string(body)
	}

	h, sdp := request("DESCRIBE", url, "Accept: application/sdp")
	control := regexp.MustCompile(`(?m)^a=control:(\S+)`).FindStringSubmatch(sdp)
	if control == nil {
		t.Fatalf("DESCRIBE %s: no a=control in\n%s", url, sdp)
	}
	track := control[1]
	if !strings.HasPrefix(track, "rtsp://") {
		track = h.Get("Content-Base") + track
	}
	h, _ = request("SETUP", track, "Transport: RTP/AVP/TCP;unicast;interleaved=0-1")
	session, _, _ := strings.Cut(h.Get("Session"), ";")
	request("PLAY", url, "Session: "+session)
}

// dial connects to addr; the connection is closed when the test ends.
func dial(t *testing.T, addr string) net.Conn {
	t.Helper()
	return testutil.Dial(t, addr, patience)
}

// hasLine reports whether one line of text contains all of words.
func hasLine(text string, words ...string) bool {
	for _, l := range strings.Split(text, "\n") {
		all := true
		for _, w := range words {
			all = all && strings.Contains(l, w)
		}
		if all {
			return true
		}
	}
	return false
}
