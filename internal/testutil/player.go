package testutil

import (
	"testing"

	"github.com/ocm-overlay/ocm/internal/lab"
	"github.com/pion/rtp"
)

// Play opens url as a player would, over TCP, and hands every RTP packet
// to onPacket; it fails the test if the stream does not play. The player
// is lab's reader, and closes when the test ends.
func Play(t testing.TB, url string, onPacket func(*rtp.Packet)) *lab.Reader {
	t.Helper()
	r, err := lab.Dial(url, lab.ReaderOptions{OnPacket: onPacket})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.Close)
	return r
}
