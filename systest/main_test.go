package systest

import (
	"flag"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"

	"github.com/ocm-overlay/ocm/internal/lab"
)

// tools holds the tools TestMain built (or found in $OCM_SYSTEST_BIN);
// empty under -short.
var tools lab.Tools

// pythonPath runs the GStreamer RTSP server origin: the system Python, the
// one that has the GObject bindings.
const pythonPath = "/usr/bin/python3"

func TestMain(m *testing.M) {
	flag.Parse()
	if testing.Short() {
		os.Exit(m.Run())
	}
	// Every process's whole output, per test, if asked for: a failure
	// dump shows only the tails.
	lab.LogDir = os.Getenv("OCM_SYSTEST_LOGS")
	if dir := os.Getenv("OCM_SYSTEST_BIN"); dir != "" {
		// Tools already built, e.g. by make build into bin/.
		tools = lab.Tools(dir)
		os.Exit(m.Run())
	}
	dir, err := os.MkdirTemp("", "ocm-systest-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	// The module root: go test runs in the package directory.
	if tools, err = lab.Build("..", dir); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

func tool(name string) string { return tools.Path(name) }

// systemTest skips t under -short.
func systemTest(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("multi-process system test: skipped with -short")
	}
}

// A requirement is an external program the tests drive, or a codec or
// element one of them needs; each is checked once per run.
type requirement struct {
	once  sync.Once
	err   error
	check func() error
}

var requirements = map[string]*requirement{
	"ffprobe":         {check: lookPath("ffprobe")},
	"ffmpeg":          {check: lookPath("ffmpeg")},
	"prlimit":         {check: lookPath("prlimit")},
	"libx264":         {check: ffmpegEncoder("libx264")},
	"gstreamer":       {check: gstElements("rtspsrc", "rtph264depay", "h264parse", "avdec_h264", "fakesink")},
	"gst-rtsp-server": {check: gstRTSPServer},
}

// Requirements named KIND:NAME are made on first use: an encoder of
// ffmpeg, a decoder of ffprobe, an element of GStreamer.
var (
	requirementKinds = map[string]func(string) func() error{
		"ffmpeg-encoder":  ffmpegEncoder,
		"ffprobe-decoder": ffprobeDecoder,
		"gst":             func(name string) func() error { return gstElements(name) },
	}
	requirementsMu sync.Mutex
)

func lookupRequirement(name string) *requirement {
	requirementsMu.Lock()
	defer requirementsMu.Unlock()
	if r := requirements[name]; r != nil {
		return r
	}
	kind, arg, ok := strings.Cut(name, ":")
	if mk := requirementKinds[kind]; ok && mk != nil && arg != "" {
		r := &requirement{check: mk(arg)}
		requirements[name] = r
		return r
	}
	return nil
}

// require skips t when a program it needs is missing, or fails it when the
// CI environment variable is set: CI must run every test.
func require(t *testing.T, names ...string) {
	t.Helper()
	for _, n := range names {
		r := lookupRequirement(n)
		if r == nil {
			t.Fatalf("unknown requirement %q", n)
		}
		r.once.Do(func() { r.err = r.check() })
		if r.err == nil {
			continue
		}
		if os.Getenv("CI") != "" {
			t.Fatalf("%s is required when CI is set: %v", n, r.err)
		}
		t.Skipf("skipping: %s is not available: %v", n, r.err)
	}
}

func lookPath(name string) func() error {
	return func() error {
		_, err := exec.LookPath(name)
		return err
	}
}

func ffmpegEncoder(name string) func() error {
	return ffmpegCodec("ffmpeg", "-encoders", "encoder", name)
}

func ffprobeDecoder(name string) func() error {
	return ffmpegCodec("ffprobe", "-decoders", "decoder", name)
}

// ffmpegCodec checks that program's list (-encoders or -decoders) has
// name.
func ffmpegCodec(program, list, what, name string) func() error {
	return func() error {
		out, err := exec.Command(program, "-hide_banner", list).Output()
		if err != nil {
			return fmt.Errorf("%s %s: %w", program, list, err)
		}
		if !strings.Contains(string(out), " "+name+" ") {
			return fmt.Errorf("%s has no %s %s", program, name, what)
		}
		return nil
	}
}

func gstElements(names ...string) func() error {
	return func() error {
		if _, err := exec.LookPath("gst-launch-1.0"); err != nil {
			return err
		}
		for _, n := range names {
			if err := exec.Command("gst-inspect-1.0", "--exists", n).Run(); err != nil {
				return fmt.Errorf("GStreamer element %s: %v", n, err)
			}
		}
		return nil
	}
}

func gstRTSPServer() error {
	const probe = `import gi
gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import Gst, GstRtspServer
Gst.init(None)
assert Gst.ElementFactory.find("x264enc") or Gst.ElementFactory.find("openh264enc"), "no x264enc or openh264enc"
`
	out, err := exec.Command(pythonPath, "-c", probe).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s with GstRtspServer: %v: %s", pythonPath, err, strings.TrimSpace(string(out)))
	}
	return nil
}
