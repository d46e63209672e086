package testsrc

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bluenviron/gortsplib/v4/pkg/format"
	"github.com/bluenviron/gortsplib/v4/pkg/format/rtph264"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"
	"github.com/ocm-overlay/ocm/internal/testutil"
	"github.com/pion/rtp"
)

const clipFrames = 250 // 10 s at 25 fps

func TestNewParsesClip(t *testing.T) {
	s, err := New()
	if err != nil {
		t.Fatal(err)
	}
	if len(s.frames) != clipFrames {
		t.Errorf("frames = %d, want %d", len(s.frames), clipFrames)
	}

	m := s.Media()
	if m != s.Media() {
		t.Error("Media returns a different pointer on each call")
	}
	if len(m.Formats) != 1 {
		t.Fatalf("formats = %d, want 1", len(m.Formats))
	}
	f, ok := m.Formats[0].(*format.H264)
	if !ok {
		t.Fatalf("format is %T, want *format.H264", m.Formats[0])
	}
	if f.PayloadTyp != 96 || f.PacketizationMode != 1 {
		t.Errorf("payload type %d, packetization mode %d; want 96, 1", f.PayloadTyp, f.PacketizationMode)
	}
	var sps h264.SPS
	if err := sps.Unmarshal(f.SPS); err != nil {
		t.Fatalf("SPS: %v", err)
	}
	if sps.Width() != 640 || sps.Height() != 360 {
		t.Errorf("size %dx%d, want 640x360", sps.Width(), sps.Height())
	}
	if len(f.PPS) == 0 {
		t.Error("no PPS")
	}

	aus, err := splitAccessUnits(clip)
	if err != nil {
		t.Fatal(err)
	}
	for i, au := range aus {
		// A joining reader must find SPS, PPS and an IDR within a second.
		if i%25 == 0 {
			if !h264.IsRandomAccess(au) || !hasNALU(au, h264.NALUTypeSPS) || !hasNALU(au, h264.NALUTypePPS) {
				t.Errorf("frame %d: want SPS, PPS and IDR at the start of each 1 s GOP", i)
			}
		} else if h264.IsRandomAccess(au) {
			t.Errorf("frame %d: unexpected IDR inside a GOP", i)
		}
	}
	for i, fr := range s.frames {
		for _, p := range fr.payloads {
			if len(p) > payloadMaxSize {
				t.Fatalf("frame %d: payload of %d bytes exceeds %d", i, len(p), payloadMaxSize)
			}
		}
	}
}

func hasNALU(au [][]byte, typ h264.NALUType) bool {
	for _, n := range au {
		if h264.NALUType(n[0]&0x1f) == typ {
			return true
		}
	}
	return false
}

