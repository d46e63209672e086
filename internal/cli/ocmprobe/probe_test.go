package ocmprobe

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ocm-overlay/ocm/internal/cli"
	"github.com/ocm-overlay/ocm/internal/probe"
	"github.com/ocm-overlay/ocm/internal/testutil"
	"github.com/ocm-overlay/ocm/internal/wire"
)

const probeTestStream = "rtsp://ms:554/live"

// startProbeResponder runs a responder on 127.0.0.1:0 that answers info,
// with level -1 for streams other than probeTestStream, and records the
// streams asked for.
func startProbeResponder(t *testing.T, info probe.Info) (*probe.Responder, func() []string) {
	t.Helper()
	var mu sync.Mutex
	var asked []string
	r := &probe.Responder{Listen: "127.0.0.1:0", Info: func(s string) probe.Info {
		mu.Lock()
		asked = append(asked, s)
		mu.Unlock()
		out := info
		if s != probeTestStream {
			out.Level = -1
		}
		return out
	}}
	if err := r.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.Close)
	return r, func() []string {
		mu.Lock()
		defer mu.Unlock()
		return append([]string(nil), asked...)
	}
}

// patienceTiny bounds a connection to startTinyRTSP's server.
const patienceTiny = 30 * time.Second

// startTinyRTSP answers every request with a fixed RTSP 200.
func startTinyRTSP(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	testutil.AnswerRTSP(t, ln, patienceTiny)
	return ln.Addr().String()
}

