package main

// Multi-process tests: the built binary, real sockets, and as root a small
// LAN of network namespaces with ffmpeg and ffprobe.

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ocm-overlay/ocm/internal/event"
	"github.com/ocm-overlay/ocm/internal/lab"
	"github.com/ocm-overlay/ocm/internal/netnstest"
	"github.com/ocm-overlay/ocm/internal/testutil/udptest"
)

func buildBinary(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("multi-process test skipped in -short mode")
	}
	bin := filepath.Join(t.TempDir(), "rtp-fanout")
	out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// proc is a running rtp-fanout (or anything printing JSON lines): lab's
// process, its events read one after another.
type proc struct {
	*lab.Proc
	read int // stdout lines already consumed by next
}

func startProc(t *testing.T, name string, args ...string) *proc {
	t.Helper()
	p, err := lab.StartWith(t, lab.Options{Stdin: true}, filepath.Base(name), name, args...)
	if err != nil {
		t.Fatal(err)
	}
	return &proc{Proc: p}
}

// next returns p's next event T, skipping others.
func next[T event.Event](t *testing.T, p *proc) T {
	t.Helper()
	var zero T
	e, err := lab.Await[T](context.Background(), p, 60*time.Second, p.read, nil)
	if err != nil {
		t.Fatalf("no %q line: %v; stderr:\n%s", zero.EventName(), err, p.Stderr())
	}
	p.read = e.Index + 1
	return e.E
}

func (p *proc) wait(t *testing.T) error {
	t.Helper()
	select {
	case <-p.Done():
		return p.Err()
	case <-time.After(60 * time.Second):
		t.Fatalf("process did not exit; stderr:\n%s", p.Stderr())
		return nil
	}
}

func inputPort(t *testing.T, ready event.FanoutReady) netip.AddrPort {
	t.Helper()
	ap, err := netip.ParseAddrPort(strings.TrimPrefix(ready.From, "udp://"))
	if err != nil {
		t.Fatalf("ready line without a bound input: %v", ready)
	}
	return ap
}

func TestProcessRelaysAndStopsOnSIGTERM(t *testing.T) {
	bin := buildBinary(t)
	rc := udptest.NewReceiver(t)
	p := startProc(t, bin, "--from", "udp://127.0.0.1:0", "--stats-interval", "100ms")
	in := inputPort(t, next[event.FanoutReady](t, p))

	to := rc.URL()
	if err := p.Send(fmt.Sprintf(`{"op":"add","to":%q}`, to)); err != nil {
		t.Fatal(err)
	}
	if rep := next[event.Reply](t, p); !rep.OK {
		t.Fatalf("add: %+v", rep)
	}
	udptest.NewRTPSender(t, in, 1000).SendPaced(t, 100, 10)
	deadline := time.Now().Add(30 * time.Second)
	for rc.Packets.Load() < 100 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if rc.Packets.Load() != 100 {
		t.Fatalf("received %d of 100 packets; stderr:\n%s", rc.Packets.Load(), p.Stderr())
	}

	if err := p.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := p.wait(t); err != nil {
		t.Errorf("exit after SIGTERM: %v; stderr:\n%s", err, p.Stderr())
	}
	last, ok := lab.Last[event.FanoutStats](p)
	if !ok {
		t.Fatal("no stats line")
	}
	if len(last.Out) != 1 || last.Out[0].Packets != 100 {
		t.Errorf("final stats: %+v", last)
	}
}

func TestProcessBadInput(t *testing.T) {
	bin := buildBinary(t)
	busy := udptest.Listen(t)
	cases := []struct {
		name string
		args []string
		want string
	}{
		{"bad url", []string{"--from", "udp://127.0.0.1"}, "rtp-fanout: --from: bad URL"},
		{"port in use", []string{"--from", "udp://" + busy.LocalAddr().String() + "?rtcp=0"}, "address already in use"},
		{"bad output", []string{"--from", "udp://127.0.0.1:0", "--to", "udp://239.1.1.1:5004?ttl=0"}, "ttl must be 1..255"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			cmd := exec.Command(bin, c.args...)
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			err := cmd.Run()
			if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 {
				t.Errorf("exit: %v, want status 1", err)
			}
			if !strings.Contains(stderr.String(), c.want) {
				t.Errorf("stderr %q lacks %q", stderr.String(), c.want)
			}
			if stdout.Len() != 0 {
				t.Errorf("stdout not empty: %q", stdout.String())
			}
		})
	}
}

