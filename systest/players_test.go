package systest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ocm-overlay/ocm/internal/event"
	"github.com/ocm-overlay/ocm/internal/lab"
)

var errTimeout = errors.New("killed: still running after the liveness limit")

// A player is an unmodified player that plays a URL and checks what it
// decoded: its size, and enough frames.
type player struct {
	name  string
	needs string // a requirement, if any
	play  func(t *testing.T, url string, width, height int)
}

var (
	goReader   = player{"go-reader", "", func(t *testing.T, url string, _, _ int) { goRead(t, url) }}
	ffprobeTCP = player{"ffprobe-tcp", "ffprobe", func(t *testing.T, url string, w, h int) {
		ffprobe(t, url, "tcp").check(t, "ffprobe over TCP", w, h)
	}}
	ffmpegUDP = player{"ffmpeg-udp", "ffmpeg", func(t *testing.T, url string, w, h int) {
		ffmpeg(t, url, "udp").check(t, "ffmpeg over UDP", w, h)
	}}
	gstTCP = player{"gst-tcp", "gstreamer", func(t *testing.T, url string, w, h int) {
		gstLaunch(t, url, "tcp", 75).check(t, "gst-launch over TCP", w, h)
	}}
	gstUDP = player{"gst-udp", "gstreamer", func(t *testing.T, url string, w, h int) {
		gstLaunch(t, url, "udp", 75).check(t, "gst-launch over UDP", w, h)
	}}
)

// playAll plays url with each player in parallel, in subtests of
// "players", each expecting a picture of width x height.
func playAll(t *testing.T, url string, width, height int, players ...player) {
	t.Run("players", func(t *testing.T) {
		for _, p := range players {
			t.Run(p.name, func(t *testing.T) {
				if p.needs != "" {
					require(t, p.needs)
				}
				t.Parallel()
				p.play(t, url, width, height)
			})
		}
	})
}

// run runs a program to completion, killing it after the liveness limit.
func run(t *testing.T, name string, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), patience)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.SysProcAttr = lab.DieWithParent()
	cmd.WaitDelay = 2 * time.Second
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err = cmd.Run()
	if ctx.Err() != nil {
		err = errTimeout
	}
	return o.String(), e.String(), err
}

// decoded is what a player decoded from a stream.
type decoded struct {
	codec         string
	width, height int
	frames        int // decoded frames
}

// minFrames is the least a player must decode: a second of 25 fps video,
// from a read of about three seconds.
const minFrames = 25

// check fails t unless d is at least minFrames of codec at width x height.
func (d decoded) check(t *testing.T, player string, width, height int) {
	t.Helper()
	t.Logf("%s decoded %d frames of %s %dx%d", player, d.frames, d.codec, d.width, d.height)
	if d.codec != "h264" || d.width != width || d.height != height {
		t.Errorf("%s decoded %s %dx%d, want h264 %dx%d", player, d.codec, d.width, d.height, width, height)
	}
	if d.frames < minFrames {
		t.Errorf("%s decoded %d frames, want at least %d", player, d.frames, minFrames)
	}
}

// ffprobe decodes about three seconds of url's video and counts the frames.
func ffprobe(t *testing.T, url, transport string) decoded {
	t.Helper()
	d, err := probeFrames(t, "", url, transport)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// probeFrames is ffprobe run in network namespace ns ("" for this one);
// it is safe to call from any goroutine.
func probeFrames(t *testing.T, ns, url, transport string) (decoded, error) {
	streams, err := probeStreams(t, ns, url, transport, "%+3", "-select_streams", "v:0")
	if err != nil {
		return decoded{}, err
	}
	if len(streams) != 1 {
		return decoded{}, fmt.Errorf("ffprobe %s: %d video streams, want 1", url, len(streams))
	}
	s := streams[0]
	return decoded{codec: s.CodecName, width: s.Width, height: s.Height, frames: s.frames()}, nil
}

// probedStream is one stream of ffprobe's answer.
type probedStream struct {
	CodecType    string `json:"codec_type"`
	CodecName    string `json:"codec_name"`
	Width        int    `json:"width"`
	Height       int    `json:"height"`
	NbReadFrames string `json:"nb_read_frames"`
}

func (s probedStream) frames() int {
	n, _ := strconv.Atoi(s.NbReadFrames)
	return n
}

// probeStreams has ffprobe, in network namespace ns ("" for this one),
// decode interval of url (-read_intervals: "%+3" is three seconds, "%+#N"
// N packets) and count the frames of every stream (or of those args
// select). It is safe to call from any goroutine.
func probeStreams(t *testing.T, ns, url, transport, interval string, args ...string) ([]probedStream, error) {
	return probeInput(t, ns, url, interval, append(append([]string{"-rtsp_transport", transport}, args...), url)...)
}

// probeInput is probeStreams with ffprobe's input and its options as args
// (an SDP file, say); url names the input in errors.
func probeInput(t *testing.T, ns, url, interval string, args ...string) ([]probedStream, error) {
	cmd := append(probeCommand(interval), args...)
	if ns != "" {
		cmd = append([]string{"ip", "netns", "exec", ns}, cmd...)
	}
	out, errOut, err := run(t, cmd[0], cmd[1:]...)
	return probeResult(url, out, errOut, err)
}

// probeCommand is ffprobe counting the frames of interval of its input,
// its answer in JSON; the input and its options follow.
func probeCommand(interval string) []string {
	return []string{"ffprobe", "-v", "error", "-count_frames", "-read_intervals", interval,
		"-show_entries", "stream=codec_type,codec_name,width,height,nb_read_frames", "-of", "json"}
}

// probeResult reads the streams in the answer of probeCommand on url.
func probeResult(url, out, errOut string, err error) ([]probedStream, error) {
	if err != nil {
		return nil, fmt.Errorf("ffprobe %s: %v\n%s", url, err, errOut)
	}
	var res struct {
		Streams []probedStream `json:"streams"`
	}
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		return nil, fmt.Errorf("ffprobe %s: unexpected output (%v):\n%s\n%s", url, err, out, errOut)
	}
	return res.Streams, nil
}

