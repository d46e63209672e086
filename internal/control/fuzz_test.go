package control_test

import (
	"bytes"
	"errors"
	"io"
	"net"
	"strings"
	"testing"

	"github.com/ocm-overlay/ocm/internal/control"
	"github.com/ocm-overlay/ocm/internal/wire"
	"github.com/ocm-overlay/ocm/internal/wire/wiretest"
)

// FuzzDecode runs wire's check for every link on the control link, as
// FuzzDecode in package wire does on the server link: Decode never
// panics, every error is one of wire's sentinels and quotes at most a
// little of the line, and whatever decodes re-encodes to the same
// message.
func FuzzDecode(f *testing.F) {
	for _, tc := range messages {
		line, err := control.Link.Encode(tc.m)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(line)
	}
	for _, s := range []string{
		"", "garbage", "{", "}", "{}", "null", "[]", `"str"`, `{"v":1}`,
		`{"op":"hello","id":1,"rtsp":"h:1"}`,
		`{"v":2,"type":"hello","rtsp":"h:1"}`,
		`{"v":1,"type":"resolve","id":2,"stream":"s","mode":"after_loss","exclude":[]}`,
		`{"v":1,"type":"resolve","id":2,"stream":"s","mode":"sometime"}`,
		`{"v":1,"type":"resolve","id":2,"stream":"s","mode":"join","exclude":[""]}`,
		`{"v":1,"type":"resolve","id":-1}`,
		`{"v":1,"type":"stats","streams":[{"stream":"s","readers":1e99}]}`,
		`{"v":1,"type":"stats","streams":[{"stream":"s","bitrate_bps":1e308}]}`,
		`{"v":1,"type":"switch","upstream":null,"stream":"a","stream":"b"}`,
		`{"v":1,"type":"error","re":18446744073709551615,"code":"x","message":"` + strings.Repeat("x", 300) + `"}`,
		"{\"v\":1,\"type\":\"active\",\"stream\":\"\xff\xfe\\u2028<&>\",\"upstream\":{\"url\":\"u\"}}",
		`{"v":1,"type":"welcome","willing":"yes"}`,
		`{"v":1,"type":"get_candidates","stream":"s"}`,
		`{"v":1,"type":"inactive","stream":"` + strings.Repeat("s", 3000) + `"}`,
		strings.Repeat("[", 10000),
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, line []byte) { wiretest.CheckLine(t, control.Link, line) })
}

// FuzzRead feeds a byte stream, as a local peer may send it, to
// Conn.ReadMsg: it never panics; a bad line (or one of another version)
// is an error that quotes at most a little of it, and reading goes on; an
// over-long line ends the stream; every message read goes out through
// WriteMsg and reads back the same.
func FuzzRead(f *testing.F) {
	for _, tc := range messages {
		b, err := control.Link.Encode(tc.m)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(append(b, '\n'))
	}
	for _, s := range []string{
		"", "\n\n", "garbage\n", "{\n", "}", "null\n", "[]\n", `"str"` + "\n",
		`{"v":1,"type":"hello","id":1,"rtsp":"h:1"}` + "\n" + `{"v":1,"type":"welcome","re":1,"willing":false}`,
		`{"V":1,"TYPE":"resolve","Id":2,"stream":"s","mode":"join","exclude":[]}` + "\n",
		`{"v":1,"type":"resolve","id":-1}` + "\n" + `{"v":1,"type":"inactive","stream":"s"}` + "\n",
		`{"op":"inactive","stream":"s"}` + "\r\n" + `{"v":1,"type":"inactive","stream":"s"}` + "\n",
		strings.Repeat("[", 10000) + "\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, m := range readAll(t, data) {
			roundTrip(t, m)
		}
	})
}

// readAll reads every message of data through a Conn.
func readAll(t *testing.T, data []byte) []wire.Msg {
	t.Helper()
	peer, local := net.Pipe()
	wrote := make(chan struct{})
	go func() {
		defer close(wrote)
		_, _ = peer.Write(data)
		peer.Close()
	}()
	c := control.NewConn(local)
	defer func() {
		c.Close() // unblocks the writer after an over-long line
		<-wrote
	}()
	var out []wire.Msg
	for {
		m, err := c.ReadMsg()
		switch {
		case err == nil:
			out = append(out, m)
		case wire.IsBadMessage(err), errors.Is(err, wire.ErrVersion):
			if len(err.Error()) > 512 {
				t.Fatalf("error of %d bytes echoes the line: %.100s...", len(err.Error()), err)
			}
		case errors.Is(err, wire.ErrLineTooLong), errors.Is(err, wire.ErrTruncated), errors.Is(err, io.EOF):
			return out
		default:
			t.Fatalf("read: unexpected error %v", err)
		}
	}
}

// roundTrip writes m through one Conn and reads it from another: the same
// message, compared by encoding (an empty list and none both go absent).
func roundTrip(t *testing.T, m wire.Msg) {
	t.Helper()
	a, b := net.Pipe()
	w, r := control.NewConn(a), control.NewConn(b)
	defer w.Close()
	defer r.Close()
	werr := make(chan error, 1)
	go func() {
		err := w.WriteMsg(m)
		if err != nil {
			w.Close() // nothing was sent: end the reader's wait
		}
		werr <- err
	}()
	got, err := r.ReadMsg()
	if err != nil {
		if errors.Is(<-werr, wire.ErrLineTooLong) {
			return // refused before sending: the peer would have dropped it
		}
		t.Fatalf("%+v does not read back: %v", m, err)
	}
	if err := <-werr; err != nil {
		t.Fatalf("write %+v: %v", m, err)
	}
	want, _ := control.Link.Encode(m)
	again, _ := control.Link.Encode(got)
	if !bytes.Equal(want, again) {
		t.Fatalf("round trip changed the message:\n%s\n%s", want, again)
	}
}