// runProbeCmd runs ocm-probe in-process through Main and returns its exit
// code and output.
func runProbeCmd(t *testing.T, stdin string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	cmd := NewCommand()
	cmd.SetArgs(args)
	cmd.SetIn(strings.NewReader(stdin))
	cmd.SetOut(&out)
	cmd.SetErr(&errb)
	code = cli.Main(cmd)
	t.Logf("ocm-probe %s -> %d\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), code, out.String(), errb.String())
	return code, out.String(), errb.String()
}

// tableRow returns the table line that contains s.
func tableRow(t *testing.T, out, s string) []string {
	t.Helper()
	for _, l := range strings.Split(out, "\n") {
		if strings.Contains(l, s) {
			return strings.Fields(l)
		}
	}
	t.Fatalf("no line with %q in\n%s", s, out)
	return nil
}

func TestProbeCommandTable(t *testing.T) {
	r1, asked := startProbeResponder(t, probe.Info{Node: "n1", Clients: 2, Level: 1, Cores: 8, CPU: 0.25, FreeMem: 3 << 30, Willing: true, FreeCapacity: 3})
	r2, _ := startProbeResponder(t, probe.Info{Node: "n2", Level: 2, Cores: 2, Willing: false})
	dead := testutil.SilentUDP(t)
	code, out, _ := runProbeCmd(t, "", "--timeout", "1s", "--stream", "rtsp://MS/live", r1.Addr(), dead, r2.Addr())
	if code != 0 {
		t.Fatalf("exit %d", code)
	}
	if got := asked(); len(got) != 1 || got[0] != probeTestStream {
		t.Errorf("asked for %q, want the normalised %q", got, probeTestStream)
	}
	row := tableRow(t, out, r1.Addr())
	// PEER VIA RTT NODE CLIENTS LEVEL CORES CPU FREE MEM(2) WILLING FREE-CAP STATUS
	want := []string{r1.Addr(), "udp", "", "n1", "2", "1", "8", "25%", "3.0", "GiB", "yes", "3", "ok"}
	if len(row) != len(want) {
		t.Fatalf("row %q, want %q", row, want)
	}
	for i := range want {
		if want[i] != "" && row[i] != want[i] {
			t.Errorf("column %d = %q, want %q (row %q)", i, row[i], want[i], row)
		}
	}
	if row := tableRow(t, out, r2.Addr()); row[3] != "n2" || row[9] != "no" {
		t.Errorf("n2 row %q", row)
	}
	if row := tableRow(t, out, dead); !strings.Contains(strings.Join(row, " "), "no answer within 1s") {
		t.Errorf("dead row %q", row)
	}
	if lines := strings.Split(strings.TrimSpace(out), "\n"); len(lines) != 4 ||
		!strings.HasPrefix(strings.TrimSpace(lines[0]), "PEER") {
		t.Errorf("want a header and 3 rows in the input order, got\n%s", out)
	}
}

func TestProbeCommandJSON(t *testing.T) {
	r1, _ := startProbeResponder(t, probe.Info{Node: "n1", Clients: 2, Level: 1, Cores: 8, CPU: 0.5, Willing: true, FreeCapacity: 1})
	dead := testutil.SilentUDP(t)
	code, out, _ := runProbeCmd(t, "", "-o", "json", "--timeout", "1s", r1.Addr(), dead)
	if code != 0 {
		t.Fatalf("exit %d", code)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 2 {
		t.Fatalf("%d lines", len(lines))
	}
	var ok, bad map[string]any
	if err := json.Unmarshal([]byte(lines[0]), &ok); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal([]byte(lines[1]), &bad); err != nil {
		t.Fatal(err)
	}
	if ok["peer"] != r1.Addr() || ok["ok"] != true || ok["node"] != "n1" || ok["clients"] != 2.0 ||
		ok["level"] != -1.0 || ok["cpu"] != 0.5 || ok["willing"] != true || ok["free_capacity"] != 1.0 || ok["via"] != "udp" {
		t.Errorf("answered line %s", lines[0])
	}
	if rtt, _ := ok["rtt_ms"].(float64); rtt <= 0 {
		t.Errorf("rtt_ms %v", ok["rtt_ms"])
	}
	if bad["peer"] != dead || bad["ok"] != false || bad["error"] != "no answer within 1s" {
		t.Errorf("unanswered line %s", lines[1])
	}
	if _, has := bad["level"]; has {
		t.Errorf("unanswered line carries metrics: %s", lines[1])
	}
}

func TestProbeCommandStdin(t *testing.T) {
	r1, _ := startProbeResponder(t, probe.Info{Node: "n1", Level: 1, Willing: true, FreeCapacity: 1})
	r2, _ := startProbeResponder(t, probe.Info{Node: "n2", Level: 1, Willing: true, FreeCapacity: 1})
	ms := startTinyRTSP(t)
	stdin := strings.Join([]string{
		`{"addr":"` + r1.Addr() + `"}`,
		`this is not json`,
		``,
		`# a comment`,
		`{"node":"n2","rtsp":"127.0.0.1:5554","probe":"` + r2.Addr() + `","level":1}`,
		`[1,2]`,
		`{"addr":"nohostport"}`,
		`{"node":"n3"}`,
		`{"node":"origin","rtsp":"` + ms + `"}`,
		`{"addr":"` + r1.Addr() + `",`,
	}, "\n")
	code, out, errOut := runProbeCmd(t, stdin, "-o", "json", "--timeout", "1s")
	if code != 0 {
		t.Fatalf("exit %d", code)
	}
	for _, n := range []string{"2", "6", "7", "8", "10"} {
		if !strings.Contains(errOut, "ocm-probe: stdin line "+n+": ") {
			t.Errorf("stderr does not name line %s:\n%s", n, errOut)
		}
	}
	if strings.Count(errOut, "stdin line") != 5 {
		t.Errorf("want 5 bad lines reported:\n%s", errOut)
	}
	var got []string
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		var m struct {
			Node, Via string
			OK        bool
		}
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatal(err)
		}
		got = append(got, m.Node+"/"+m.Via+"/"+map[bool]string{true: "ok", false: "failed"}[m.OK])
	}
	if want := "n1/udp/ok n2/udp/ok origin/rtsp/ok"; strings.Join(got, " ") != want {
		t.Errorf("peers %v, want %s", got, want)
	}
}

