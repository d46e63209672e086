package rtspmediator

import (
	"context"
	"testing"
	"time"

	"github.com/ocm-overlay/ocm/internal/event"
	"github.com/ocm-overlay/ocm/internal/mediator"
	"github.com/ocm-overlay/ocm/internal/testutil"
)

// rtsp-mediator read counts sequence gaps per track: an audio and video
// stream with nothing missing shows nothing lost (it used to count each
// track's numbers as gaps in the other's), and a restarted origin's new
// numbering is counted as renumbered, not as thousands of packets lost.
// Frames are the video track's.
func TestReadCountsPerTrack(t *testing.T) {
	for _, tc := range []struct {
		name           string
		seq            func(n int) uint16
		wantRenumbered uint64
	}{
		{"in order", func(n int) uint16 { return uint16(1000 + n) }, 0},
		{"renumbered", func(n int) uint16 {
			if n < 40 {
				return uint16(1000 + n)
			}
			return uint16(40000 + n)
		}, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := &mediator.Mediator{Listen: "127.0.0.1:0", Publish: true}
			if err := m.Start(); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(m.Close)
			testutil.PublishAV(t, "rtsp://"+m.Addr()+"/av", tc.seq)

			var out testutil.Buffer
			cmd := newReadCommand()
			cmd.SetArgs([]string{"rtsp://" + m.Addr() + "/av", "--duration", "2s"})
			cmd.SetOut(&out)
			cmd.SetErr(&out)
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			if err := cmd.ExecuteContext(ctx); err != nil {
				t.Fatalf("read: %v\n%s", err, out.String())
			}
			sums := testutil.Find[event.ReadSummary](t, &out)
			if len(sums) != 1 {
				t.Fatalf("want one summary line, got:\n%s", out.String())
			}
			s := sums[0]
			packets, frames := s.Packets, s.Frames
			t.Logf("summary: %+v", s)
			if packets < 40 || s.Lost != 0 || s.Renumbered != tc.wantRenumbered {
				t.Errorf("summary %+v: want 40+ packets, 0 lost, %v renumbered", s, tc.wantRenumbered)
			}
			// Every packet has its marker bit; only the video's are frames.
			if frames < packets/2-2 || frames > packets/2+2 {
				t.Errorf("%v frames of %v packets: want the video track's, about half", frames, packets)
			}
		})
	}
}
