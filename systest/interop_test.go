package systest

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/ocm-overlay/ocm/internal/event"
)

// interopStream is a stream of the interop matrix: where it comes from,
// how, and what is in it.
type interopStream struct {
	name   string  // the subtest's name
	media  string  // its path on the origin
	tracks []codec // in SDP order
	// publish is ffmpeg's inputs and encoders for a stream published into
	// an origin mediator, nil for the third-party origin's stream; needs is
	// what they take.
	publish []string
	needs   []string
	origin  string // HOST:PORT of its origin, set when it is up
}

func (s *interopStream) originURL() string { return "rtsp://" + s.origin + "/" + s.media }

// The publishers' sources: a test pattern and a tone from ffmpeg's lavfi,
// read in real time (-re), small so that seven encoders and the players
// fit on two cores; a keyframe a second, no B-frames.
var (
	lavfiVideo  = []string{"-re", "-f", "lavfi", "-i", "testsrc=size=320x240:rate=25"}
	x264Encoder = []string{"-c:v", "libx264", "-preset", "ultrafast", "-tune", "zerolatency", "-g", "25", "-pix_fmt", "yuv420p"}
	aacEncoder  = []string{"-c:a", "aac", "-b:a", "64k"}
)

// lavfiAudio is a tone at rate Hz in frames of samples (an RTP packet each
// for PCM: 160 at 8 kHz are the 20 ms a camera sends).
func lavfiAudio(rate, samples int) []string {
	return []string{"-re", "-f", "lavfi", "-i", fmt.Sprintf("sine=frequency=440:sample_rate=%d:samples_per_frame=%d", rate, samples)}
}

