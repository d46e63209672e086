package systest

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// demoPorts is how many ports scripts/demo.sh uses from DEMO_BASE_PORT up.
const demoPorts = 36

// freeDemoBase finds a DEMO_BASE_PORT whose whole range is free, over TCP
// and UDP, by binding each port of it (then letting go).
func freeDemoBase(t *testing.T) int {
	t.Helper()
	for range 50 {
		base := 20000 + rand.IntN(30000)
		if rangeFree(base, demoPorts) {
			return base
		}
	}
	t.Fatal("no free range of ports for the demo")
	return 0
}

func rangeFree(base, n int) bool {
	var closers []io.Closer
	defer func() {
		for _, c := range closers {
			c.Close()
		}
	}()
	for p := base; p < base+n; p++ {
		addr := "127.0.0.1:" + strconv.Itoa(p)
		l, err := net.Listen("tcp", addr)
		if err != nil {
			return false
		}
		closers = append(closers, l)
		u, err := net.ListenPacket("udp", addr)
		if err != nil {
			return false
		}
		closers = append(closers, u)
	}
	return true
}

// demo is scripts/demo.sh running in its own process group, its stdout
// collected line by line.
type demo struct {
	cmd   *exec.Cmd
	log   string
	mu    sync.Mutex
	out   strings.Builder
	done  chan struct{}
	err   error
	ended bool
}

func startDemo(t *testing.T, base int, seconds string) *demo {
	t.Helper()
	d := &demo{log: t.TempDir(), done: make(chan struct{})}
	d.cmd = exec.Command("bash", "../scripts/demo.sh", "--log", d.log)
	d.cmd.Env = append(os.Environ(), "DEMO_BASE_PORT="+strconv.Itoa(base), "DEMO_SECONDS="+seconds,
		"BIN="+filepath.Dir(tool("ocm-ctl")))
	d.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	pr, pw := io.Pipe()
	d.cmd.Stdout = pw
	d.cmd.Stderr = pw
	if err := d.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			d.mu.Lock()
			d.out.WriteString(sc.Text() + "\n")
			d.mu.Unlock()
		}
	}()
	go func() {
		d.err = d.cmd.Wait()
		pw.Close()
		close(d.done)
	}()
	t.Cleanup(func() {
		// Whatever happened, nothing of the demo outlives the test.
		syscall.Kill(-d.cmd.Process.Pid, syscall.SIGKILL)
		<-d.done
		if t.Failed() {
			t.Logf("demo output:\n%s", d.output())
		}
	})
	return d
}

func (d *demo) output() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.out.String()
}

