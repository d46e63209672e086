package systest

import (
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
// README.md: one a line, comments and blank lines left out.
func readmeBlock(t *testing.T, heading string) []string {
	t.Helper()
	m := readmeMatch(t, `(?s)\n`+regexp.QuoteMeta(heading)+"\n.*?```sh\n(.*?)```")
	var cmds []string
	for _, l := range strings.Split(m[1], "\n") {
		if i := strings.Index(l, "#"); i >= 0 {
			l = l[:i]
		}
		if l = strings.TrimSpace(l); l != "" {
			cmds = append(cmds, l)
		}
	}
	return cmds
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
	systemTest(t)
	netnstest.Need(t)
	require(t, "ffprobe")
	cmds := readmeBlock(t, "### LAN multicast")
	l := netnstest.NewLAN(t, 4)
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
			t.Errorf("%d packets of the %s group arrived with a TTL other than 1 (last %d)", g.BadTTL.Load(), name, g.TTL.Load())
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
