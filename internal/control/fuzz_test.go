package control_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"net"
	"strings"
	"testing"

	"github.com/ocm-overlay/ocm/internal/control"
)

// FuzzRead feeds a byte stream, as a local peer may send it, to Conn.Read:
// it never panics; a bad line is an ErrBadMessage that quotes at most a
// little of it, and reading goes on; an over-long line ends the stream;
// every message read goes out through Write and reads back the same.
func FuzzRead(f *testing.F) {
	for _, tc := range messages {
		b, err := json.Marshal(tc.m)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(append(b, '\n'))
	}
	for _, s := range []string{
		"", "\n\n", "garbage\n", "{\n", "}", "null\n", "[]\n", `"str"` + "\n",
		`{"op":"hello","id":1,"rtsp":"h:1"}` + "\n" + `{"re":1,"willing":false}`,
		`{"OP":"resolve","Id":2,"stream":"s","exclude":[]}` + "\n",
		`{"op":"resolve","id":-1}` + "\n" + `{"op":"inactive","stream":"s"}` + "\n",
		`{"op":"stats","streams":[{"readers":1e99}]}` + "\n",
		`{"op":"stats","streams":[{"bitrate_bps":1e308}]}` + "\n",
		`{"op":"switch","upstream":null,"stream":"a","stream":"b"}` + "\n",
		`{"re":18446744073709551615,"error":"` + strings.Repeat("x", 300) + `"}` + "\n",
		"{\"op\":\"active\",\"stream\":\"\xff\xfe\\u2028<&>\"}\r\n",
		`{"op":"hello","willing":"yes"}` + "\n",
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
func readAll(t *testing.T, data []byte) []control.Msg {
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
	var out []control.Msg
	for {
		m, err := c.Read()
		switch {
		case err == nil:
			out = append(out, m)
		case errors.Is(err, control.ErrBadMessage):
			if len(err.Error()) > 512 {
				t.Fatalf("error of %d bytes echoes the line: %.100s...", len(err.Error()), err)
			}
		case errors.Is(err, bufio.ErrTooLong), errors.Is(err, net.ErrClosed):
			return out
		default:
			t.Fatalf("read: unexpected error %v", err)
		}
	}
}

// roundTrip writes m through one Conn and reads it from another: the same
// message, compared by encoding (an empty list and none both go absent).
func roundTrip(t *testing.T, m control.Msg) {
	t.Helper()
	a, b := net.Pipe()
	w, r := control.NewConn(a), control.NewConn(b)
	defer w.Close()
	defer r.Close()
	werr := make(chan error, 1)
	go func() {
		err := w.Write(m)
		if err != nil {
			w.Close() // nothing was sent: end the reader's wait
		}
		werr <- err
	}()
	got, err := r.Read()
	if err != nil {
		if errors.Is(<-werr, control.ErrTooLong) {
			return // refused before sending: the peer would have dropped it
		}
		t.Fatalf("%+v does not read back: %v", m, err)
	}
	if err := <-werr; err != nil {
		t.Fatalf("write %+v: %v", m, err)
	}
	want, _ := json.Marshal(m)
	again, _ := json.Marshal(got)
	if !bytes.Equal(want, again) {
		t.Fatalf("round trip changed the message:\n%s\n%s", want, again)
	}
}
