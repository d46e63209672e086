package rtpfanout

import (
	"bytes"
	"log/slog"
	"net/netip"
	"strings"
	"testing"

	"github.com/ocm-overlay/ocm/internal/event"
	"github.com/ocm-overlay/ocm/internal/fanout"
	"github.com/ocm-overlay/ocm/internal/testutil"
)

// FuzzFanoutStdin feeds rtp-fanout's standard input to its command
// reader and a running fanout (no input traffic, every host name is
// 127.0.0.1: nothing is sent or looked up): never a panic, and exactly one
// JSON reply line per command line, an over-long one included. The line
// limit is fuzzLine rather than 64 KiB, so small inputs reach it.
func FuzzFanoutStdin(f *testing.F) {
	const fuzzLine = 128
	for _, s := range []string{
		`{"op":"add","to":"udp://127.0.0.1:5004"}` + "\n" + `{"op":"list"}` + "\n",
		`{"op":"add","to":"udp://h:5004","id":1}` + "\r\n" + `{"op":"remove","to":"udp://h:5004"}`,
		"  \n\t\n" + `{"op":"stats"}` + "   ",
		`{"op":"add","to":"udp://127.0.0.2:1"}` + "\n" + `{"op":"add","to":"udp://127.0.0.3:1"}` + "\n" +
			`{"op":"add","to":"udp://127.0.0.4:1"}` + "\n",
		"not json\n{\n}\n", "", "\n", "\x00\xff\n",
		strings.Repeat("x", fuzzLine+10) + "\n" + `{"op":"list"}`,
		strings.Repeat("y", fuzzLine),
		strings.Repeat("z", fuzzLine+1),
		strings.Repeat(" ", fuzzLine) + "\n" + strings.Repeat(" ", fuzzLine+1) + "\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		fo := &fanout.Fanout{From: "udp://127.0.0.1:0?rtcp=0", MaxDestinations: 2,
			LookupHost: func(string) (netip.Addr, error) { return netip.MustParseAddr("127.0.0.1"), nil }}
		if err := fo.Start(); err != nil {
			t.Fatal(err)
		}
		defer fo.Close()
		var out testutil.Buffer
		readControl(bytes.NewReader(data), fuzzLine, fo, event.NewWriter(&out), slog.New(slog.DiscardHandler))

		want := 0 // a reply for a command, or an error for an over-long line
		for line := range bytes.SplitSeq(data, []byte("\n")) {
			if len(line) > fuzzLine || len(bytes.TrimSpace(line)) > 0 {
				want++
			}
		}
		got := testutil.Find[event.Reply](t, &out)
		if len(got) != want {
			t.Fatalf("%d replies to %d command lines", len(got), want)
		}
		for _, r := range got {
			if r.OK == (r.Error != "") {
				t.Fatalf("reply %+v", r)
			}
		}
	})
}