// TestClipDecodesWithFFmpeg checks the embedded bytes, not the file next to
// the source, so a stale clip.h264 cannot hide a broken embed.
func TestClipDecodesWithFFmpeg(t *testing.T) {
	path := filepath.Join(t.TempDir(), "clip.h264")
	if err := os.WriteFile(path, clip, 0o644); err != nil {
		t.Fatal(err)
	}

	t.Run("ffmpeg decodes without errors", func(t *testing.T) {
		ffmpeg := testutil.RequireTool(t, "ffmpeg")
		out, err := exec.Command(ffmpeg, "-nostdin", "-v", "error", "-i", path, "-f", "null", "-").CombinedOutput()
		if err != nil || len(bytes.TrimSpace(out)) != 0 {
			t.Fatalf("ffmpeg: %v\n%s", err, out)
		}
	})

	t.Run("ffprobe sees 250 frames of 640x360 H264", func(t *testing.T) {
		ffprobe := testutil.RequireTool(t, "ffprobe")
		out, err := exec.Command(ffprobe, "-v", "error", "-count_frames", "-select_streams", "v:0",
			"-show_entries", "stream=codec_name,width,height,nb_read_frames,has_b_frames",
			"-of", "default=noprint_wrappers=1", path).CombinedOutput()
		if err != nil {
			t.Fatalf("ffprobe: %v\n%s", err, out)
		}
		got := strings.Fields(string(out))
		for _, want := range []string{"codec_name=h264", "width=640", "height=360", "has_b_frames=0", "nb_read_frames=250"} {
			if !contains(got, want) {
				t.Errorf("ffprobe output lacks %q:\n%s", want, out)
			}
		}
	})
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// collect runs s fast until it has sent frames access units and returns a
// copy of every packet.
func collect(t *testing.T, s *Source, frames int) []*rtp.Packet {
	t.Helper()
	s.interval = 100 * time.Microsecond // a 10 s loop in 25 ms
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	var pkts []*rtp.Packet
	markers := 0
	err := s.Run(ctx, func(p *rtp.Packet) {
		if markers == frames {
			return // cancelled, Run is about to return
		}
		c := &rtp.Packet{Header: p.Header, Payload: append([]byte(nil), p.Payload...)}
		pkts = append(pkts, c)
		// Consumers may scribble on the header (gortsplib sets its SSRC);
		// the next packet must not inherit it.
		p.SSRC, p.Marker, p.PayloadType = 1, !p.Marker, 0
		if c.Marker {
			markers++
			if markers == frames {
				cancel()
			}
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	if markers != frames {
		t.Fatalf("got %d frames before the timeout, want %d", markers, frames)
	}
	return pkts
}

func TestRunContinuesAcrossLoops(t *testing.T) {
	s, err := New()
	if err != nil {
		t.Fatal(err)
	}
	const frames = 2*clipFrames + 10 // two loop boundaries
	pkts := collect(t, s, frames)

	frame := 0
	for i := 1; i < len(pkts); i++ {
		prev, cur := pkts[i-1], pkts[i]
		if cur.SequenceNumber != prev.SequenceNumber+1 {
			t.Fatalf("packet %d: sequence %d after %d", i, cur.SequenceNumber, prev.SequenceNumber)
		}
		wantTS := prev.Timestamp
		if prev.Marker {
			wantTS += tsPerFrame
			frame++
		}
		if cur.Timestamp != wantTS {
			t.Fatalf("packet %d (frame %d): timestamp %d after %d, want %d",
				i, frame, cur.Timestamp, prev.Timestamp, wantTS)
		}
		if cur.PayloadType != 96 || cur.Version != 2 || cur.SSRC != prev.SSRC {
			t.Fatalf("packet %d: version %d payload type %d SSRC %x after %x",
				i, cur.Version, cur.PayloadType, cur.SSRC, prev.SSRC)
		}
	}
	if !pkts[len(pkts)-1].Marker {
		t.Error("last packet of the last frame has no marker")
	}
}

func TestRunDepacketizesToClipFrames(t *testing.T) {
	s, err := New()
	if err != nil {
		t.Fatal(err)
	}
	want, err := splitAccessUnits(clip)
	if err != nil {
		t.Fatal(err)
	}
	const frames = clipFrames + 30 // across the loop boundary
	pkts := collect(t, s, frames)

	dec := &rtph264.Decoder{PacketizationMode: 1}
	if err := dec.Init(); err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, p := range pkts {
		au, err := dec.Decode(p)
		if errors.Is(err, rtph264.ErrMorePacketsNeeded) {
			continue
		}
		if err != nil {
			t.Fatalf("frame %d: decode: %v", n, err)
		}
		w := want[n%len(want)]
		if len(au) != len(w) {
			t.Fatalf("frame %d: %d NALUs, want %d", n, len(au), len(w))
		}
		for j := range au {
			if !bytes.Equal(au[j], w[j]) {
				t.Fatalf("frame %d NALU %d differs from the clip", n, j)
			}
		}
		n++
	}
	if n != frames {
		t.Errorf("decoded %d frames, want %d", n, frames)
	}
}

func TestRunAgainContinuesAndRefusesOverlap(t *testing.T) {
	s, err := New()
	if err != nil {
		t.Fatal(err)
	}
	first := collect(t, s, 3)

	// A second Run while one is active must not interleave a second stream.
	ctx, cancel := context.WithCancel(context.Background())
	started := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		var once bool
		done <- s.Run(ctx, func(*rtp.Packet) {
			if !once {
				once = true
				close(started)
			}
		})
	}()
	<-started
	if err := s.Run(context.Background(), func(*rtp.Packet) {}); !errors.Is(err, ErrRunning) {
		t.Errorf("overlapping Run: err = %v, want ErrRunning", err)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}

	second := collect(t, s, 3)
	last, next := first[len(first)-1], second[0]
	if int16(next.SequenceNumber-last.SequenceNumber) <= 0 {
		t.Errorf("sequence went from %d back to %d across Runs", last.SequenceNumber, next.SequenceNumber)
	}
	if int32(next.Timestamp-last.Timestamp) <= 0 {
		t.Errorf("timestamp went from %d back to %d across Runs", last.Timestamp, next.Timestamp)
	}
	if !h264.IsRandomAccess(decodeFirst(t, second)) {
		t.Error("a new Run does not start on an IDR")
	}
}

func decodeFirst(t *testing.T, pkts []*rtp.Packet) [][]byte {
	t.Helper()
	dec := &rtph264.Decoder{PacketizationMode: 1}
	if err := dec.Init(); err != nil {
		t.Fatal(err)
	}
	for _, p := range pkts {
		au, err := dec.Decode(p)
		if err == nil {
			return au
		}
		if !errors.Is(err, rtph264.ErrMorePacketsNeeded) {
			t.Fatal(err)
		}
	}
	t.Fatal("no complete access unit")
	return nil
}

func TestSplitAccessUnits(t *testing.T) {
	sc := []byte{0, 0, 0, 1}
	nal := func(typ byte, firstMB0 bool) []byte {
		b := byte(0x00)
		if firstMB0 {
			b = 0x80
		}
		return []byte{0x60 | typ, b, 0xAA}
	}
	annexB := func(nalus ...[]byte) []byte {
		var out []byte
		for _, n := range nalus {
			out = append(append(out, sc...), n...)
		}
		return out
	}
	sps, pps, sei, aud := nal(7, true), nal(8, true), nal(6, true), nal(9, true)
	idr, p0, p1 := nal(5, true), nal(1, true), nal(1, false) // p1: a second slice

	for _, tc := range []struct {
		name string
		in   [][]byte
		want []int // NALUs per access unit
	}{
		{"one slice per picture", [][]byte{sps, pps, idr, p0, p0}, []int{3, 1, 1}},
		{"several slices per picture", [][]byte{sps, pps, idr, p1, p0, p1, p1}, []int{4, 3}},
		{"SEI and AUD start a unit", [][]byte{aud, sps, pps, sei, idr, aud, p0, sei, p0}, []int{5, 2, 2}},
		{"trailing non-VCL is dropped", [][]byte{idr, p0, sps}, []int{1, 1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			aus, err := splitAccessUnits(annexB(tc.in...))
			if err != nil {
				t.Fatal(err)
			}
			var got []int
			for _, au := range aus {
				got = append(got, len(au))
			}
			if len(got) != len(tc.want) {
				t.Fatalf("units %v, want %v", got, tc.want)
			}
			for i := range got {
				if got[i] != tc.want[i] {
					t.Fatalf("units %v, want %v", got, tc.want)
				}
			}
		})
	}
}