func TestProbeCommandExplain(t *testing.T) {
	near, _ := startProbeResponder(t, probe.Info{Node: "near", Clients: 1, Level: 1, Cores: 4, CPU: 0.1, Willing: true, FreeCapacity: 3})
	hot, _ := startProbeResponder(t, probe.Info{Node: "hot", Level: 1, CPU: 0.97, Willing: true, FreeCapacity: 4})
	other, _ := startProbeResponder(t, probe.Info{Node: "elsewhere", Level: -1, Willing: true, FreeCapacity: 4})
	dead := testutil.SilentUDP(t)
	ms := startTinyRTSP(t)
	stdin := `{"node":"elsewhere","probe":"` + other.Addr() + `"}` + "\n"
	// A heavy level weight puts the origin (level 0) first whatever the
	// loopback RTTs; the relay at level 1 comes second.
	args := []string{"--explain", "--stream", probeTestStream, "--timeout", "1s", "--w-level", "1000",
		"--origin", ms, near.Addr(), hot.Addr(), dead, "-"}
	code, out, _ := runProbeCmd(t, stdin, args...)
	if code != 0 {
		t.Fatalf("exit %d", code)
	}
	for _, s := range []string{fmt.Sprintf("score = rtt_ms + %g*path_ms + 20*clients/capacity + 1000*level + 30*cpu_busy", float64(probe.DefaultWPath)), "CPU >= 90%", "level >= 16"} {
		if !strings.Contains(out, s) {
			t.Errorf("no %q in the header", s)
		}
	}
	if row := tableRow(t, out, "WINNER"); row[0] != "1" || row[1] != wire.OriginID || row[3] != "rtsp" {
		t.Errorf("winner row %q", row)
	}
	if row := tableRow(t, out, near.Addr()); row[0] != "2" || row[1] != "near" || row[len(row)-1] != "eligible" ||
		!strings.Contains(strings.Join(row, " "), "1000.00 (1)") || !strings.Contains(strings.Join(row, " "), "3.00 (10%)") {
		t.Errorf("near row %q", row)
	}
	if row := strings.Join(tableRow(t, out, hot.Addr()), " "); !strings.Contains(row, "rejected: CPU 97% busy, max 90%") {
		t.Errorf("hot row %q", row)
	}
	if row := strings.Join(tableRow(t, out, dead), " "); !strings.Contains(row, "rejected: no answer within 1s") {
		t.Errorf("dead row %q", row)
	}
	if row := strings.Join(tableRow(t, out, other.Addr()), " "); !strings.Contains(row, "rejected: does not relay the stream") ||
		!strings.Contains(row, "elsewhere") {
		t.Errorf("stdin row %q", row)
	}
	if !strings.Contains(out, "winner: origin at "+ms) {
		t.Error("no winner line")
	}

	// The same as JSON lines.
	code, out, _ = runProbeCmd(t, stdin, append(args, "-o", "json")...)
	if code != 0 {
		t.Fatalf("exit %d", code)
	}
	type line struct {
		Rank     int
		Winner   bool
		Node     string
		Rejected string
		Terms    *probe.Terms
		Score    *float64
		Used     *struct{ Level, Clients, Capacity int }
	}
	var ls []line
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		var x line
		if err := json.Unmarshal([]byte(l), &x); err != nil {
			t.Fatal(err)
		}
		ls = append(ls, x)
	}
	if len(ls) != 5 {
		t.Fatalf("%d lines, want 5", len(ls))
	}
	if l := ls[0]; !l.Winner || l.Rank != 1 || l.Node != wire.OriginID || l.Terms == nil || l.Score == nil || l.Used.Level != 0 {
		t.Errorf("first line %+v", l)
	}
	if l := ls[1]; l.Winner || l.Rank != 2 || l.Node != "near" || l.Terms.Level != 1000 || l.Used.Clients != 1 || l.Used.Capacity != 4 {
		t.Errorf("second line %+v", l)
	}
	for _, l := range ls[2:] {
		if l.Rank != 0 || l.Winner || l.Rejected == "" {
			t.Errorf("rejected line %+v", l)
		}
	}
	if l := ls[2]; l.Node != "hot" || l.Terms == nil || math.Abs(l.Terms.CPU-30*0.97) > 1e-9 {
		t.Errorf("rejected but answered line %+v", l)
	}
	if l := ls[3]; l.Node != "" || l.Terms != nil || l.Score != nil || l.Used != nil {
		t.Errorf("unanswered line has a score: %+v", l)
	}
}

