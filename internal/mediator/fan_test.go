package mediator

import (
	"errors"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/bluenviron/gortsplib/v4/pkg/base"
	"github.com/bluenviron/gortsplib/v4/pkg/conn"
	"github.com/bluenviron/gortsplib/v4/pkg/description"
	"github.com/bluenviron/gortsplib/v4/pkg/headers"
	"github.com/bluenviron/gortsplib/v4/pkg/sdp"
	"github.com/pion/rtcp"
	"github.com/pion/rtp"
)

// rawReader speaks RTSP over a plain TCP connection, so a test controls
// the Transport header and sees every byte the mediator sends in order.
type rawReader struct {
	t       *testing.T
	nc      net.Conn
	c       *conn.Conn
	cseq    int
	session string
}

func dialRaw(t *testing.T, addr string) *rawReader {
	t.Helper()
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	return &rawReader{t: t, nc: nc, c: conn.NewConn(nc)}
}

// do sends a request and returns its response; any interleaved frame
// arriving first fails the test (nothing may precede a response).
func (r *rawReader) do(method base.Method, url string, h base.Header) *base.Response {
	r.t.Helper()
	r.cseq++
	if h == nil {
		h = base.Header{}
	}
	h["CSeq"] = base.HeaderValue{itoa(r.cseq)}
	if r.session != "" {
		h["Session"] = base.HeaderValue{r.session}
	}
	u, err := base.ParseURL(url)
	if err != nil {
		r.t.Fatal(err)
	}
	if err := r.c.WriteRequest(&base.Request{Method: method, URL: u, Header: h}); err != nil {
		r.t.Fatal(err)
	}
	_ = r.nc.SetReadDeadline(time.Now().Add(10 * time.Second))
	msg, err := r.c.Read()
	if err != nil {
		r.t.Fatalf("%s: %v", method, err)
	}
	res, ok := msg.(*base.Response)
	if !ok {
		r.t.Fatalf("%s: got %T before the response", method, msg)
	}
	if res.StatusCode != base.StatusOK {
		r.t.Fatalf("%s: %d %s", method, res.StatusCode, res.StatusMessage)
	}
	if s, ok := res.Header["Session"]; ok && r.session == "" {
		r.session = strings.Split(s[0], ";")[0]
	}
	return res
}

// frames reads n interleaved frames, skipping nothing.
func (r *rawReader) frames(n int) []*base.InterleavedFrame {
	r.t.Helper()
	var out []*base.InterleavedFrame
	_ = r.nc.SetReadDeadline(time.Now().Add(10 * time.Second))
	for len(out) < n {
		msg, err := r.c.Read()
		if err != nil {
			r.t.Fatalf("after %d frames: %v", len(out), err)
		}
		fr, ok := msg.(*base.InterleavedFrame)
		if !ok {
			r.t.Fatalf("got %T among frames", msg)
		}
		// conn.Conn reuses its frame and buffer for the next read
		out = append(out, &base.InterleavedFrame{Channel: fr.Channel, Payload: append([]byte(nil), fr.Payload...)})
	}
	return out
}

func itoa(i int) string { return strconv.Itoa(i) }

// describe returns the description a DESCRIBE of url answers.
func (r *rawReader) describe(url string) *description.Session {
	r.t.Helper()
	res := r.do(base.Describe, url, base.Header{"Accept": base.HeaderValue{"application/sdp"}})
	var sd sdp.SessionDescription
	if err := sd.Unmarshal(res.Body); err != nil {
		r.t.Fatal(err)
	}
	var desc description.Session
	if err := desc.Unmarshal(&sd); err != nil {
		r.t.Fatal(err)
	}
	return &desc
}

// setupPlay describes url and sets up its one media with transport th.
func (r *rawReader) setupPlay(url, transport string) headers.Transport {
	r.t.Helper()
	desc := r.describe(url)
	u, _ := base.ParseURL(url)
	mu, err := desc.Medias[0].URL(u)
	if err != nil {
		r.t.Fatal(err)
	}
	res := r.do(base.Setup, mu.String(), base.Header{"Transport": base.HeaderValue{transport}})
	var th headers.Transport
	if err := th.Unmarshal(res.Header["Transport"]); err != nil {
		r.t.Fatal(err)
	}
	r.do(base.Play, url, nil)
	return th
}