func joinArgs(parts ...[]string) []string {
	var out []string
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

// interopStreams are what cameras and encoders send: the first six
// published with ffmpeg into an origin mediator (--publish), the last
// served by GStreamer's RTSP server (testdata/gst-rtsp-origin.py).
func interopStreams() []*interopStream {
	return []*interopStream{
		{name: "h264-aac", tracks: []codec{codecH264, codecAAC},
			publish: joinArgs(lavfiVideo, lavfiAudio(44100, 1024), x264Encoder, aacEncoder),
			needs:   []string{"libx264", "ffmpeg-encoder:aac"}},
		{name: "h265-opus", tracks: []codec{codecH265, codecOpus},
			publish: joinArgs(lavfiVideo, lavfiAudio(48000, 960),
				[]string{"-c:v", "libx265", "-preset", "ultrafast", "-tune", "zerolatency",
					"-x265-params", "keyint=25:log-level=error", "-pix_fmt", "yuv420p", "-c:a", "libopus", "-b:a", "32k"}),
			needs: []string{"ffmpeg-encoder:libx265", "ffmpeg-encoder:libopus"}},
		{name: "mpeg4-aac", tracks: []codec{codecMPEG4, codecAAC},
			publish: joinArgs(lavfiVideo, lavfiAudio(44100, 1024), []string{"-c:v", "mpeg4", "-g", "25", "-q:v", "5"}, aacEncoder),
			needs:   []string{"ffmpeg-encoder:mpeg4", "ffmpeg-encoder:aac"}},
		{name: "h264-pcmu", tracks: []codec{codecH264, codecPCMU},
			publish: joinArgs(lavfiVideo, lavfiAudio(8000, 160), x264Encoder, []string{"-c:a", "pcm_mulaw"}),
			needs:   []string{"libx264", "ffmpeg-encoder:pcm_mulaw"}},
		{name: "aac", tracks: []codec{codecAAC},
			publish: joinArgs(lavfiAudio(44100, 1024), aacEncoder),
			needs:   []string{"ffmpeg-encoder:aac"}},
		// ffmpeg's RTP muxer sends only RFC 2435 JPEG: 4:2:0 "full range"
		// with the standard Huffman tables. Anything else it refuses, and
		// publishes nothing.
		{name: "mjpeg", tracks: []codec{codecMJPEG},
			publish: joinArgs(lavfiVideo, []string{"-c:v", "mjpeg", "-pix_fmt", "yuvj420p", "-huffman", "default", "-q:v", "5"}),
			needs:   []string{"ffmpeg-encoder:mjpeg"}},
		{name: "gst-h264-opus", media: "av", tracks: []codec{codecH264, codecOpus},
			needs: []string{"gst-rtsp-server", "gst:opusenc", "gst:rtpopuspay"}},
	}
}

// publishStream has ffmpeg publish s into origin over TCP at /NAME, as a
// user would, and waits until the origin has it.
func publishStream(t *testing.T, origin *mediator, s *interopStream) {
	t.Helper()
	require(t, "ffmpeg")
	require(t, s.needs...)
	s.media, s.origin = s.name, origin.Addr
	start(t, "publisher", "ffmpeg", joinArgs([]string{"-nostdin", "-hide_banner", "-loglevel", "warning"}, s.publish,
		[]string{"-f", "rtsp", "-rtsp_transport", "tcp", s.originURL()})...)
	waitEvent(t, origin, "the publisher announced on /"+s.media, 0, func(e event.Publisher) bool {
		return e.Path == "/"+s.media && e.State == "announced"
	})
}

// interopPath is a way from the origin to the players.
type interopPath struct {
	name string
	at   *mediator // the mediator players open the enhanced URL on; nil: they open the origin
	// via checks, from the tools' events, that s went this way.
	via func(t *testing.T, s *interopStream)
}

func (p interopPath) url(s *interopStream) string {
	if p.at == nil {
		return s.originURL()
	}
	return enhanced(p.at.Addr, s.media, s.origin)
}

// interopReaders are the players, each over TCP and UDP.
var interopReaders = []struct{ name, player, transport string }{
	{"ffprobe-tcp", "ffprobe", "tcp"},
	{"ffprobe-udp", "ffprobe", "udp"},
	{"gst-tcp", "gst", "tcp"},
	{"gst-udp", "gst", "udp"},
}

// interopParallel is how many cells of the matrix play at once: each is a
// player decoding a small stream, mostly waiting, but all of them share
// two cores with the publishers and the relays.
const interopParallel = 6

// TestInterop plays every stream a camera or encoder commonly sends, from
// ffmpeg publishing into our origin and from GStreamer's RTSP server, with
// every player (ffprobe and GStreamer's rtspsrc, over TCP and UDP) through
// every path: the origin itself, one relay, two relays, the overlay, and
// the overlay's 302 (a light client). Every player must decode frames of
// every track. A cell is STREAM/PATH/READER, e.g. h264-aac/relay2/gst-udp;
// a codec or element a player lacks skips the cells that need it, naming
// it (fails them under CI).
//
// The test is not parallel with others: it keeps about 30 processes and
// interopParallel players busy by itself.
func TestInterop(t *testing.T) {
	systemTest(t)
	began := time.Now()

	// The ways to the players. The origin mediator serves published
	// streams; a stream's origin is its own for the third-party one.
	// --debug: a reader's connection closing is logged with its reason.
	debug := []string{"--debug"}
	origin := startMediatorUDP(t, "origin", "--publish", "--debug")
	relay1 := startMediatorUDP(t, "relay1", debug...)
	first := startMediator(t, "relay2-first", debug...)
	relay2 := startMediatorUDP(t, "relay2", append([]string{"--resolver", "parent:" + first.Addr}, debug...)...)
	// The overlay: one host whose relay the server places under each
	// stream's origin (capacity 1, taken by the host's keeper below), and a
	// light client whose 302 so goes to that host, never to the origin.
	srv := startServer(t, "server", "--origin-capacity", "1")
	_, control := startOCMRelay(t, "host", srv.OCM)
	host := startMediatorUDP(t, "host/mediator", append([]string{"--resolver", "ocm", "--control", control}, debug...)...)
	_, control = startOCMRelay(t, "light", srv.OCM, "--willing=false")
	light := startMediator(t, "light/mediator", "--resolver", "redirect", "--control", control)

	playing := func(t *testing.T, m *mediator, up string) {
		t.Helper()
		waitEvent(t, m, "an upstream playing from "+up, 0, upstreamEvent("playing", up))
	}
	paths := []interopPath{
		{name: "origin"},
		{name: "relay1", at: relay1, via: func(t *testing.T, s *interopStream) {
			playing(t, relay1, s.originURL())
		}},
		{name: "relay2", at: relay2, via: func(t *testing.T, s *interopStream) {
			playing(t, relay2, enhanced(first.Addr, s.media, s.origin))
			playing(t, first, s.originURL())
		}},
		{name: "overlay", at: host, via: func(t *testing.T, s *interopStream) {
			playing(t, host, s.originURL())
		}},
		{name: "redirect", at: light, via: func(t *testing.T, s *interopStream) {
			waitEvent(t, light, "a redirect to the overlay host", 0, func(e event.Redirect) bool {
				return e.Stream == s.originURL() && e.To == enhanced(host.Addr, s.media, s.origin)
			})
		}},
	}

	slots := make(chan struct{}, interopParallel)
	var streams sync.WaitGroup
	for _, s := range interopStreams() {
		// t.Run from several goroutines: the cells share one bound,
		// interopParallel, whatever go test's -parallel.
		streams.Go(func() {
			t.Run(s.name, func(t *testing.T) {
				if s.publish != nil {
					publishStream(t, origin, s)
				} else {
					require(t, s.needs...)
					s.origin = startGstOrigin(t)
				}
				// The keeper holds the overlay host in the stream's tree,
				// right under the origin, for the whole run.
				keeper := startReader(t, "host/keeper", enhanced(host.Addr, s.media, s.origin))
				waitEvent(t, keeper, "the stream through the overlay host", 0, progressAtLeast(50))

				var cells sync.WaitGroup
				for _, p := range paths {
					for _, r := range interopReaders {
						cells.Go(func() {
							slots <- struct{}{}
							defer func() { <-slots }()
							t.Run(p.name+"/"+r.name, func(t *testing.T) {
								require(t, playerNeeds(r.player, s.tracks)...)
								url := p.url(s)
								if r.player == "ffprobe" {
									probeTracks(t, url, r.transport, s.tracks)
								} else {
									gstTracks(t, url, r.transport, s.tracks)
								}
								if p.via != nil {
									p.via(t, s)
								}
							})
						})
					}
				}
				cells.Wait()
			})
		})
	}
	streams.Wait()
	t.Logf("the matrix took %s", time.Since(began).Round(time.Second))
}