func TestProbeCommandNoEligible(t *testing.T) {
	r, _ := startProbeResponder(t, probe.Info{Node: "n1", Level: 1, Willing: false})
	code, out, _ := runProbeCmd(t, "", "--explain", "--stream", probeTestStream, "--timeout", "1s", r.Addr())
	if code != 0 {
		t.Errorf("exit %d: a peer answered", code)
	}
	if !strings.Contains(out, "no eligible candidate") || !strings.Contains(out, "rejected: not willing") {
		t.Error("no 'no eligible candidate' line")
	}
}

// TestProbeCommandExplainLastResort: when every peer is over the CPU
// ceiling a relay still takes the best of them (a busy parent beats no
// video), so --explain names that winner instead of saying a relay would
// find no parent.
func TestProbeCommandExplainLastResort(t *testing.T) {
	hot, _ := startProbeResponder(t, probe.Info{Node: "hot", Level: 1, CPU: 0.95, Willing: true, FreeCapacity: 4})
	hotter, _ := startProbeResponder(t, probe.Info{Node: "hotter", Level: 1, CPU: 0.97, Willing: true, FreeCapacity: 4})
	full, _ := startProbeResponder(t, probe.Info{Node: "full", Level: 1, CPU: 0.1, Willing: true, FreeCapacity: 0})
	// hotter sits deeper in the server's tree, so the order does not
	// hang on loopback RTTs.
	stdin := `{"node":"hot","probe":"` + hot.Addr() + `","level":1,"capacity":4}` + "\n" +
		`{"node":"hotter","probe":"` + hotter.Addr() + `","level":3,"capacity":4}` + "\n" +
		`{"node":"full","probe":"` + full.Addr() + `","level":1,"clients":4,"capacity":4}` + "\n"
	code, out, _ := runProbeCmd(t, stdin, "--explain", "--stream", probeTestStream, "--timeout", "1s")
	if code != 0 {
		t.Fatalf("exit %d", code)
	}
	if strings.Contains(out, "would find no parent") {
		t.Error("--explain says a relay would find no parent; a relay takes the best busy one")
	}
	if row := strings.Join(tableRow(t, out, "WINNER"), " "); !strings.HasPrefix(row, "1 hot ") ||
		!strings.Contains(row, "last resort: CPU 95% busy, max 90%") {
		t.Errorf("winner row %q, want hot as a last resort", row)
	}
	if row := tableRow(t, out, hotter.Addr()); row[0] != "2" {
		t.Errorf("hotter row %q, want rank 2", row)
	}
	if row := strings.Join(tableRow(t, out, full.Addr()), " "); !strings.Contains(row, "rejected: no free capacity") {
		t.Errorf("full row %q", row)
	}
	if !strings.Contains(out, "winner: hot at ") {
		t.Error("no winner line")
	}
}