var (
	ffmpegFrame = regexp.MustCompile(`(?m)^frame=(\d+)$`)
	ffmpegVideo = regexp.MustCompile(`Video: (\w+).*?, (\d+)x(\d+)`)
)

// ffmpeg decodes three seconds of url's video to nothing, counting frames
// from its -progress output.
func ffmpeg(t *testing.T, url, transport string) decoded {
	t.Helper()
	out, errOut, err := run(t, "ffmpeg", "-nostdin", "-hide_banner", "-nostats", "-loglevel", "info",
		"-rtsp_transport", transport, "-i", url,
		"-map", "0:v:0", "-t", "3", "-f", "null", "-", "-progress", "pipe:1")
	if err != nil {
		t.Fatalf("ffmpeg %s: %v\n%s", url, err, tail(errOut, 30))
	}
	var d decoded
	if m := ffmpegVideo.FindStringSubmatch(errOut); m != nil {
		d.codec = m[1]
		d.width, _ = strconv.Atoi(m[2])
		d.height, _ = strconv.Atoi(m[3])
	}
	if all := ffmpegFrame.FindAllStringSubmatch(out, -1); len(all) > 0 {
		d.frames, _ = strconv.Atoi(all[len(all)-1][1])
	}
	return d
}

// goRead reads url for three seconds with rtsp-mediator read, the player
// that needs nothing but Go, and checks its summary: at least minFrames
// frames and, on a healthy TCP path, no sequence gap.
func goRead(t *testing.T, url string) {
	t.Helper()
	out, errOut, err := run(t, tool("rtsp-mediator"), "read", url, "--duration", "3s")
	if err != nil {
		t.Fatalf("rtsp-mediator read %s: %v\n%s", url, err, errOut)
	}
	var sum event.ReadSummary
	for _, l := range strings.Split(out, "\n") {
		if e, _ := parseEvent(l); e != nil {
			if s, ok := e.(event.ReadSummary); ok {
				sum = s
			}
		}
	}
	t.Logf("rtsp-mediator read: %v frames, %v packets, %v lost", sum.Frames, sum.Packets, sum.Lost)
	if sum.Frames < minFrames || sum.Lost != 0 {
		t.Errorf("rtsp-mediator read %s: summary %+v, want at least %d frames and nothing lost", url, sum, minFrames)
	}
}

var gstCaps = regexp.MustCompile(`GstFakeSink:sink\.GstPad:sink: caps = video/x-raw.*width=\(int\)(\d+), height=\(int\)(\d+)`)

// gstLaunch plays url with GStreamer's rtspsrc, decodes it with avdec_h264
// into a verbose fakesink that stops after buffers frames, and counts the
// frames the decoder did not flag as corrupted (those before the first
// keyframe are).
func gstLaunch(t *testing.T, url, protocols string, buffers int) decoded {
	t.Helper()
	out, errOut, err := run(t, "gst-launch-1.0", "-v",
		"rtspsrc", "location="+url, "protocols="+protocols,
		"!", "rtph264depay", "!", "h264parse", "!", "avdec_h264",
		"!", "fakesink", "name=sink", "silent=false", "num-buffers="+strconv.Itoa(buffers))
	// At EOS (the fakesink had its buffers) gst-launch stops rtspsrc,
	// which sends PAUSE and TEARDOWN; one of them can meet the connection
	// the server closed after the other, and gst-launch then exits 1
	// though it played all it was asked to (TestChain, once in CI). The
	// frames are checked below either way.
	if err != nil && !strings.Contains(out, `Got EOS from element "pipeline0"`) {
		t.Fatalf("gst-launch-1.0 %s: %v\n%s\n%s", url, err, tail(out, 20), tail(errOut, 20))
	} else if err != nil {
		t.Logf("gst-launch-1.0 %s reached EOS, then failed in its teardown: %v\n%s", url, err, tail(errOut, 8))
	}
	d := decoded{codec: "h264"}
	if m := gstCaps.FindStringSubmatch(out); m != nil {
		d.width, _ = strconv.Atoi(m[1])
		d.height, _ = strconv.Atoi(m[2])
	}
	for _, l := range strings.Split(out, "\n") {
		if strings.Contains(l, "GstFakeSink:sink: last-message = chain") && !strings.Contains(l, "corrupted") {
			d.frames++
		}
	}
	return d
}
