package mediator

import (
	"context"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/bluenviron/gortsplib/v4"
	"github.com/bluenviron/gortsplib/v4/pkg/base"
	"github.com/bluenviron/gortsplib/v4/pkg/description"
	"github.com/bluenviron/gortsplib/v4/pkg/format"
	"github.com/bluenviron/gortsplib/v4/pkg/sdp"
	"github.com/pion/rtp"
)

// publishAV publishes a video and an audio track to url with gortsplib's
// client, a packet of each every 20 ms, until the test ends.
func publishAV(t *testing.T, rawURL string) {
	t.Helper()
	desc := &description.Session{Medias: []*description.Media{
		{Type: description.MediaTypeVideo, Formats: []format.Format{&format.H264{
			PayloadTyp: 96, PacketizationMode: 1,
			SPS: []byte{0x67, 0x42, 0xc0, 0x1e, 0xd9, 0x00, 0xa0, 0x47, 0xfe, 0xc8},
			PPS: []byte{0x68, 0xce, 0x3c, 0x80},
		}}},
		{Type: description.MediaTypeAudio, Formats: []format.Format{&format.G711{
			PayloadTyp: 0, MULaw: true, SampleRate: 8000, ChannelCount: 1,
		}}},
	}}
	tcp := gortsplib.TransportTCP
	c := &gortsplib.Client{Transport: &tcp}
	if err := c.StartRecording(rawURL, desc); err != nil {
		t.Fatalf("publish %s: %v", rawURL, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	t.Cleanup(func() { cancel(); <-done; c.Close() })
	go func() {
		defer close(done)
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for seq := uint16(0); ; seq++ {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			for i, medi := range desc.Medias {
				pkt := &rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: medi.Formats[0].PayloadType(),
					SequenceNumber: seq, Timestamp: uint32(seq) * 160, SSRC: uint32(i + 1), Marker: true},
					Payload: []byte{0x05, 1, 2, 3}}
				if err := c.WritePacketRTP(medi, pkt); err != nil {
					return
				}
			}
		}
	}()
}

// Every player sets up every track of an audio and video stream on one
// session, however it builds a track's URL from the DESCRIBE answer: as RFC
// 3986 resolves a relative reference against Content-Base (GStreamer), or
// by appending the control to Content-Base (ffmpeg). With relative
// controls under a Content-Base that carries the enhanced query, the first
// way lost the query and the path, and the second SETUP was refused.
func TestDescribeEveryTrackSetsUp(t *testing.T) {
	origin := startMediator(t, func(m *Mediator) { m.Publish = true })
	relay := startMediator(t, nil)
	publishAV(t, "rtsp://"+origin.Addr()+"/av")

	resolvers := map[string]func(base, control string) string{
		"rfc3986": func(b, control string) string {
			bu, err := url.Parse(b)
			if err != nil {
				t.Fatal(err)
			}
			cu, err := url.Parse(control)
			if err != nil {
				t.Fatal(err)
			}
			return bu.ResolveReference(cu).String()
		},
		"append": func(b, control string) string {
			if strings.HasPrefix(control, "rtsp://") {
				return control
			}
			return strings.TrimSuffix(b, "/") + "/" + control
		},
	}
	for _, target := range []struct{ name, url string }{
		{"origin", "rtsp://" + origin.Addr() + "/av"},
		{"relay", "rtsp://" + relay.Addr() + "/av?" + origin.Addr()},
	} {
		for rname, resolve := range resolvers {
			t.Run(target.name+"/"+rname, func(t *testing.T) {
				r := dialRaw(t, strings.SplitN(target.url, "/", 4)[2])
				res := r.do(base.Describe, target.url, base.Header{"Accept": base.HeaderValue{"application/sdp"}})
				var sd sdp.SessionDescription
				if err := sd.Unmarshal(res.Body); err != nil {
					t.Fatal(err)
				}
				if len(sd.MediaDescriptions) != 2 {
					t.Fatalf("DESCRIBE answered %d medias, want 2:\n%s", len(sd.MediaDescriptions), res.Body)
				}
				contentBase := res.Header["Content-Base"][0]
				for i, md := range sd.MediaDescriptions {
					control, _ := md.Attribute("control")
					u := resolve(contentBase, control)
					th := "RTP/AVP/TCP;unicast;interleaved=" + itoa(2*i) + "-" + itoa(2*i+1)
					r.do(base.Setup, u, base.Header{"Transport": base.HeaderValue{th}})
				}
				r.do(base.Play, contentBase, nil)
				seen := map[int]int{}
				for _, fr := range r.frames(40) {
					seen[fr.Channel]++
				}
				if seen[0] == 0 || seen[2] == 0 {
					t.Fatalf("frames per channel %v, want RTP on channels 0 (video) and 2 (audio)", seen)
				}
			})
		}
	}
}
