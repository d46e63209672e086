package fanout

import (
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bluenviron/gortsplib/v4"
	"github.com/bluenviron/gortsplib/v4/pkg/base"
	"github.com/bluenviron/gortsplib/v4/pkg/description"
	"github.com/bluenviron/gortsplib/v4/pkg/format"
	"github.com/ocm-overlay/ocm/internal/testutil/udptest"
	"github.com/pion/rtp"
)

// rtspOrigin is a minimal RTSP server with one H264 stream, standing in
// for any standards server.
type rtspOrigin struct {
	srv    *gortsplib.Server
	stream *gortsplib.ServerStream
	media  *description.Media
	addr   string
	once   sync.Once
	ready  chan struct{} // closed once stream is set: the server answers before
}

func (o *rtspOrigin) close() {
	o.once.Do(func() { o.stream.Close(); o.srv.Close() })
}

func (o *rtspOrigin) OnDescribe(*gortsplib.ServerHandlerOnDescribeCtx) (*base.Response, *gortsplib.ServerStream, error) {
	<-o.ready
	return &base.Response{StatusCode: base.StatusOK}, o.stream, nil
}

func (o *rtspOrigin) OnSetup(*gortsplib.ServerHandlerOnSetupCtx) (*base.Response, *gortsplib.ServerStream, error) {
	<-o.ready
	return &base.Response{StatusCode: base.StatusOK}, o.stream, nil
}

func (o *rtspOrigin) OnPlay(*gortsplib.ServerHandlerOnPlayCtx) (*base.Response, error) {
	return &base.Response{StatusCode: base.StatusOK}, nil
}

func newRTSPOrigin(t *testing.T) *rtspOrigin { return newRTSPOriginAt(t, "127.0.0.1:0") }

// newRTSPOriginAt listens on addr: an origin restarted where it was.
func newRTSPOriginAt(t *testing.T, addr string) *rtspOrigin {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	o := &rtspOrigin{addr: ln.Addr().String(), ready: make(chan struct{})}
	o.srv = &gortsplib.Server{
		Handler:     o,
		RTSPAddress: o.addr,
		Listen:      func(string, string) (net.Listener, error) { return ln, nil },
	}
	// UDP transport wants an even port and the next one: bind a pair here
	// and hand the sockets over, so no fixed port is needed.
	rtpC, rtcpC := udptest.Pair(t)
	byAddr := map[string]net.PacketConn{rtpC.LocalAddr().String(): rtpC, rtcpC.LocalAddr().String(): rtcpC}
	o.srv.UDPRTPAddress, o.srv.UDPRTCPAddress = rtpC.LocalAddr().String(), rtcpC.LocalAddr().String()
	o.srv.ListenPacket = func(network, address string) (net.PacketConn, error) {
		if c, ok := byAddr[address]; ok {
			return c, nil
		}
		return net.ListenPacket(network, address)
	}
	if err := o.srv.Start(); err != nil {
		t.Fatal(err)
	}
	o.media = &description.Media{
		Type: description.MediaTypeVideo,
		Formats: []format.Format{&format.H264{
			PayloadTyp:        96,
			PacketizationMode: 1,
			SPS:               []byte{0x67, 0x42, 0xc0, 0x1e, 0xd9, 0x00, 0xa0, 0x47, 0xfe, 0xc8},
			PPS:               []byte{0x68, 0xcb, 0x8c, 0xb2},
		}},
	}
	o.stream = &gortsplib.ServerStream{Server: o.srv, Desc: &description.Session{Medias: []*description.Media{o.media}}}
	if err := o.stream.Initialize(); err != nil {
		t.Fatal(err)
	}
	close(o.ready)
	t.Cleanup(o.close)
	return o
}

// feed writes RTP packets until stop is closed.
func (o *rtspOrigin) feed(stop <-chan struct{}) {
	var seq uint16
	for {
		select {
		case <-stop:
			return
		case <-time.After(2 * time.Millisecond):
		}
		seq++
		_ = o.stream.WritePacketRTP(o.media, &rtp.Packet{
			Header:  rtp.Header{Version: 2, PayloadType: 96, SequenceNumber: seq, Timestamp: uint32(seq) * 3600, SSRC: 0x11223344, Marker: true},
			Payload: []byte{0x65, 0x88, 0x84, 0x00, 0x33, 0xff},
		})
	}
}

