package testutil

import (
	"context"
	"testing"
	"time"

	"github.com/bluenviron/gortsplib/v4"
	"github.com/bluenviron/gortsplib/v4/pkg/description"
	"github.com/bluenviron/gortsplib/v4/pkg/format"
	"github.com/pion/rtp"
)

// PublishAV publishes a stream of two tracks to url (RTSP ANNOUNCE and
// RECORD over TCP, with gortsplib's client): H264 video, then G.711 audio,
// one packet of each every 20 ms until the test ends, every packet with
// its marker bit set. seq gives the sequence number of the n-th packet of
// the video track (nil: n); the audio track's is 20000 more, since every
// track of a real stream numbers its packets on its own.
func PublishAV(t testing.TB, url string, seq func(n int) uint16) {
	t.Helper()
	if seq == nil {
		seq = func(n int) uint16 { return uint16(n) }
	}
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
	Publish(t, url, desc, func(n, i int) *rtp.Packet {
		return &rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: desc.Medias[i].Formats[0].PayloadType(),
			SequenceNumber: seq(n) + uint16(i)*20000, Timestamp: uint32(n) * 160, SSRC: uint32(i + 1), Marker: true},
			Payload: []byte{0x05, 1, 2, 3}}
	})
}

// Publish publishes desc to url (RTSP ANNOUNCE and RECORD over TCP, with
// gortsplib's client), writing packet(n, i), the n-th packet of media i,
// for every media every 20 ms until the test ends.
func Publish(t testing.TB, url string, desc *description.Session, packet func(n, i int) *rtp.Packet) {
	t.Helper()
	tcp := gortsplib.TransportTCP
	c := &gortsplib.Client{Transport: &tcp}
	if err := c.StartRecording(url, desc); err != nil {
		t.Fatalf("publish %s: %v", url, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	t.Cleanup(func() { cancel(); <-done; c.Close() })
	go func() {
		defer close(done)
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for n := 0; ; n++ {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			for i, medi := range desc.Medias {
				if err := c.WritePacketRTP(medi, packet(n, i)); err != nil {
					return
				}
			}
		}
	}()
}
