package systest

import (
	"encoding/json"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ocm-overlay/ocm/internal/allow"
	"github.com/ocm-overlay/ocm/internal/api"
	"github.com/ocm-overlay/ocm/internal/lab"
	"github.com/ocm-overlay/ocm/internal/netnstest"
	"github.com/ocm-overlay/ocm/internal/testutil"
)

// readmeMatch returns the submatches of re in the repository's README.md,
// failing t when the README has no such line: the README's recipes are what
// these tests run.
func readmeMatch(t *testing.T, re string) []string {
	t.Helper()
	b, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(re).FindStringSubmatch(string(b))
	if m == nil {
		t.Fatalf("README.md has no line matching %s", re)
	}
	return m
}

// mpvFrame is mpv's status line as the test asks for it.
var mpvFrame = regexp.MustCompile(`frame=(\d+)`)

// TestReadmeMPV plays the README's "watch with mpv" line through a relay:
// its flags as written, only the URL the test's own, plus what runs it
// without a display (no config, null video and audio outputs, 50 frames,
// a status line with the frame number).
func TestReadmeMPV(t *testing.T) {
	systemTest(t)
	mpv := testutil.RequireTool(t, "mpv")
	m := readmeMatch(t, `(?m)^mpv ([^'\n]*)'(rtsp://[^']+)'$`)
	flags := strings.Fields(m[1])
	t.Logf("README: mpv %s'%s'", m[1], m[2])

	origin := startMediator(t, "origin", "--test-source", "test")
	relay := startMediator(t, "relay")
	url := lab.Enhanced(relay.Addr, "test", origin.Addr)
	args := append([]string{"--no-config", "--vo=null", "--ao=null", "--frames=50",
		"--term-status-msg=frame=${estimated-frame-number}\n"}, flags...)
	out, errOut, err := run(t, mpv, append(args, url)...)
	t.Logf("mpv %s %s: %v\n%s", strings.Join(args, " "), url, err, lab.Tail(out, 10))
	if err != nil {
		t.Fatalf("mpv %s: %v\n%s\n%s", url, err, lab.Tail(out, 20), lab.Tail(errOut, 20))
	}
	if !strings.Contains(out, "VO: [null] 640x360") {
		t.Errorf("mpv opened no 640x360 video output:\n%s", lab.Tail(out, 20))
	}
	if !strings.Contains(out, "Exiting... (End of file)") {
		t.Errorf("mpv did not end normally:\n%s", lab.Tail(out, 20))
	}
	all := mpvFrame.FindAllStringSubmatch(errOut, -1)
	if len(all) == 0 {
		t.Fatalf("mpv printed no frame number:\n%s", lab.Tail(errOut, 20))
	}
	n, _ := strconv.Atoi(all[len(all)-1][1])
	t.Logf("mpv showed frames up to %d", n)
	if n+1 < minFrames {
		t.Errorf("mpv showed %d frames, want at least %d", n+1, minFrames)
	}
}

// readmeBlock returns the commands of the first sh block after heading in
// README.md: one a line, comments and blank lines left out, except the
// comment lines (which say where the commands below them run).
func readmeBlock(t *testing.T, heading string) []string {
	t.Helper()
	m := readmeMatch(t, `(?s)\n`+regexp.QuoteMeta(heading)+"\n.*?```sh\n(.*?)```")
	var cmds []string
	for _, l := range strings.Split(m[1], "\n") {
		if i := strings.Index(l, "#"); i > 0 {
			l = l[:i]
		}
		if l = strings.TrimSpace(l); l != "" {
			cmds = append(cmds, l)
		}
	}
	return cmds
}

// readmeLab starts a test of the README block under heading on a LAN of
// n network namespaces (root; the players are ffprobe).
func readmeLab(t *testing.T, heading string, n int) ([]string, *netnstest.LAN) {
	t.Helper()
	systemTest(t)
	netnstest.Need(t)
	require(t, "ffprobe")
	return readmeBlock(t, heading), netnstest.NewLAN(t, n)
}

// startShell runs line, as a user types it (a trailing & dropped: the test
// runs it in the background), with bash in namespace ns and directory dir,
// the tools first on PATH; it waits for the tool's ready line.
func startShell(t *testing.T, name, ns, dir, line string) *proc {
	t.Helper()
	line = strings.TrimSpace(strings.TrimSuffix(line, "&"))
	p, err := lab.StartWith(t, lab.Options{Env: []string{"PATH=" + filepath.Dir(tool("rtsp-mediator")) + ":" + os.Getenv("PATH")}},
		name, "ip", "netns", "exec", ns, "bash", "-c", "cd "+dir+" && exec "+line)
	if err != nil {
		t.Fatal(err)
	}
	waitLine(t, p, `"event":"ready"`)
	return p
}

