package rtspmediator

import (
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/bluenviron/gortsplib/v4"
	"github.com/bluenviron/gortsplib/v4/pkg/base"
	"github.com/bluenviron/gortsplib/v4/pkg/description"
	"github.com/bluenviron/gortsplib/v4/pkg/format"
	"github.com/pion/rtp"
	"github.com/spf13/cobra"

	"github.com/ocm-overlay/ocm/internal/event"
)

type readOptions struct {
	duration  time.Duration
	transport string
	interval  time.Duration
}

// newReadCommand is a minimal RTSP player for scripts and machines without
// ffmpeg: it counts packets, sequence gaps and frames.
func newReadCommand() *cobra.Command {
	o := &readOptions{}
	cmd := &cobra.Command{
		Use:   "read URL",
		Short: "Read an RTSP stream and print what arrives as JSON lines",
		Long: `read opens an RTSP URL like a player would and prints one JSON line per
--interval with packets (all tracks), frames (RTP marker bits of the video
tracks), lost (sequence gaps, per track) and renumbered (jumps of more than
3000 numbers: an origin that restarted), then a final summary. It exits
non-zero if nothing arrived.`,
		Example: `  rtsp-mediator read 'rtsp://127.0.0.1:8554/test' --duration 5s
  rtsp-mediator read 'rtsp://127.0.0.1:8555/test?127.0.0.1:8554' --transport udp`,
		Args:         cobra.ExactArgs(1),
		SilenceUsage: true,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runRead(cmd, args[0], o)
		},
	}
	cmd.Flags().DurationVar(&o.duration, "duration", 0, "stop after this long (0: until interrupted)")
	cmd.Flags().StringVar(&o.transport, "transport", "tcp", "tcp, udp or auto")
	cmd.Flags().DurationVar(&o.interval, "interval", time.Second, "how often to print a progress line")
	return cmd
}

func runRead(cmd *cobra.Command, url string, o *readOptions) error {
	u, err := base.ParseURL(url)
	if err != nil {
		return fmt.Errorf("URL %q: %w", url, err)
	}
	if o.interval <= 0 {
		return fmt.Errorf("--interval %s: must be positive", o.interval)
	}
	c := &gortsplib.Client{Scheme: u.Scheme, Host: u.Host}
	switch o.transport {
	case "tcp":
		t := gortsplib.TransportTCP
		c.Transport = &t
	case "udp":
		t := gortsplib.TransportUDP
		c.Transport = &t
	case "auto":
	default:
		return fmt.Errorf("--transport %q: want tcp, udp or auto", o.transport)
	}
	out := event.NewWriter(cmd.OutOrStdout())
	start := time.Now()
	if err := c.Start2(); err != nil {
		return err
	}
	defer c.Close()
	desc, _, err := c.Describe(u)
	if err != nil {
		return err
	}
	if err := c.SetupAll(desc.BaseURL, desc.Medias); err != nil {
		return err
	}
	type counts struct {
		packets, frames, lost, renumbered uint64
		first                             time.Duration
	}
	// Sequence numbers are per track; frames are counted on the video
	// tracks (a marker bit ends a frame there), or on all tracks of a
	// stream without video.
	type arrival struct {
		track int
		pkt   *rtp.Packet
	}
	hasVideo := slices.ContainsFunc(desc.Medias, func(m *description.Media) bool {
		return m.Type == description.MediaTypeVideo
	})
	ch := make(chan arrival, 1024)
	c.OnPacketRTPAny(func(medi *description.Media, _ format.Format, pkt *rtp.Packet) {
		select {
		case ch <- arrival{slices.Index(desc.Medias, medi), pkt}:
		default:
		}
	})
	if _, err := c.Play(nil); err != nil {
		return err
	}
	var n counts
	last := make([]int32, len(desc.Medias)) // -1: nothing from that track yet
	for i := range last {
		last[i] = -1
	}
	var deadline <-chan time.Time
	if o.duration > 0 {
		deadline = time.After(o.duration)
	}
	tick := time.NewTicker(o.interval)
	defer tick.Stop()
	done := make(chan error, 1)
	go func() { done <- c.Wait() }()
	report := func(name string) {
		c := event.ReadCounts{URL: url, Packets: n.packets, Frames: n.frames,
			Lost: n.lost, Renumbered: n.renumbered, FirstPacketMs: float64(n.first.Microseconds()) / 1000}
		if name == "summary" {
			out.Emit(event.ReadSummary{ReadCounts: c})
		} else {
			out.Emit(event.ReadProgress{ReadCounts: c})
		}
	}
	for {
		select {
		case a := <-ch:
			if n.packets == 0 {
				n.first = time.Since(start)
			}
			if a.track < 0 {
				continue
			}
			if prev := last[a.track]; prev >= 0 {
				switch d := a.pkt.SequenceNumber - uint16(prev); {
				case d <= 1, d >= 1<<16-renumberJump:
					// Next, or a little behind: in order, or a duplicate
					// or reordered packet.
				case d <= renumberJump:
					n.lost += uint64(d - 1)
				default:
					// Far ahead or behind: the origin restarted and numbers
					// afresh, not packets lost.
					n.renumbered++
				}
			}
			last[a.track] = int32(a.pkt.SequenceNumber)
			n.packets++
			if a.pkt.Marker && (!hasVideo || desc.Medias[a.track].Type == description.MediaTypeVideo) {
				n.frames++
			}
		case <-tick.C:
			report("progress")
		case <-deadline:
			report("summary")
			return nothingArrived(n.packets)
		case <-cmd.Context().Done():
			report("summary")
			return nothingArrived(n.packets)
		case err := <-done:
			report("summary")
			return fmt.Errorf("session ended: %w", err)
		}
	}
}

// renumberJump: a sequence number this far from the last one of its track
// is a new numbering (a restarted origin), not a gap of lost packets; at
// the test stream's rate it would be a minute and a half of loss.
const renumberJump = 3000

func nothingArrived(packets uint64) error {
	if packets == 0 {
		return errors.New("no RTP packet arrived")
	}
	return nil
}
