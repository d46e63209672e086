package mediator

import (
	"net/url"
	"strings"
	"testing"

	"github.com/bluenviron/gortsplib/v4/pkg/base"
	"github.com/bluenviron/gortsplib/v4/pkg/sdp"

	"github.com/ocm-overlay/ocm/internal/testutil"
)

// Every player sets up every track of an audio and video stream on one
// session, however it builds a track's URL from the DESCRIBE answer: as RFC
// 3986 resolves a relative reference against Content-Base (GStreamer), or
// by appending the control to Content-Base (ffmpeg). With relative
// controls under a Content-Base that carries the enhanced query, the first
// way lost the query and the path, and the second SETUP was refused.
func TestDescribeEveryTrackSetsUp(t *testing.T) {
	origin := startMediator(t, func(m *Mediator) { m.Publish = true })
	relay := startMediator(t, nil)
	testutil.PublishAV(t, "rtsp://"+origin.Addr()+"/av", nil)

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
