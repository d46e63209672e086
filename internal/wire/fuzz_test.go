package wire

import (
	"bytes"
	"errors"
	"reflect"
	"strings"
	"testing"
)

// FuzzDecode checks that Decode never panics, that every error is one of
// the sentinels, and that whatever decodes re-encodes to a line that
// decodes to the same message (same encoding).
func FuzzDecode(f *testing.F) {
	for _, b := range allBodies {
		line, err := Encode(Msg{ID: 1, Body: b})
		if err != nil {
			f.Fatal(err)
		}
		f.Add(line)
	}
	for _, s := range []string{
		"", "garbage", "{", "}", "{}", "null", "[]", `"str"`, "{\"v\":1}",
		`{"v":2,"type":"hello","node":"a"}`,
		`{"v":1,"type":"hello","node":"a","streams":[{"stream":"s","parent":"a"}]}`,
		`{"v":1,"type":"hello","node":"a","rtsp":"h:1","willing":true,"capacity":1,"streams":[{"stream":"s","parent":"origin"}]}`,
		`{"v":1,"type":"joined","stream":"s","parent":"p"`,
		`{"v":1,"type":"nope","id":1}`,
		`{"v":1,"type":"report","cpu":1e308,"streams":[{"stream":"s","loss":-0}]}`,
		`{"V":1,"TYPE":"heartbeat","Id":3}`,
		`{"v":1,"type":"heartbeat","id":18446744073709551615}`,
		`{"v":1,"type":"heartbeat","id":18446744073709551616}`,
		"{\"v\":1,\"type\":\"left\",\"stream\":\"\xff\xfe\"}",
		`{"v":1,"type":"left","stream":"s","stream":"t"}`,
		`{"v":1,"type":"candidates","stream":"s","candidates":[{"node":"origin","rtsp":"[::1]:554"}]}`,
		`{"v":1,"type":"heartbeat"}` + strings.Repeat(" ", 100),
		`{"v":1,"type":"error","code":"x","message":"` + strings.Repeat("A", 1000) + `"}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, line []byte) {
		m, err := Decode(line)
		if err != nil {
			for _, s := range []error{ErrMalformed, ErrVersion, ErrUnknownType, ErrInvalid} {
				if errors.Is(err, s) {
					if m.Body != nil {
						t.Fatalf("error %v with a body", err)
					}
					return
				}
			}
			t.Fatalf("error %v is none of the sentinels", err)
		}
		if m.Body == nil || m.V != Version || m.Type != m.Body.Type() {
			t.Fatalf("inconsistent message %#v", m)
		}
		out, err := Encode(m)
		if err != nil {
			t.Fatalf("decoded message does not encode: %v (%#v)", err, m.Body)
		}
		if bytes.ContainsAny(out, "\n\r") {
			t.Fatalf("encoded line has a line break: %q", out)
		}
		m2, err := Decode(out)
		if err != nil {
			t.Fatalf("re-decode %s: %v", out, err)
		}
		// Compare encodings: nil and empty slices both encode as absent.
		out2, err := Encode(m2)
		if err != nil || !bytes.Equal(out, out2) || m.ID != m2.ID || m.Re != m2.Re {
			t.Fatalf("round trip differs:\n%s\n%s (%v)", out, out2, err)
		}
		if reflect.TypeOf(m.Body) != reflect.TypeOf(m2.Body) {
			t.Fatalf("body type changed: %T -> %T", m.Body, m2.Body)
		}
	})
}
