package ocmprobe

import (
	"bytes"
	"testing"

	"github.com/ocm-overlay/ocm/internal/cli"
)

// FuzzProbePeers feeds ocm-probe's standard input to its peer reader:
// never a panic; each line is a peer or a reported error; every peer has
// an address to probe that is HOST:PORT.
func FuzzProbePeers(f *testing.F) {
	for _, s := range []string{
		`{"addr":"peer.example:1"}` + "\n" + `{"node":"origin","rtsp":"ms.example:2"}`,
		`{"node":"n1","probe":"h:1","rtsp":"h:2","level":3,"capacity":4}`,
		`{"addr":"h:1","probe":"h:2"}`, `{"node":"origin"}`, `{"addr":"h"}`, `{"addr":"h:0"}`,
		"# comment\n\n  \n[1]\n{\n", `{"addr":"[::1]:1","rtsp":"[::1]"}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		o := &probeOptions{originCapacity: 3}
		bad := 0
		peers := o.readPeers(bytes.NewReader(data), func(int, error) { bad++ })
		lines := bytes.Count(data, []byte("\n")) + 1
		if len(peers)+bad > lines {
			t.Fatalf("%d peers and %d errors from %d lines", len(peers), bad, lines)
		}
		for _, p := range peers {
			if p.Probe == "" && p.RTSP == "" {
				t.Fatalf("peer without an address: %+v", p)
			}
			for _, a := range []string{p.Probe, p.RTSP} {
				if a != "" && cli.CheckHostPort(a) != nil {
					t.Fatalf("peer %+v: %v", p, cli.CheckHostPort(a))
				}
			}
		}
	})
}
