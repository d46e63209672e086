package wire_test

import (
	"strings"
	"testing"

	"github.com/ocm-overlay/ocm/internal/wire"
	"github.com/ocm-overlay/ocm/internal/wire/wiretest"
)

// FuzzDecode checks that Decode never panics, that every error is one of
// the sentinels, and that whatever decodes re-encodes to a line that
// decodes to the same message (same encoding): wiretest.CheckLine, run on
// every link.
func FuzzDecode(f *testing.F) {
	for _, b := range wire.AllBodies {
		line, err := wire.Encode(wire.Msg{ID: 1, Body: b})
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
	f.Fuzz(func(t *testing.T, line []byte) { wiretest.CheckLine(t, wire.Server, line) })
}