// waitFor waits until the output has a line containing s.
func (d *demo) waitFor(t *testing.T, s string, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !strings.Contains(d.output(), s) {
		select {
		case <-d.done:
			t.Fatalf("demo exited (%v) before saying %q", d.err, s)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("demo did not say %q within %v", s, within)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// wait waits for the demo to exit and checks that no process of its group
// is left.
func (d *demo) wait(t *testing.T, within time.Duration) error {
	t.Helper()
	select {
	case <-d.done:
	case <-time.After(within):
		t.Fatalf("demo still running %v after being told to stop", within)
	}
	pgid := d.cmd.Process.Pid
	deadline := time.Now().Add(2 * time.Second)
	for {
		err := syscall.Kill(-pgid, 0)
		if errors.Is(err, syscall.ESRCH) {
			break
		}
		if time.Now().After(deadline) {
			out, _ := exec.Command("pgrep", "-a", "-g", strconv.Itoa(pgid)).Output()
			t.Fatalf("processes of the demo left after it exited:\n%s", out)
		}
		time.Sleep(50 * time.Millisecond)
	}
	return d.err
}

var treeRow = regexp.MustCompile("(?m)^[|`\\- ]*((?:active|passive)[0-9])\\s+([0-9]+)\\s")

// levels maps each node of a printed tree to its level.
func levels(tree string) map[string]int { return matchCounts(treeRow, tree, 1, 2) }

// matchCounts maps, for every match of re in s, the submatch key to the
// number in the submatch val.
func matchCounts(re *regexp.Regexp, s string, key, val int) map[string]int {
	m := map[string]int{}
	for _, sub := range re.FindAllStringSubmatch(s, -1) {
		n, _ := strconv.Atoi(sub[val])
		m[sub[key]] = n
	}
	return m
}

// lastPackets is the packet count of a demo player's last line.
func lastPackets(t *testing.T, file string) int {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`"packets":([0-9]+)`).FindAllSubmatch(b, -1)
	if len(m) == 0 {
		return 0
	}
	n, _ := strconv.Atoi(string(m[len(m)-1][1]))
	return n
}

// TestDemo runs make demo's script as a user would: the paper's tree shape
// with a plain and a passive client beside it, every player receiving, the
// player hint playable as printed, Ctrl-C leaving no process behind.
func TestDemo(t *testing.T) {
	systemTest(t)
	require(t, "ffprobe", "ffmpeg")
	base := freeDemoBase(t)
	d := startDemo(t, base, "120")
	d.waitFor(t, "demo: running", 90*time.Second)
	out := d.output()

	if first := strings.SplitN(out, "\n", 2)[0]; !strings.Contains(first, fmt.Sprintf("http://127.0.0.1:%d/", base+11)) {
		t.Errorf("first line is not the monitor URL: %q", first)
	}
	// The monitor URL it printed first serves the monitor page.
	if res, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/", base+11)); err != nil {
		t.Errorf("monitor: %v", err)
	} else {
		res.Body.Close()
		if res.StatusCode != http.StatusOK || !strings.HasPrefix(res.Header.Get("Content-Type"), "text/html") {
			t.Errorf("monitor answered %s, %q", res.Status, res.Header.Get("Content-Type"))
		}
	}
	for _, kind := range []string{"active ", "passive ", "plain "} {
		if !regexp.MustCompile(`(?m)^\s+` + kind).MatchString(out) {
			t.Errorf("no %q client labelled in the output", strings.TrimSpace(kind))
		}
	}
	before, after, ok := strings.Cut(out, "demo: kill -9 ")
	if !ok {
		t.Fatal("the demo killed no relay")
	}
	lv := levels(before)
	var l1, l2 []string
	for n, l := range lv {
		if !strings.HasPrefix(n, "active") {
			continue
		}
		switch l {
		case 1:
			l1 = append(l1, n)
		case 2:
			l2 = append(l2, n)
		}
	}
	if len(l1) != 2 || len(l2) != 3 {
		t.Errorf("tree before the kill: level 1 %v, level 2 %v; want 2 and 3 relays", l1, l2)
	}
	if _, ok := lv["passive1"]; !ok {
		t.Error("the passive client is not in the tree")
	}
	victim := strings.Fields(after)[0]
	if lv[victim] != 1 {
		t.Errorf("killed %s at level %d, want a level-1 relay", victim, lv[victim])
	}
	repaired, _, _ := strings.Cut(after, "demo: the players")
	lvAfter := levels(repaired)
	if _, ok := lvAfter[victim]; ok || len(lvAfter) != 5 {
		t.Errorf("repaired tree has %v, want the 5 hosts other than %s", lvAfter, victim)
	}

	// Every player receives, the plain client's included: each one's count
	// grows after the repair.
	players := []string{"active1", "active2", "active3", "active4", "active5", "passive1", "plain1"}
	counts := map[string]int{}
	for _, p := range players {
		counts[p] = lastPackets(t, filepath.Join(d.log, "player-"+p+".out"))
	}
	time.Sleep(2500 * time.Millisecond)
	for _, p := range players {
		if p == victim {
			continue
		}
		now := lastPackets(t, filepath.Join(d.log, "player-"+p+".out"))
		t.Logf("%s: %d packets, %d more after the repair", p, now, now-counts[p])
		if now <= counts[p] {
			t.Errorf("player %s is not receiving (%d packets, then %d)", p, counts[p], now)
		}
	}

	// The hint plays as printed.
	hint := regexp.MustCompile(`ffplay -rtsp_transport tcp '([^']+)'`).FindStringSubmatch(out)
	if hint == nil {
		t.Fatal("no ffplay hint with -rtsp_transport tcp")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	probe, err := exec.CommandContext(ctx, "ffprobe", "-v", "error", "-rtsp_transport", "tcp",
		"-show_entries", "stream=codec_name", "-of", "csv=p=0", hint[1]).CombinedOutput()
	if err != nil || !strings.Contains(string(probe), "h264") {
		t.Errorf("ffprobe on the hint %s: %v\n%s", hint[1], err, probe)
	}

	t.Run("gst-hint", func(t *testing.T) {
		require(t, "gstreamer")
		m := regexp.MustCompile(`gst-launch-1.0 rtspsrc protocols=(tcp) location='([^']+)'`).FindStringSubmatch(out)
		if m == nil {
			t.Fatal("no GStreamer hint with protocols=tcp")
		}
		if d := gstLaunch(t, m[2], m[1], 25); d.frames == 0 {
			t.Errorf("GStreamer decoded nothing from the hint %s", m[2])
		}
	})

	// A player's first decoded frame is a keyframe, through a relay as from
	// the origin: ffmpeg does not complain of missing references.
	origin := fmt.Sprintf("rtsp://127.0.0.1:%d/test", base)
	for i, u := range []string{hint[1], origin, hint[1]} {
		log, err := exec.CommandContext(ctx, "ffmpeg", "-nostdin", "-rtsp_transport", "tcp", "-i", u,
			"-frames:v", "30", "-f", "null", "-").CombinedOutput()
		if err != nil {
			t.Errorf("ffmpeg %d on %s: %v\n%s", i, u, err, log)
		}
		if strings.Contains(string(log), "Missing reference picture") {
			t.Errorf("ffmpeg %d on %s started decoding without a keyframe:\n%s", i, u, log)
		}
		time.Sleep(170 * time.Millisecond) // join at another point of the GOP
	}

	// The operator's recipe on the running demo: a reconnect and a drain.
	var l1After, l2After string
	for n, l := range lvAfter {
		if l == 1 && strings.HasPrefix(n, "active") {
			l1After = n
		}
		if l == 2 {
			l2After = n
		}
	}
	op := exec.CommandContext(ctx, "bash", "../examples/recipes/operate.sh", l2After, l1After)
	op.Env = append(os.Environ(), fmt.Sprintf("API=127.0.0.1:%d", base+11), "BIN="+filepath.Dir(tool("ocm-ctl")))
	opOut, err := op.CombinedOutput()
	t.Logf("operate.sh %s %s:\n%s", l2After, l1After, opOut)
	if err != nil {
		t.Errorf("operate.sh: %v", err)
	}
	tail := string(opOut)[strings.LastIndex(string(opOut), "rtsp://"):]
	if lvOp := levels(tail); len(lvOp) != 4 {
		t.Errorf("after draining %s the tree has %v, want the 4 others", l1After, lvOp)
	} else if _, still := lvOp[l1After]; still {
		t.Errorf("%s is still in the tree after its drain", l1After)
	}

	// Ctrl-C: the terminal signals the whole foreground process group.
	syscall.Kill(-d.cmd.Process.Pid, syscall.SIGINT)
	d.wait(t, 20*time.Second)
	if !strings.Contains(d.output(), "demo: stopped") {
		t.Error("the demo did not say it stopped")
	}
}

// TestDemoPortTaken: a port of the demo already in use is said in one line
// naming it, and nothing is left running, also when the port is found
// taken half-way (a relay's UDP probe port, after other tools started).
func TestDemoPortTaken(t *testing.T) {
	systemTest(t)
	t.Run("rtsp", func(t *testing.T) {
		base := freeDemoBase(t)
		l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(base))
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		d := startDemo(t, base, "5")
		err = d.wait(t, 30*time.Second)
		checkPortMessage(t, d.output(), err, base)
	})
	t.Run("probe-half-way", func(t *testing.T) {
		base := freeDemoBase(t)
		port := base + 32 // the third relay's probe port
		u, err := net.ListenPacket("udp", "127.0.0.1:"+strconv.Itoa(port))
		if err != nil {
			t.Fatal(err)
		}
		defer u.Close()
		d := startDemo(t, base, "5")
		err = d.wait(t, 60*time.Second)
		checkPortMessage(t, d.output(), err, port)
	})
}

func checkPortMessage(t *testing.T, out string, err error, port int) {
	t.Helper()
	if err == nil {
		t.Errorf("the demo exited 0 with port %d taken", port)
	}
	var lines []string
	for _, l := range strings.Split(out, "\n") {
		if strings.Contains(l, "in use") {
			lines = append(lines, l)
		}
	}
	if len(lines) != 1 || !strings.Contains(lines[0], fmt.Sprintf("port %d ", port)) {
		t.Errorf("want one line naming port %d as in use, got:\n%s", port, out)
	}
	if strings.Contains(out, "failed to start") {
		t.Errorf("the message is not about the port:\n%s", out)
	}
}

// TestDemoStops: SIGTERM to the script alone (not its group, as a service
// manager or kill PID does), and the end of DEMO_SECONDS, stop every
// process the demo started.
func TestDemoStops(t *testing.T) {
	systemTest(t)
	t.Run("sigterm", func(t *testing.T) {
		d := startDemo(t, freeDemoBase(t), "120")
		d.waitFor(t, "demo: running", 90*time.Second)
		d.cmd.Process.Signal(syscall.SIGTERM)
		d.wait(t, 20*time.Second)
		if !strings.Contains(d.output(), "demo: stopped") {
			t.Error("the demo did not say it stopped")
		}
	})
	t.Run("seconds", func(t *testing.T) {
		d := startDemo(t, freeDemoBase(t), "1")
		if err := d.wait(t, 120*time.Second); err != nil {
			t.Errorf("the demo ended with %v after DEMO_SECONDS", err)
		}
		if !strings.Contains(d.output(), "demo: running 1s more") {
			t.Error("the demo did not run for DEMO_SECONDS")
		}
	})
}