// TestProbeCommandExplainPrefer: a relay going back under its old parent
// after an ancestor failed takes it whenever it is eligible, even when
// another candidate scores better; --prefer ranks the same way.
func TestProbeCommandExplainPrefer(t *testing.T) {
	near, _ := startProbeResponder(t, probe.Info{Node: "near", Level: 1, CPU: 0.1, Willing: true, FreeCapacity: 4})
	old, _ := startProbeResponder(t, probe.Info{Node: "old", Level: 1, CPU: 0.1, Willing: true, FreeCapacity: 4})
	stdin := `{"node":"near","probe":"` + near.Addr() + `","level":1,"capacity":4}` + "\n" +
		`{"node":"old","probe":"` + old.Addr() + `","level":5,"capacity":4}` + "\n"
	args := []string{"--explain", "--stream", probeTestStream, "--timeout", "1s", "--w-level", "1000"}
	_, out, _ := runProbeCmd(t, stdin, args...)
	if row := tableRow(t, out, "WINNER"); row[1] != "near" {
		t.Errorf("without --prefer the winner is %q, want near", row)
	}
	code, out, _ := runProbeCmd(t, stdin, append(args, "--prefer", "old")...)
	if code != 0 {
		t.Fatalf("exit %d", code)
	}
	if row := strings.Join(tableRow(t, out, "WINNER"), " "); !strings.HasPrefix(row, "1 old ") || !strings.Contains(row, "(old parent)") {
		t.Errorf("winner row %q, want old as the old parent", row)
	}
	if row := tableRow(t, out, near.Addr()); row[0] != "2" {
		t.Errorf("near row %q, want rank 2", row)
	}
	code, _, errOut := runProbeCmd(t, stdin, "--prefer", "old")
	if code != 1 || !strings.Contains(errOut, "--prefer only changes the ranking of --explain") {
		t.Errorf("--prefer without --explain: exit %d, stderr %q", code, errOut)
	}
}

func TestProbeCommandNobodyAnswers(t *testing.T) {
	dead := testutil.SilentUDP(t)
	code, out, errOut := runProbeCmd(t, "", "--timeout", "100ms", dead)
	if code != 1 {
		t.Errorf("exit %d, want 1", code)
	}
	if !strings.Contains(out, "no answer within 100ms") {
		t.Error("the unreachable peer is not listed")
	}
	if !strings.Contains(errOut, "ocm-probe: no peer answered within 100ms (1 probed)") {
		t.Errorf("stderr %q", errOut)
	}
}

func TestProbeCommandErrors(t *testing.T) {
	tests := []struct {
		name  string
		stdin string
		args  []string
		want  string
	}{
		{"explain without stream", "", []string{"--explain", "127.0.0.1:1"}, "--explain needs --stream"},
		{"bad output", "", []string{"-o", "yaml", "127.0.0.1:1"}, `--output "yaml"`},
		{"bad peer", "", []string{"localhost"}, `"localhost" is not HOST:PORT`},
		{"bad port", "", []string{"localhost:0"}, `bad port`},
		{"bad origin", "", []string{"--origin", "ms"}, `--origin: "ms" is not HOST:PORT`},
		{"bad stream", "", []string{"--stream", "http://x/y", "127.0.0.1:1"}, "--stream: "},
		{"bad max-cpu", "", []string{"--max-cpu", "0", "127.0.0.1:1"}, "--max-cpu"},
		{"bad timeout", "", []string{"--timeout", "0s", "127.0.0.1:1"}, "--timeout"},
		{"nothing to probe", "\n# nothing\n", nil, "no peers to probe"},
		{"only garbage", "junk\n", nil, "no peers to probe"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, _, errOut := runProbeCmd(t, tt.stdin, tt.args...)
			if code != 1 || !strings.Contains(errOut, tt.want) {
				t.Errorf("exit %d, stderr %q; want 1 and %q", code, errOut, tt.want)
			}
		})
	}
}

func TestProbeReadLongLine(t *testing.T) {
	o := &probeOptions{originCapacity: 4}
	var bad []int
	in := `{"addr":"127.0.0.1:1"}` + "\n" + strings.Repeat("x", probeMaxLine+10) + "\n" + `{"node":"origin","addr":"ms:554"}`
	peers := o.readPeers(strings.NewReader(in), func(n int, err error) { bad = append(bad, n) })
	if len(bad) != 1 || bad[0] != 2 {
		t.Errorf("bad lines %v, want [2]", bad)
	}
	if len(peers) != 2 || peers[0].Probe != "127.0.0.1:1" || peers[1].RTSP != "ms:554" || peers[1].Capacity != 4 {
		t.Errorf("peers %+v", peers)
	}
}

func TestProbeBytes(t *testing.T) {
	for n, want := range map[uint64]string{0: "-", 512: "512 B", 1536: "1.5 KiB", 3 << 30: "3.0 GiB", 5 << 40: "5.0 TiB"} {
		if got := cli.Bytes(n); got != want {
			t.Errorf("cli.Bytes(%d) = %q, want %q", n, got, want)
		}
	}
}