// A TCP reader gets the stream from the fan on the channel the SETUP
// answer named, with the SSRC it announced, in sequence, and only after
// the PLAY answer; PAUSE stops it and PLAY resumes it; other readers on
// the same stream are served throughout.
func TestFanTCPReaders(t *testing.T) {
	m := startMediator(t, func(m *Mediator) { m.TestSource = "test" })
	url := "rtsp://" + m.Addr() + "/test"
	other := startReader(t, url)

	for _, tc := range []struct {
		name, transport string
		channel         uint8
	}{
		{"server-chosen channel", "RTP/AVP/TCP;unicast", 0},
		{"client-chosen channel", "RTP/AVP/TCP;unicast;interleaved=6-7", 6},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := dialRaw(t, m.Addr())
			th := r.setupPlay(url, tc.transport)
			if th.InterleavedIDs == nil || th.InterleavedIDs[0] != int(tc.channel) {
				t.Fatalf("SETUP answered interleaved %v, want %d", th.InterleavedIDs, tc.channel)
			}
			if th.SSRC == nil {
				t.Fatal("SETUP answer has no ssrc")
			}
			var last uint16
			rtpSeen := 0
			for i, fr := range r.frames(60) {
				if fr.Channel == int(tc.channel)+1 {
					continue // RTCP
				}
				if fr.Channel != int(tc.channel) {
					t.Fatalf("frame %d on channel %d, want %d", i, fr.Channel, tc.channel)
				}
				var pkt rtp.Packet
				if err := pkt.Unmarshal(fr.Payload); err != nil {
					t.Fatalf("frame %d: %v", i, err)
				}
				if pkt.SSRC != *th.SSRC {
					t.Fatalf("SSRC %08x, SETUP announced %08x", pkt.SSRC, *th.SSRC)
				}
				if rtpSeen > 0 && pkt.SequenceNumber != last+1 {
					t.Fatalf("sequence %d after %d", pkt.SequenceNumber, last)
				}
				last = pkt.SequenceNumber
				rtpSeen++
			}
		})
	}
	other.waitPackets(t, 25)
}

// PAUSE stops the fan's frames for that reader until the next PLAY.
func TestFanPauseResume(t *testing.T) {
	m := startMediator(t, func(m *Mediator) { m.TestSource = "test" })
	url := "rtsp://" + m.Addr() + "/test"
	r := dialRaw(t, m.Addr())
	r.setupPlay(url, "RTP/AVP/TCP;unicast;interleaved=0-1")
	r.frames(10)

	// The PAUSE answer arrives among frames already sent; after it none.
	r.cseq++
	u, _ := base.ParseURL(url)
	if err := r.c.WriteRequest(&base.Request{Method: base.Pause, URL: u, Header: base.Header{
		"CSeq": base.HeaderValue{itoa(r.cseq)}, "Session": base.HeaderValue{r.session}}}); err != nil {
		t.Fatal(err)
	}
	_ = r.nc.SetReadDeadline(time.Now().Add(10 * time.Second))
	for {
		msg, err := r.c.Read()
		if err != nil {
			t.Fatal(err)
		}
		if res, ok := msg.(*base.Response); ok {
			if res.StatusCode != base.StatusOK {
				t.Fatalf("PAUSE: %d", res.StatusCode)
			}
			break
		}
	}
	_ = r.nc.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	if msg, err := r.c.Read(); err == nil {
		t.Fatalf("got %T while paused", msg)
	} else if ne := (net.Error)(nil); !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("read while paused: %v", err)
	}
	r.c = conn.NewConn(r.nc) // the timed-out read left the buffered reader unusable
	r.do(base.Play, url, nil)
	r.frames(10)
}

// A reader that stops reading is dropped once it is coalesceLimit behind;
// until then writes to it never block the caller.
func TestCoalescingConnSlowReader(t *testing.T) {
	a, b := net.Pipe() // unbuffered: nothing is read from b
	defer b.Close()
	c := newCoalescingConn(a)
	payload := make([]byte, 1400)
	var err error
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; i < 2*coalesceLimit/len(payload) && err == nil; i++ {
			err = c.frame(0, payload, true)
		}
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("frame blocked on a reader that does not read")
	}
	if !errors.Is(err, errSlowReader) {
		t.Fatalf("err %v, want errSlowReader", err)
	}
	if _, err := a.Write([]byte("x")); err == nil {
		t.Fatal("the slow reader's connection is still open")
	}
}

// Sender reports reach TCP readers on the RTCP channel with the stream's
// SSRC.
func TestFanSenderReport(t *testing.T) {
	defer func(p time.Duration) { senderReportPeriod = p }(senderReportPeriod)
	senderReportPeriod = 200 * time.Millisecond
	m := startMediator(t, func(m *Mediator) { m.TestSource = "test" })
	url := "rtsp://" + m.Addr() + "/test"
	r := dialRaw(t, m.Addr())
	th := r.setupPlay(url, "RTP/AVP/TCP;unicast;interleaved=0-1")
	for {
		fr := r.frames(1)[0]
		if fr.Channel != 1 {
			continue
		}
		pkts, err := rtcp.Unmarshal(fr.Payload)
		if err != nil {
			t.Fatal(err)
		}
		sr, ok := pkts[0].(*rtcp.SenderReport)
		if !ok || sr.SSRC != *th.SSRC {
			t.Fatalf("RTCP %+v, want a sender report from %08x", pkts[0], *th.SSRC)
		}
		return
	}
}

