package probe

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net"
	"strings"
	"testing"
	"time"
)

// FuzzParseRequest feeds datagrams, as anyone may send them to a
// responder, to parseRequest: it never panics; what it accepts is a probe
// of this version with a bounded stream, re-encodes to the same request,
// and gets an answer that fits in one datagram and echoes it.
func FuzzParseRequest(f *testing.F) {
	for _, r := range []request{
		{V: Version, Type: TypeProbe, Seq: 7, Stream: "rtsp://ms:554/x", SentNs: 1700000000000000000},
		{V: Version, Type: TypeProbe},
		{V: Version, Type: TypeProbe, Seq: 1<<64 - 1, SentNs: -1, Stream: strings.Repeat("s", maxStream)},
		{V: 2, Type: TypeProbe},
		{V: Version, Type: TypeReply},
	} {
		b, _ := json.Marshal(r)
		f.Add(b)
	}
	for _, s := range []string{
		"", "junk", "{}", "null", `{"v":1,"type":"probe","seq":-1}`,
		`{"v":1,"type":"probe","stream":"` + strings.Repeat("x", maxStream+1) + `"}`,
		`{"V":1,"TYPE":"probe","Seq":3,"sent_ns":1e3}`,
		`{"v":1,"type":"probe","type":"probe_reply"}`,
		"{\"v\":1,\"type\":\"probe\",\"stream\":\"\xff\\u0000<>\"}",
		strings.Repeat(" ", MaxDatagram) + "{}",
	} {
		f.Add([]byte(s))
	}
	r := &Responder{}
	f.Fuzz(func(t *testing.T, b []byte) {
		req, err := parseRequest(b)
		if err != nil {
			return
		}
		if req.V != Version || req.Type != TypeProbe || len(req.Stream) > maxStream || len(b) > MaxDatagram {
			t.Fatalf("accepted %q as %+v", b, req)
		}
		again, _ := json.Marshal(req)
		if req2, err := parseRequest(again); err != nil && len(again) <= MaxDatagram || err == nil && req2 != req {
			t.Fatalf("request %+v re-encoded as %s reads as %+v, %v", req, again, req2, err)
		}
		out, err := r.answer(req)
		if err != nil {
			t.Fatalf("no answer to %+v: %v", req, err)
		}
		rep, err := parseReply(out)
		if err != nil || rep.Seq != req.Seq || rep.SentNs != req.SentNs || rep.Level != -1 {
			t.Fatalf("answer %s to %+v reads as %+v, %v", out, req, rep, err)
		}
	})
}

// FuzzParseReply feeds datagrams, as a probed peer (or anyone spoofing
// it) may answer, to parseReply: it never panics, and what it accepts is
// an answer of this version that re-encodes to the same answer.
func FuzzParseReply(f *testing.F) {
	for _, r := range []reply{
		{V: Version, Type: TypeReply, Seq: 7, SentNs: 1700000000000000000, Info: Info{
			Node: "n1", Clients: 2, Level: 1, Cores: 8, CPU: 0.12, FreeMem: 4123000000, Willing: true, FreeCapacity: 2}},
		{V: Version, Type: TypeReply, Info: Info{Level: -1}},
		{V: Version, Type: TypeProbe},
	} {
		b, _ := json.Marshal(r)
		f.Add(b)
	}
	for _, s := range []string{
		"", "junk", "{}", `{"v":1,"type":"probe_reply","level":-1000000,"cpu":1e308,"clients":-5}`,
		`{"v":1,"type":"probe_reply","free_capacity":9223372036854775808}`,
		`{"v":1,"type":"probe_reply","node":"` + strings.Repeat("n", MaxDatagram) + `"}`,
		`{"v":1,"type":"probe_reply","willing":1}`,
		`{"v":1,"type":"probe_reply","Info":{"node":"x"}}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		rep, err := parseReply(b)
		if err != nil {
			return
		}
		if rep.V != Version || rep.Type != TypeReply || len(b) > MaxDatagram {
			t.Fatalf("accepted %q as %+v", b, rep)
		}
		again, _ := json.Marshal(rep)
		if rep2, err := parseReply(again); err != nil && len(again) <= MaxDatagram || err == nil && rep2 != rep {
			t.Fatalf("answer %+v re-encoded as %s reads as %+v, %v", rep, again, rep2, err)
		}
	})
}

// FuzzProbeRTSP has a real TCP peer on loopback answer an OPTIONS probe
// with arbitrary bytes, as an origin (or whatever listens there) may:
// the probe never panics or hangs, and calls the peer alive exactly when
// its first line, within the probe's 512-byte buffer, is an RTSP status
// line.
func FuzzProbeRTSP(f *testing.F) {
	for _, s := range []string{
		"RTSP/1.0 200 OK\r\nCSeq: 1\r\n\r\n",
		"RTSP/1.0 404 Not Found\r\n\r\n",
		"RTSP/1.0 200\r\n",
		"RTSP/1.0 20 OK\r\n",
		"RTSP/1.0 200OK\r\n",
		"HTTP/1.1 400 Bad Request\r\n\r\n",
		"RTSP/1.0 200 OK", // closed before the end of the line
		"\r\n",
		"",
		strings.Repeat("x", 600) + "\n",
		"RTSP/1.0 200 OK\r\n" + strings.Repeat("X: y\r\n", 100),
	} {
		f.Add([]byte(s))
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		f.Fatal(err)
	}
	answers := make(chan []byte)
	served := make(chan struct{})
	go func() {
		defer close(served)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			a := <-answers
			_ = c.SetDeadline(time.Now().Add(10 * time.Second))
			br := bufio.NewReader(c)
			for { // the request, to its blank line
				l, err := br.ReadString('\n')
				if err != nil || strings.TrimSpace(l) == "" {
					break
				}
			}
			_, _ = c.Write(a)
			c.Close()
		}
	}()
	f.Cleanup(func() { ln.Close(); <-served })
	f.Fuzz(func(t *testing.T, answer []byte) {
		go func() { answers <- answer }()
		_, err := ProbeRTSP(context.Background(), ln.Addr().String(), 10*time.Second)
		first, _, ended := bytes.Cut(answer, []byte("\n"))
		alive := ended && len(first) < 512 && statusLine(first)
		switch {
		case alive && err != nil:
			t.Fatalf("answer %q: %v, want alive", answer, err)
		case !alive && err == nil:
			t.Fatalf("answer %q taken for RTSP", answer)
		case err != nil && !errors.Is(err, ErrNotRTSP) && !strings.Contains(err.Error(), "closed without an answer"):
			t.Fatalf("answer %q: unexpected error %v", answer, err)
		}
		if err != nil && len(err.Error()) > 512 {
			t.Fatalf("error of %d bytes", len(err.Error()))
		}
	})
}
