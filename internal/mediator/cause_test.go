package mediator

import (
	"bufio"
	"fmt"
	"net"
	"net/textproto"
	"strings"
	"testing"
	"time"

	"github.com/ocm-overlay/ocm/internal/testutil"
)

// fakeOrigin answers every RTSP request on a real socket with reply,
// which may hold %s for the request's CSeq.
func fakeOrigin(t *testing.T, reply string) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	testutil.Serve(t, ln, liveness, func(c net.Conn) {
		tp := textproto.NewReader(bufio.NewReader(c))
		for {
			if _, err := tp.ReadLine(); err != nil {
				return
			}
			h, err := tp.ReadMIMEHeader()
			if err != nil {
				return
			}
			if _, err := fmt.Fprintf(c, reply, h.Get("CSeq")); err != nil {
				return
			}
		}
	})
	return ln.Addr().String()
}

// An error answer says what failed in the mediator's own words: nothing
// the origin sent (status text, body, garbage) reaches the player.
func TestErrorAnswersDoNotEchoTheOrigin(t *testing.T) {
	const secret = "S3CRET-internal-10.9.8.7"
	sdp := "v=0\r\no=- 0 0 IN IP4 " + secret + "\r\ns=" + secret + "\r\nm=video 0 RTP/AVP 96\r\na=rtpmap:96 " + secret + "/90000\r\n"
	cases := []struct{ name, reply string }{
		{"status text", "RTSP/1.0 404 " + secret + "\r\nCSeq: %s\r\n\r\n"},
		{"garbage", secret + " \x01\x02 not RTSP at all %s\r\n\r\n"},
		{"bad SDP", "RTSP/1.0 200 OK\r\nCSeq: %s\r\nContent-Type: application/sdp\r\nContent-Base: rtsp://" + secret + "/\r\n" +
			fmt.Sprintf("Content-Length: %d\r\n\r\n", len(sdp)) + sdp},
	}
	m := startMediator(t, nil)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			origin := fakeOrigin(t, tc.reply)
			r := dialRaw(t, m.Addr())
			_ = r.nc.SetDeadline(time.Now().Add(liveness))
			fmt.Fprintf(r.nc, "DESCRIBE rtsp://%s/live?%s RTSP/1.0\r\nCSeq: 1\r\n\r\n", m.Addr(), origin)
			line, err := bufio.NewReader(r.nc).ReadString('\n')
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("answer: %s", strings.TrimSpace(line))
			if !strings.HasPrefix(line, "RTSP/1.0 5") || !strings.Contains(line, "origin "+origin) {
				t.Errorf("answer %q: want a 5xx naming the origin", line)
			}
			for _, leak := range []string{secret, "10.9.8.7", "internal", "S3CRET", "83 51 67 82 69 84", "5333435245"} {
				if strings.Contains(line, leak) {
					t.Errorf("answer %q carries %q from the origin's reply", line, leak)
				}
			}
		})
	}
}