// A player joining a playing stream gets its video from the first packet
// of a keyframe (the test source sends SPS, PPS and IDR before each GOP),
// never the P-frames of the GOP it joined in; a downstream relay is not
// held back.
func TestFanPlayerStartsAtKeyframe(t *testing.T) {
	m := startMediator(t, func(m *Mediator) { m.TestSource = "test" })
	url := "rtsp://" + m.Addr() + "/test"
	other := startReader(t, url)
	other.waitPackets(t, 25)
	for i := range 3 {
		// The test source aggregates SPS and PPS in one STAP-A (24)
		// before each IDR.
		p := firstVideoPacket(t, m.Addr(), url).Payload
		if typ := p[0] & 0x1f; typ != 24 || len(p) < 4 || p[3]&0x1f != 7 {
			t.Errorf("join %d: first video packet starts % x, want a STAP-A of the SPS (78 .. .. 67)", i, p[:min(4, len(p))])
		}
		time.Sleep(130 * time.Millisecond) // join at another point of the GOP
	}
}

// firstVideoPacket plays url on the mediator at addr over TCP and returns
// the first RTP packet of its first media.
func firstVideoPacket(t *testing.T, addr, url string) *rtp.Packet {
	t.Helper()
	r := dialRaw(t, addr)
	defer r.nc.Close()
	r.setupPlay(url, "RTP/AVP/TCP;unicast")
	for {
		for _, fr := range r.frames(1) {
			if fr.Channel != 0 {
				continue
			}
			var pkt rtp.Packet
			if err := pkt.Unmarshal(fr.Payload); err != nil {
				t.Fatal(err)
			}
			return &pkt
		}
	}
}

func TestKeyStart(t *testing.T) {
	for _, tc := range []struct {
		name    string
		payload []byte
		h264    bool
		want    bool
	}{
		{"h264 sps", []byte{0x67, 1}, true, true},
		{"h264 idr", []byte{0x65, 1}, true, true},
		{"h264 p slice", []byte{0x41, 1}, true, false},
		{"h264 stap-a with sps", []byte{0x78, 0, 2, 0x67, 1, 0, 1, 0x68}, true, true},
		{"h264 stap-a of p", []byte{0x78, 0, 2, 0x41, 1}, true, false},
		{"h264 stap-a truncated", []byte{0x78, 0, 9, 0x67}, true, false},
		{"h264 fu-a idr start", []byte{0x7c, 0x85, 1}, true, true},
		{"h264 fu-a idr middle", []byte{0x7c, 0x05, 1}, true, false},
		{"h264 fu-a p start", []byte{0x7c, 0x81, 1}, true, false},
		{"h264 empty", nil, true, false},
		{"h265 idr_w_radl", []byte{19 << 1, 1, 0}, false, true},
		{"h265 trail", []byte{1 << 1, 1, 0}, false, false},
		{"h265 ap with vps", []byte{48 << 1, 1, 0, 3, 32 << 1, 1, 0}, false, true},
		{"h265 fu idr start", []byte{49 << 1, 1, 0x80 | 19, 0}, false, true},
		{"h265 fu idr middle", []byte{49 << 1, 1, 19, 0}, false, false},
	} {
		f := h265KeyStart
		if tc.h264 {
			f = h264KeyStart
		}
		if got := f(&rtp.Packet{Payload: tc.payload}); got != tc.want {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}
}

// A player's wait for a keyframe is bounded: with no wait at all, it gets
// the stream from wherever it joined (here, a point of the GOP after its
// keyframe), as a player of a stream without keyframes does after
// KeyframeWait.
func TestFanKeyframeWaitBounded(t *testing.T) {
	m := startMediator(t, func(m *Mediator) { m.TestSource = "test"; m.KeyframeWait = -1 })
	url := "rtsp://" + m.Addr() + "/test"
	other := startReader(t, url)
	other.waitPackets(t, 25)
	notKey := 0
	for range 3 {
		if !h264KeyStart(firstVideoPacket(t, m.Addr(), url)) {
			notKey++
		}
		time.Sleep(130 * time.Millisecond)
	}
	if notKey == 0 {
		t.Error("every join started at a keyframe with no wait allowed")
	}
}
