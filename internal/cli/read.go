package cli

import (
	"errors"
	"fmt"
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
--interval with packets, frames (RTP marker bits) and sequence gaps received,
then a final summary. It exits non-zero if nothing arrived.`,
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
		packets, frames, lost uint64
		first                 time.Duration
	}
	ch := make(chan *rtp.Packet, 1024)
	c.OnPacketRTPAny(func(_ *description.Media, _ format.Format, pkt *rtp.Packet) {
		select {
		case ch <- pkt:
		default:
		}
	})
	if _, err := c.Play(nil); err != nil {
		return err
	}
	var n counts
	var last uint16
	started := false
	var deadline <-chan time.Time
	if o.duration > 0 {
		deadline = time.After(o.duration)
	}
	tick := time.NewTicker(o.interval)
	defer tick.Stop()
	done := make(chan error, 1)
	go func() { done <- c.Wait() }()
	report := func(name string) {
		out.Emit(name, map[string]any{"url": url, "packets": n.packets, "frames": n.frames,
			"lost": n.lost, "first_packet_ms": float64(n.first.Microseconds()) / 1000})
	}
	for {
		select {
		case pkt := <-ch:
			if !started {
				n.first = time.Since(start)
				started = true
			} else if d := int16(pkt.SequenceNumber - last); d > 1 {
				n.lost += uint64(d - 1)
			}
			last = pkt.SequenceNumber
			n.packets++
			if pkt.Marker {
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

func nothingArrived(packets uint64) error {
	if packets == 0 {
		return errors.New("no RTP packet arrived")
	}
	return nil
}
