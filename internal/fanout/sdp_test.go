package fanout

import (
	"net/netip"
	"strings"
	"testing"
)

func TestSniffedMedia(t *testing.T) {
	cases := []struct {
		pt     uint8
		rtpmap string
		want   []string
	}{
		{96, "H264/90000", []string{"m=video 5004 RTP/AVP 96", "a=rtpmap:96 H264/90000", "a=fmtp:96 packetization-mode=1"}},
		{33, "H264/90000", []string{"m=video 5004 RTP/AVP 33", "a=rtpmap:33 MP2T/90000"}},
		{0, "", []string{"m=audio 5004 RTP/AVP 0", "a=rtpmap:0 PCMU/8000"}},
		{111, "opus/48000/2", []string{"m=audio 5004 RTP/AVP 111", "a=rtpmap:111 opus/48000/2"}},
	}
	out := Output{Addr: netip.MustParseAddrPort("239.0.0.9:5004"), TTL: 1}
	for _, c := range cases {
		s := string(sdpText(out, []sdpMedia{sniffedMedia(c.pt, c.rtpmap)}))
		for _, w := range append(c.want, "c=IN IP4 239.0.0.9/1") {
			if !strings.Contains(s, w+"\r\n") {
				t.Errorf("pt %d: sdp lacks %q:\n%s", c.pt, w, s)
			}
		}
	}
}

// An SDP as ffmpeg -sdp_file writes it: its formats are kept, its
// addresses and ports are replaced by the output's.
func TestMediasFromSDP(t *testing.T) {
	in := "v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns=No Name\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\na=tool:libavformat 59.27.100\r\n" +
		"m=video 40000 RTP/AVP 96\r\nb=AS:200\r\na=rtpmap:96 H264/90000\r\n" +
		"a=fmtp:96 packetization-mode=1; sprop-parameter-sets=Z2QADKzZQUH7ARAAAAMAEAAAAwMg8UKZYA==,aOvjyyLA; profile-level-id=64000C\r\na=control:streamid=0\r\n"
	ms, err := mediasFromSDP([]byte(in), 40000)
	if err != nil {
		t.Fatal(err)
	}
	s := string(sdpText(Output{Addr: netip.MustParseAddrPort("[ff15::7]:6000")}, ms))
	for _, w := range []string{"c=IN IP6 ff15::7\r\n", "m=video 6000 RTP/AVP 96\r\n", "a=rtpmap:96 H264/90000\r\n", "sprop-parameter-sets=Z2QADKzZQUH7ARAAAAMAEAAAAwMg8UKZYA==,aOvjyyLA"} {
		if !strings.Contains(s, w) {
			t.Errorf("sdp lacks %q:\n%s", w, s)
		}
	}
	if strings.Contains(s, "control") || strings.Contains(s, "40000") {
		t.Errorf("sdp keeps the input's control or port:\n%s", s)
	}
	if _, err := mediasFromSDP([]byte("v=0\r\n"), 1); err == nil {
		t.Error("an SDP without media was accepted")
	}
}