func TestNetnsMulticastLAN(t *testing.T) {
	netnstest.Need(t)
	for _, tool := range []string{"ffmpeg", "ffprobe"} {
		_, err := exec.LookPath(tool)
		netnstest.Skip(t, err == nil, tool+" is not installed")
	}
	enc, _ := exec.Command("ffmpeg", "-hide_banner", "-encoders").Output()
	netnstest.Skip(t, bytes.Contains(enc, []byte("libx264")), "ffmpeg has no libx264")
	bin := buildBinary(t)
	l := netnstest.NewLAN(t, 3)
	a, b, c := l.Hosts[0], l.Hosts[1], l.Hosts[2]
	group := netip.MustParseAddrPort("239.255.77.1:5004")

	rb := netnstest.JoinGroup(t, b, group, 1)
	rc := netnstest.JoinGroup(t, c, group, 1)

	dir := t.TempDir()
	sdp := filepath.Join(dir, "lan.sdp")
	f := startProc(t, "ip", "netns", "exec", a.NS, bin,
		"--from", "udp://127.0.0.1:0",
		"--to", "udp://"+group.String()+"?ttl=1",
		"--iface", a.Dev, "--sdp", sdp, "--stats-interval", "500ms")
	in := inputPort(t, next[event.FanoutReady](t, f))

	ff := startProc(t, "ip", "netns", "exec", a.NS, "ffmpeg", "-nostdin", "-loglevel", "error",
		"-re", "-f", "lavfi", "-i", "testsrc=size=320x240:rate=25", "-t", "120",
		"-c:v", "libx264", "-g", "25", "-f", "rtp", fmt.Sprintf("rtp://127.0.0.1:%d", in.Port()))
	_ = ff
	next[event.SDP](t, f)
	data, err := os.ReadFile(sdp)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(data), "c=IN IP4 239.255.77.1/1") {
		t.Errorf("sdp:\n%s", data)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	probe := exec.CommandContext(ctx, "ip", "netns", "exec", b.NS, "ffprobe", "-v", "error",
		"-protocol_whitelist", "file,udp,rtp", "-read_intervals", "%+#100",
		"-show_entries", "frame=width,height", "-of", "csv=p=0", sdp)
	var pout, perr bytes.Buffer
	probe.Stdout, probe.Stderr = &pout, &perr
	if err := probe.Run(); err != nil {
		t.Fatalf("ffprobe in %s: %v\n%s", b.NS, err, perr.String())
	}
	frames := strings.Count(pout.String(), "320,240")
	if frames == 0 {
		t.Fatalf("ffprobe decoded no 320x240 frame from the multicast:\n%s\n%s", pout.String(), perr.String())
	}
	t.Logf("ffprobe in %s decoded %d frames", b.NS, frames)

	for name, r := range map[string]*netnstest.GroupReceiver{b.NS: rb, c.NS: rc} {
		if r.Packets.Load() < 50 {
			t.Errorf("%s received %d packets of the group", name, r.Packets.Load())
		}
		if r.BadTTL.Load() != 0 || r.TTL.Load() != 1 {
			t.Errorf("%s: %d packets with a TTL other than 1 (last %d)", name, r.BadTTL.Load(), r.TTL.Load())
		}
	}
	st := next[event.FanoutStats](t, f)
	if st.Drops != 0 {
		t.Errorf("drops in %+v", st)
	}
}

// A group that cannot be joined (no interface, no route) is a clear error.
func TestNetnsJoinFailure(t *testing.T) {
	netnstest.Need(t)
	bin := buildBinary(t)
	ns := fmt.Sprintf("fo%06x-e", rand.Uint32()&0xffffff)
	netnstest.AddNetns(t, ns)
	var stdout, stderr bytes.Buffer
	cmd := exec.Command("ip", "netns", "exec", ns, bin, "--from", "udp://239.255.77.2:6000")
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 {
		t.Errorf("exit: %v, want status 1", err)
	}
	if !strings.Contains(stderr.String(), "join group 239.255.77.2") {
		t.Errorf("stderr: %q", stderr.String())
	}
	if stdout.Len() != 0 {
		t.Errorf("stdout: %q", stdout.String())
	}
}
