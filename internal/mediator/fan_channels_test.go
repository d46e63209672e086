package mediator

import (
	"testing"

	"github.com/bluenviron/gortsplib/v4/pkg/base"
	"github.com/bluenviron/gortsplib/v4/pkg/description"
	"github.com/bluenviron/gortsplib/v4/pkg/format"
	"github.com/bluenviron/gortsplib/v4/pkg/headers"
	"github.com/pion/rtp"

	"github.com/ocm-overlay/ocm/internal/testutil"
)

// The fan sends each track on the interleaved channel it expects gortsplib
// to have answered in the track's SETUP (interleavedChannels copies a
// private gortsplib rule). Real sessions on a three-track stream set up
// one, two or three tracks, in any order, asking for channels or not:
// every RTP frame must come on the channel gortsplib's answer named for
// its track.
func TestFanChannelsMatchGortsplib(t *testing.T) {
	m := startMediator(t, func(m *Mediator) { m.Publish = true })
	url := "rtsp://" + m.Addr() + "/three"
	publishTracks(t, url, 3)

	type setup struct {
		track    int
		interlvd string // "" asks for no channel
	}
	for _, tc := range []struct {
		name   string
		setups []setup
	}{
		{"1 track, server chooses", []setup{{0, ""}}},
		{"1 track, asks 6-7", []setup{{1, "6-7"}}},
		{"2 tracks, server chooses", []setup{{0, ""}, {1, ""}}},
		{"2 tracks, asks 0-1 then none", []setup{{0, "0-1"}, {1, ""}}},
		{"2 tracks, asks 2-3 then none", []setup{{0, "2-3"}, {2, ""}}},
		{"3 tracks, server chooses, reversed", []setup{{2, ""}, {1, ""}, {0, ""}}},
		{"3 tracks, none, asks 8-9, none", []setup{{1, ""}, {0, "8-9"}, {2, ""}}},
		{"3 tracks, asks odd 1-2 then none", []setup{{0, "1-2"}, {1, ""}, {2, ""}}},
		{"3 tracks, all asked", []setup{{2, "10-11"}, {0, "4-5"}, {1, "0-1"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := dialRaw(t, m.Addr())
			desc := r.describe(url)
			base0, _ := base.ParseURL(url)
			answered := map[uint8]int{} // payload type of the track -> RTP channel gortsplib answered
			for _, s := range tc.setups {
				medi := desc.Medias[s.track]
				mu, err := medi.URL(base0)
				if err != nil {
					t.Fatal(err)
				}
				transport := "RTP/AVP/TCP;unicast"
				if s.interlvd != "" {
					transport += ";interleaved=" + s.interlvd
				}
				res := r.do(base.Setup, mu.String(), base.Header{"Transport": base.HeaderValue{transport}})
				var th headers.Transport
				if err := th.Unmarshal(res.Header["Transport"]); err != nil || th.InterleavedIDs == nil {
					t.Fatalf("SETUP of track %d answered Transport %v (%v), want interleaved IDs", s.track, res.Header["Transport"], err)
				}
				answered[medi.Formats[0].PayloadType()] = th.InterleavedIDs[0]
			}
			r.do(base.Play, url, nil)

			seen := map[uint8]bool{}
			for n := 0; len(seen) < len(answered); n++ {
				if n == 500 {
					t.Fatalf("after %d frames only the tracks %v came, on the channels gortsplib answered %v: "+
						"interleavedChannels (fan.go) no longer assigns channels as gortsplib does", n, seen, answered)
				}
				fr := r.frames(1)[0]
				if isRTCP(fr.Payload) && answeredRTCP(answered, fr.Channel) {
					continue // a sender report
				}
				var pkt rtp.Packet
				if err := pkt.Unmarshal(fr.Payload); err != nil {
					t.Fatalf("frame on channel %d: %v", fr.Channel, err)
				}
				want, ok := answered[pkt.PayloadType]
				if !ok {
					t.Fatalf("RTP of payload type %d, a track this session did not set up, on channel %d", pkt.PayloadType, fr.Channel)
				}
				if fr.Channel != want {
					t.Fatalf("gortsplib answered interleaved=%d-%d for the track of payload type %d, the fan sent it on channel %d: "+
						"interleavedChannels (fan.go) no longer assigns channels as gortsplib does (its private "+
						"ServerSession.findFreeChannelPair, or SetuppedMedias in SETUP order); setups %v, answers %v",
						want, want+1, pkt.PayloadType, fr.Channel, tc.setups, answered)
				}
				seen[pkt.PayloadType] = true
			}
		})
	}
}

// isRTCP tells an RTCP packet (payload types 200-207) from RTP.
func isRTCP(b []byte) bool { return len(b) > 1 && b[1] >= 200 && b[1] <= 207 }

// answeredRTCP reports whether ch is the RTCP channel of an answered pair.
func answeredRTCP(answered map[uint8]int, ch int) bool {
	for _, rtpCh := range answered {
		if ch == rtpCh+1 {
			return true
		}
	}
	return false
}

// publishTracks publishes n video tracks to url, payload types 96, 97, ...
func publishTracks(t *testing.T, url string, n int) {
	t.Helper()
	desc := &description.Session{}
	for i := range n {
		desc.Medias = append(desc.Medias, &description.Media{Type: description.MediaTypeVideo,
			Formats: []format.Format{&format.H264{PayloadTyp: uint8(96 + i), PacketizationMode: 1}}})
	}
	testutil.Publish(t, url, desc, func(n, i int) *rtp.Packet {
		return &rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: uint8(96 + i), SequenceNumber: uint16(n),
			Timestamp: uint32(n) * 3000, SSRC: uint32(i + 1), Marker: true}, Payload: []byte{0x05, 1}}
	})
}