// TestProbeCommandExplainPath: a candidate's path from the origin, as
// ocm-server offers it (path_ms on a stdin line), is a score term shown
// next to the RTT: weighed (--w-path 1), a shallower relay whose stream
// comes from far away loses to a deeper one on a short path. A negative
// path is refused.
func TestProbeCommandExplainPath(t *testing.T) {
	shallow, _ := startProbeResponder(t, probe.Info{Node: "shallow", Level: 1, Willing: true, FreeCapacity: 4})
	deep, _ := startProbeResponder(t, probe.Info{Node: "deep", Level: 2, Willing: true, FreeCapacity: 4})
	stdin := `{"node":"shallow","probe":"` + shallow.Addr() + `","level":1,"capacity":4,"path_ms":100}` + "\n" +
		`{"node":"deep","probe":"` + deep.Addr() + `","level":2,"capacity":4}` + "\n" +
		`{"node":"bad","probe":"` + deep.Addr() + `","path_ms":-1}` + "\n"
	code, out, errOut := runProbeCmd(t, stdin, "--explain", "--stream", probeTestStream, "--timeout", "1s", "--w-path", "1", "-")
	if code != 0 {
		t.Fatalf("exit %d", code)
	}
	t.Log(out)
	if !strings.Contains(out, "score = rtt_ms + 1*path_ms + ") || !strings.Contains(out, "PATH") {
		t.Errorf("no path term in the header:\n%s", out)
	}
	if row := tableRow(t, out, "WINNER"); row[1] != "deep" {
		t.Errorf("winner row %q, want deep (shallow's path is 100 ms)", row)
	}
	if row := strings.Join(tableRow(t, out, shallow.Addr()), " "); !strings.Contains(row, "100.00 (100.0 ms)") {
		t.Errorf("shallow row %q lacks its path term", row)
	}
	if !strings.Contains(errOut, "stdin line 3: ") || !strings.Contains(errOut, "path_ms -1 is outside") {
		t.Errorf("negative path_ms not refused on stderr:\n%s", errOut)
	}

	code, out, _ = runProbeCmd(t, stdin, "--explain", "--stream", probeTestStream, "--timeout", "1s", "--w-path", "1", "-o", "json", "-")
	if code != 0 {
		t.Fatalf("exit %d", code)
	}
	var first struct {
		Node  string
		Terms probe.Terms
	}
	if err := json.Unmarshal([]byte(strings.Split(out, "\n")[1]), &first); err != nil {
		t.Fatal(err)
	}
	if first.Node != "shallow" || first.Terms.Path != 100 {
		t.Errorf("second line %+v, want shallow with its path term 100", first)
	}
}

// A full candidate offered for displacement (displace_ms) that this host
// is close enough to is ranked eligible, as ocm-relay (willing) ranks
// it; with --displace=false, as a passive relay, it is full.
func TestProbeCommandExplainDisplace(t *testing.T) {
	full, _ := startProbeResponder(t, probe.Info{Node: "full", Level: 1, Willing: true, FreeCapacity: 0})
	stdin := `{"node":"full","probe":"` + full.Addr() + `","level":1,"clients":4,"capacity":4,"displace_ms":1000}` + "\n"
	code, out, _ := runProbeCmd(t, stdin, "--explain", "--stream", probeTestStream, "--timeout", "1s", "-")
	if code != 0 {
		t.Fatalf("exit %d", code)
	}
	t.Log(out)
	if row := tableRow(t, out, "WINNER"); row[1] != "full" {
		t.Errorf("winner row %q, want full (this host may displace its farthest child)", row)
	}
	code, out, _ = runProbeCmd(t, stdin, "--explain", "--stream", probeTestStream, "--timeout", "1s", "--displace=false", "-")
	t.Log(out)
	if !strings.Contains(out, "no free capacity") {
		t.Errorf("with --displace=false the full candidate is not refused for its capacity (exit %d):\n%s", code, out)
	}
}