func TestRTSPInput(t *testing.T) {
	for _, transport := range []string{"tcp", "udp"} {
		t.Run(transport, func(t *testing.T) {
			o := newRTSPOrigin(t)
			rtpR, rtcpR := receiverPair(t)
			path := filepath.Join(t.TempDir(), "out.sdp")
			f := startFanout(t, &Fanout{
				From:          "rtsp://" + o.addr + "/live?origin.example:554",
				To:            []string{rtpR.URL()},
				RTSPTransport: transport,
				SDPFile:       path,
			})
			stop := make(chan struct{})
			var wg sync.WaitGroup
			wg.Add(1)
			go func() { defer wg.Done(); o.feed(stop) }()
			t.Cleanup(func() { close(stop); wg.Wait() })

			waitStats(t, f, []*udptest.Receiver{rtpR}, "50 packets", func() bool { return rtpR.RTP.Load() >= 50 })
			st := f.Stats()
			if st.In.Packets < 50 || st.Out[0].Packets < 50 || st.In.Drops != 0 {
				t.Errorf("stats: %+v", st)
			}
			if transport == "tcp" && st.In.Gaps != 0 {
				t.Errorf("gaps over tcp: %+v", st.In)
			}
			_ = rtcpR // the origin's sender reports come every 10 s: not waited for

			b, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			for _, want := range []string{"m=video " + strconv.Itoa(int(rtpR.Addr.Port())) + " RTP/AVP 96", "a=rtpmap:96 H264/90000", "packetization-mode=1"} {
				if !strings.Contains(string(b), want) {
					t.Errorf("sdp lacks %q:\n%s", want, b)
				}
			}
		})
	}
}

// waitEnd returns what f.Wait returns once the input has ended; the
// limit only bounds a broken test.
func waitEnd(t *testing.T, f *Fanout) error {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- f.Wait() }()
	select {
	case err := <-done:
		return err
	case <-time.After(30 * time.Second):
		t.Fatal("Wait did not return: the input did not end")
		return nil
	}
}

func TestRTSPInputEndsWhenServerGoes(t *testing.T) {
	o := newRTSPOrigin(t)
	r := udptest.NewReceiver(t)
	f := startFanout(t, &Fanout{From: "rtsp://" + o.addr + "/live", To: []string{r.URL()}, RTSPTransport: "tcp"})
	o.close()
	if err := waitEnd(t, f); err == nil || !strings.Contains(err.Error(), "rtsp") {
		t.Errorf("Wait() = %v, want an rtsp error", err)
	}
}

// An rtsp input whose server restarts is opened again; the outputs keep
// receiving and nothing ends.
func TestRTSPInputReconnects(t *testing.T) {
	o := newRTSPOrigin(t)
	r := udptest.NewReceiver(t)
	f := startFanout(t, &Fanout{From: "rtsp://" + o.addr + "/live", To: []string{r.URL()}, RTSPTransport: "tcp",
		RTSPReconnect: time.Minute})
	feed := func(o *rtspOrigin) func() {
		stop := make(chan struct{})
		var wg sync.WaitGroup
		wg.Add(1)
		go func() { defer wg.Done(); o.feed(stop) }()
		return func() { close(stop); wg.Wait() }
	}
	stop := feed(o)
	waitStats(t, f, []*udptest.Receiver{r}, "20 packets", func() bool { return r.RTP.Load() >= 20 })
	stop()
	o.close()

	o2 := newRTSPOriginAt(t, o.addr)
	t.Cleanup(feed(o2))
	before := r.RTP.Load()
	waitStats(t, f, []*udptest.Receiver{r}, "20 packets after the restart", func() bool { return r.RTP.Load() >= before+20 })
	if st := f.Stats(); st.In.Reconnects != 1 {
		t.Errorf("reconnects %d, want 1", st.In.Reconnects)
	}
	select {
	case <-f.done:
		t.Fatalf("the fanout ended: %v", f.err)
	default:
	}
}

// Reconnecting gives up after RTSPReconnect, with the loss and the last
// try in the error.
func TestRTSPInputGivesUp(t *testing.T) {
	o := newRTSPOrigin(t)
	r := udptest.NewReceiver(t)
	f := startFanout(t, &Fanout{From: "rtsp://" + o.addr + "/live", To: []string{r.URL()}, RTSPTransport: "tcp",
		RTSPReconnect: 600 * time.Millisecond})
	o.close()
	if err := waitEnd(t, f); err == nil || !strings.Contains(err.Error(), "gave up reconnecting") {
		t.Errorf("Wait() = %v, want a gave-up error", err)
	}
}