// waitLine waits for a line of p's stdout holding s.
func waitLine(t *testing.T, p *proc, s string) {
	t.Helper()
	deadline := time.Now().Add(patience)
	for time.Now().Before(deadline) {
		for _, l := range p.Lines() {
			if strings.Contains(l, s) {
				return
			}
		}
		if p.Exited() {
			t.Fatalf("%s exited (%v) before printing %s:\n%s", p.Name, p.Err(), s, p.StderrTail())
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("%s printed no %s within %v:\n%s", p.Name, s, patience, p.StderrTail())
}

// TestReadmeLANMulticast runs the README's "LAN multicast" block as
// written on a LAN of four network namespaces: the tools on host a (HOST
// and the unicast host 10.0.0.7 of the block become a's and c's addresses),
// each ffplay line as ffprobe with the same options on host b, which must
// decode the video; host c gets rtp-fanout's unicast copy, and host d,
// listening to both groups, sees their packets arrive with TTL 1.
func TestReadmeLANMulticast(t *testing.T) {
	cmds, l := readmeLab(t, "### LAN multicast", 4)
	a, b, c, d := l.Hosts[0], l.Hosts[1], l.Hosts[2], l.Hosts[3]
	dir := t.TempDir()

	// The groups the block names, watched from host d.
	block := strings.Join(cmds, "\n")
	rng := regexp.MustCompile(`--multicast-range (\S+)`).FindStringSubmatch(block)
	fan := regexp.MustCompile(`--to udp://(239\.[\d.]+:\d+)`).FindStringSubmatch(block)
	if rng == nil || fan == nil {
		t.Fatalf("the block names no --multicast-range or no multicast --to:\n%s", block)
	}
	first := netip.MustParsePrefix(rng[1]).Masked().Addr().Next() // the mediator's first group
	groups := map[string]*netnstest.GroupReceiver{
		"mediator": netnstest.JoinGroup(t, d, netip.AddrPortFrom(first, 8002), 1), // --multicast-rtp's default
		"fanout":   netnstest.JoinGroup(t, d, netip.MustParseAddrPort(fan[1]), 1),
	}
	// Host c stands for the block's unicast host.
	var uc *net.UDPConn
	var err error
	netnstest.InNetns(t, c.NS, func() { uc, err = net.ListenUDP("udp4", &net.UDPAddr{IP: c.IP.AsSlice(), Port: 5004}) })
	if err != nil {
		t.Fatal(err)
	}
	var unicast atomic.Int64
	go func() {
		buf := make([]byte, 2048)
		for {
			if _, err := uc.Read(buf); err != nil {
				return
			}
			unicast.Add(1)
		}
	}()
	t.Cleanup(func() { uc.Close() })

	for i, line := range cmds {
		if strings.HasPrefix(line, "#") {
			continue
		}
		line = strings.NewReplacer("HOST", a.IP.String(), "10.0.0.7", c.IP.String()).Replace(line)
		t.Logf("$ %s", line)
		player, found := strings.CutPrefix(line, "ffplay ")
		if !found {
			startShell(t, fmt.Sprintf("cmd%d", i), a.NS, dir, line)
			continue
		}
		args := strings.Fields(player)
		input := args[len(args)-1]
		if strings.HasSuffix(input, ".sdp") {
			args[len(args)-1] = filepath.Join(dir, input)
			waitFile(t, args[len(args)-1])
		}
		streams, err := probeInput(t, b.NS, input, "%+3", append([]string{"-select_streams", "v:0"}, args...)...)
		if err != nil {
			t.Fatal(err)
		}
		if len(streams) != 1 {
			t.Fatalf("ffprobe %s on host b: %d video streams, want 1", input, len(streams))
		}
		s := streams[0]
		decoded{codec: s.CodecName, width: s.Width, height: s.Height, frames: s.frames()}.
			check(t, "ffprobe "+strings.Join(args, " ")+" on host b", 640, 360)
	}
	for name, g := range groups {
		t.Logf("host d saw %d packets of the %s group, TTL %d", g.Packets.Load(), name, g.TTL.Load())
		if g.Packets.Load() == 0 {
			t.Errorf("no packet of the %s group reached host d", name)
		}
		if g.BadTTL.Load() != 0 {
			t.Errorf("%d packets of the %s group arrived with a TTL above 1 (the last of them %d)", g.BadTTL.Load(), name, g.WorstTTL.Load())
		}
	}
	t.Logf("host c received %d unicast packets", unicast.Load())
	if unicast.Load() == 0 {
		t.Error("rtp-fanout's unicast output sent nothing to host c")
	}
}

// waitFile waits for a file to exist.
func waitFile(t *testing.T, path string) {
	t.Helper()
	deadline := time.Now().Add(patience)
	for {
		if _, err := os.Stat(path); err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not written within %v", path, patience)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestReadmeOverlay runs the README's "A viewer host in the overlay" block
// as written on two network namespaces joined by a bridge, each with a
// public address (one the default --allow-origin "public" accepts; no
// route leaves the namespaces): the origin's host is ms.example.org in
// both namespaces' hosts files, and the viewer host's address replaces
// 192.0.2.10. The ffplay line runs with ffplay standing for ffprobe; the
// player must decode the stream and the server's tree must have the relay.
func TestReadmeOverlay(t *testing.T) {
	cmds, l := readmeLab(t, "### A viewer host in the overlay", 2)
	origin, viewer := l.Hosts[0], l.Hosts[1]
	const originIP, viewerIP = "11.77.0.1", "11.77.0.2"
	for _, ip := range []string{originIP, viewerIP} {
		if _, err := allow.Default(":0").Check(t.Context(), ip); err != nil {
			t.Fatalf("%s is not a public address to the default allow list: %v", ip, err)
		}
	}
	netnstest.IP(t, "-n", origin.NS, "addr", "add", originIP+"/24", "dev", origin.Dev)
	netnstest.IP(t, "-n", viewer.NS, "addr", "add", viewerIP+"/24", "dev", viewer.Dev)
	for _, h := range l.Hosts {
		etc := filepath.Join("/etc/netns", h.NS)
		if err := os.MkdirAll(etc, 0o755); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.RemoveAll(etc) })
		hosts := "127.0.0.1 localhost\n::1 localhost\n" + originIP + " ms.example.org\n"
		if err := os.WriteFile(filepath.Join(etc, "hosts"), []byte(hosts), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	dir := t.TempDir()

	ns := ""
	var server *proc
	var played []probedStream
	for i, line := range cmds {
		switch {
		case strings.HasPrefix(line, "# on the origin's host"):
			ns = origin.NS
			continue
		case strings.HasPrefix(line, "# on each viewer host"):
			ns = viewer.NS
			continue
		case strings.HasPrefix(line, "#"):
			continue
		case ns == "":
			t.Fatalf("README: %q comes before a comment saying which host it runs on", line)
		}
		line = strings.ReplaceAll(line, "192.0.2.10", viewerIP)
		t.Logf("$ %s   (on %s)", line, ns)
		if !strings.HasPrefix(line, "ffplay ") {
			p := startShell(t, fmt.Sprintf("cmd%d", i), ns, dir, line)
			if strings.HasPrefix(line, "ocm-server ") {
				server = p
			}
			continue
		}
		if server == nil {
			t.Fatal("README: the block starts no ocm-server")
		}
		// The player, while the tree is read from the server's host.
		type result struct {
			streams []probedStream
			err     error
		}
		res := make(chan result, 1)
		go func() {
			script := "export PATH=" + filepath.Dir(tool("ocm-ctl")) + ":$PATH; cd " + dir +
				"; ffplay() { " + strings.Join(probeCommand("%+3"), " ") + ` -select_streams v:0 "$@"; }; ` + line
			out, errOut, err := run(t, "ip", "netns", "exec", ns, "bash", "-c", script)
			s, err := probeResult(line, out, errOut, err)
			res <- result{s, err}
		}()
		relayTree(t, origin.NS, "rtsp://ms.example.org:8554/live")
		r := <-res
		if r.err != nil {
			t.Fatal(r.err)
		}
		played = r.streams
	}
	if len(played) != 1 {
		t.Fatalf("the player found %d video streams, want 1", len(played))
	}
	s := played[0]
	decoded{codec: s.CodecName, width: s.Width, height: s.Height, frames: s.frames()}.check(t, "ffplay (ffprobe) on the viewer host", 640, 360)
}

// relayTree waits until the stream's tree, read with ocm-ctl on the
// server's host (namespace ns), has one relay attached under the origin.
func relayTree(t *testing.T, ns, stream string) {
	t.Helper()
	deadline := time.Now().Add(patience)
	var last string
	for time.Now().Before(deadline) {
		out, errOut, err := run(t, "ip", "netns", "exec", ns, tool("ocm-ctl"), "tree", stream, "-o", "json")
		if err != nil {
			last = fmt.Sprintf("%v %s", err, errOut)
		} else {
			var tr api.Tree
			if err := json.Unmarshal([]byte(out), &tr); err != nil {
				t.Fatalf("ocm-ctl tree -o json: %v\n%s", err, out)
			}
			last = out
			if len(tr.Nodes) == 1 && tr.Nodes[0].Attached && tr.Nodes[0].Parent == "origin" {
				t.Logf("the server's tree: relay %s under the origin", tr.Nodes[0].Node)
				return
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Errorf("the server's tree of %s never had one relay under the origin; last:\n%s", stream, last)
}
