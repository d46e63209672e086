package rtpfanout

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"github.com/ocm-overlay/ocm/internal/cli"
	"github.com/ocm-overlay/ocm/internal/event"
	"github.com/ocm-overlay/ocm/internal/fanout"
)

// maxControlLine bounds one stdin command.
const maxControlLine = 64 << 10

type fanoutOptions struct {
	from          string
	to            []string
	iface         string
	sdp           string
	sdpTo         string
	inputSDP      string
	rtpmap        string
	rtspTransport string
	rtspReconnect time.Duration
	statsInterval time.Duration
	queue         int
	batch         int
	senders       int
	maxDests      int
	statsDetail   int
	debug         bool
}

// NewCommand is rtp-fanout: one RTP input relayed to many unicast
// and multicast UDP outputs.
func NewCommand() *cobra.Command {
	o := &fanoutOptions{}
	cmd := &cobra.Command{
		Use:   "rtp-fanout --from URL --to URL [--to URL]...",
		Short: "Relay one RTP stream to many unicast and multicast UDP destinations",
		Long: `rtp-fanout relays one RTP input to any number of UDP destinations, unicast or
multicast, at close to the kernel's cost per packet: recvmmsg in, one sendmmsg
carrying a packet to many destinations out, no copies, no allocation per
packet. Nothing waits on a destination: each has a bounded queue whose oldest
packets are dropped and counted when it falls behind, and a dead one (ICMP
unreachable) costs the others nothing.

Input (--from):
  udp://HOST:PORT             receive unicast on HOST:PORT (port 0 picks one)
  udp://GROUP:PORT            join multicast GROUP (on --iface) and bind it
  udp://GROUP@HOST:PORT       join GROUP, bind HOST:PORT (e.g. 0.0.0.0)
  rtsp://HOST:PORT/PATH       pull from any RTSP server; media i is sent to
                              the destinations' port+2i; a lost session is
                              opened again for --rtsp-reconnect
  RTCP is received on port+1 and forwarded to each destination's port+1
  (udp://...?rtcp=0 turns it off).

Outputs (--to, repeatable): udp://HOST:PORT[?ttl=N][&iface=NAME][&rtcp=0].
Multicast outputs default to TTL 1, which keeps them on this LAN.

Standard input takes JSON lines, each answered by one JSON line on stdout:
  {"op":"add","to":"udp://10.0.0.7:5004"}
  {"op":"remove","to":"udp://10.0.0.7:5004"}
  {"op":"list"}        {"op":"stats"}
An optional "id" is echoed in the answer. At most --max-destinations (default
1024) outputs are held at once; an add beyond that is refused with an error
answer ("ok":false) and changes nothing. {"op":"stats"} answers with every
destination's counters.

Standard output carries JSON lines: "ready" (the bound input and outputs)
first, then "stats" every --stats-interval, "sdp" when the SDP file is
written, and "reply" for each stdin command. Logs go to stderr.
A stats line holds counters since start: packets and bytes in, sequence gaps
in the input, drops in total, the number of "outputs" and, for at most
--stats-detail (default 32) of them, each one's packets, bytes, drops and
errors in "out"; beyond that, their sums in "out_total" and the 8 with the
most drops in "worst", so the line stays small however many there are.`,
		Example: `  # Relay a local stream to two hosts and to this LAN's multicast group:
  rtp-fanout --from udp://0.0.0.0:5004 \
    --to udp://10.0.0.7:5004 --to udp://10.0.0.8:5004 \
    --to udp://239.1.1.1:5004 --iface eth0 --sdp /tmp/lan.sdp
  ffplay -protocol_whitelist file,udp,rtp /tmp/lan.sdp

  # Feed it from ffmpeg:
  ffmpeg -re -f lavfi -i testsrc=size=320x240:rate=25 -c:v libx264 -g 25 \
    -f rtp rtp://127.0.0.1:5004

  # Pull an RTSP stream and multicast it, with GStreamer as a viewer:
  rtp-fanout --from rtsp://ms.example:8554/live --to udp://239.1.1.1:5004 --sdp live.sdp
  gst-launch-1.0 filesrc location=live.sdp ! sdpdemux ! decodebin ! autovideosink

  # Add and remove destinations at run time through a FIFO:
  mkfifo /tmp/fanout.ctl
  rtp-fanout --from udp://0.0.0.0:5004 < /tmp/fanout.ctl &
  exec 3> /tmp/fanout.ctl
  echo '{"op":"add","to":"udp://10.0.0.9:5004"}' >&3
  echo '{"op":"remove","to":"udp://10.0.0.9:5004"}' >&3`,
		Args:          cobra.NoArgs,
		SilenceUsage:  true,
		SilenceErrors: true,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runFanout(cmd, o)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&o.from, "from", "", "input: udp://[GROUP@]HOST:PORT or rtsp://HOST:PORT/PATH (required)")
	fl.StringArrayVar(&o.to, "to", nil, "output udp://HOST:PORT[?ttl=N], repeatable")
	fl.StringVar(&o.iface, "iface", "", "network interface for the input group and multicast outputs")
	fl.StringVar(&o.sdp, "sdp", "", "write an SDP file for players to open an output")
	fl.StringVar(&o.sdpTo, "sdp-to", "", "the output the SDP describes (default: the first multicast --to, else the first)")
	fl.StringVar(&o.inputSDP, "input-sdp", "", "SDP of a udp input (e.g. ffmpeg -sdp_file), copied into --sdp")
	fl.StringVar(&o.rtpmap, "rtpmap", fanout.DefaultRTPMap, "codec of a dynamic payload type on a udp input, for --sdp without --input-sdp")
	fl.StringVar(&o.rtspTransport, "rtsp-transport", "", "rtsp input transport: udp, tcp or multicast (default: udp, falling back to tcp)")
	fl.DurationVar(&o.rtspReconnect, "rtsp-reconnect", 5*time.Minute, "rtsp input: keep reopening a lost session (server gone, restarted, silent) this long before exiting; 0 exits at once")
	fl.DurationVar(&o.statsInterval, "stats-interval", time.Second, "period of the stats line on stdout (0: none)")
	fl.IntVar(&o.queue, "queue", fanout.DefaultQueueLen, "packets queued per destination before the oldest are dropped")
	fl.IntVar(&o.batch, "batch", fanout.DefaultBatchSize, "packets per sendmmsg/recvmmsg")
	fl.IntVar(&o.senders, "senders", fanout.DefaultSenders, "senders sharing the outputs; more than 1 spreads very high packet rates over cores at some cost per packet")
	fl.IntVar(&o.maxDests, "max-destinations", fanout.DefaultMaxDestinations, "outputs held at once (--to and stdin adds); adds beyond it are refused")
	fl.IntVar(&o.statsDetail, "stats-detail", fanout.DefaultStatsDetail, "outputs the stats line lists one by one; beyond it, their totals and the worst few (0: always)")
	fl.BoolVar(&o.debug, "debug", false, "debug logging on stderr")
	_ = cmd.MarkFlagRequired("from")
	return cmd
}

func runFanout(cmd *cobra.Command, o *fanoutOptions) error {
	if o.maxDests < 1 {
		return fmt.Errorf("--max-destinations %d: want at least 1", o.maxDests)
	}
	if o.statsDetail < 0 {
		return fmt.Errorf("--stats-detail %d: want 0 or more", o.statsDetail)
	}
	ctx := cmd.Context()
	log := cli.NewLogger(cmd.ErrOrStderr(), o.debug).With("component", "fanout")
	ev := event.NewWriter(cmd.OutOrStdout())

	f := &fanout.Fanout{
		From:            o.from,
		To:              o.to,
		Iface:           o.iface,
		SDPFile:         o.sdp,
		SDPTo:           o.sdpTo,
		InputSDP:        o.inputSDP,
		RTPMap:          o.rtpmap,
		RTSPTransport:   o.rtspTransport,
		RTSPReconnect:   o.rtspReconnect,
		QueueLen:        o.queue,
		BatchSize:       o.batch,
		Senders:         o.senders,
		MaxDestinations: o.maxDests,
		Log:             log,
	}
	// The SDP may be written during Start or by the first packet, before
	// the ready line, which must come first: hold it back until then.
	var sdpMu sync.Mutex
	readyOut, sdpHeld := false, ""
	f.OnSDP = func(path string) {
		sdpMu.Lock()
		defer sdpMu.Unlock()
		if !readyOut {
			sdpHeld = path
			return
		}
		ev.Emit(event.SDP{Path: path})
	}
	if err := f.Start(); err != nil {
		return err
	}
	defer f.Close()
	ready := event.FanoutReady{From: f.Addr(), To: f.List(), SDP: o.sdp, Version: cli.Version()}
	sdpMu.Lock()
	ev.Emit(ready)
	readyOut = true
	if sdpHeld != "" {
		ev.Emit(event.SDP{Path: sdpHeld})
	}
	sdpMu.Unlock()

	// The stdin reader is not waited for: a read on stdin cannot be
	// interrupted, and it ends with the process.
	go readControl(cmd.InOrStdin(), maxControlLine, f, ev, log)

	var tick <-chan time.Time
	if o.statsInterval > 0 {
		t := time.NewTicker(o.statsInterval)
		defer t.Stop()
		tick = t.C
	}
	done := make(chan error, 1)
	go func() { done <- f.Wait() }()
	var seen sendErrors
	stats := func() { seen.emit(ev, log, f.Summary(o.statsDetail)) }
	for {
		select {
		case <-ctx.Done():
			f.Close()
			stats()
			return nil
		case err := <-done:
			stats()
			return err
		case <-tick:
			stats()
		}
	}
}

// sendErrors logs, once per stats interval, where send errors grew: one
// line per output while the stats line lists every output, else one line
// for them all. It remembers no more outputs than a stats line lists.
type sendErrors struct {
	byTo  map[string]uint64 // errors per output, when listed
	total uint64            // errors of the current outputs
}

// emit writes one stats line and logs the send errors since the last.
func (e *sendErrors) emit(ev *event.Writer, log *slog.Logger, s fanout.Summary) {
	ev.Emit(event.NewFanoutStats(s))
	if s.Out == nil {
		if s.Total.Errors > e.total {
			args := []any{"errors", s.Total.Errors - e.total, "outputs_with_errors", s.Total.WithErrors}
			for _, w := range s.Worst {
				if w.Errors > 0 {
					args = append(args, "worst", w.To, "last", w.LastError)
					break
				}
			}
			log.Warn("send errors", args...)
		}
		e.byTo, e.total = nil, s.Total.Errors
		return
	}
	byTo := make(map[string]uint64, len(s.Out))
	e.total = 0
	for _, o := range s.Out {
		if prev := e.byTo[o.To]; o.Errors > prev {
			log.Warn("send errors", "to", o.To, "errors", o.Errors-prev, "last", o.LastError)
		}
		byTo[o.To] = o.Errors
		e.total += o.Errors
	}
	e.byTo = byTo
}

// readControl answers each stdin line with one reply line. End of input
// only ends the commands, not the relay. Lines over maxLine bytes are answered with an error.
func readControl(r io.Reader, maxLine int, f *fanout.Fanout, ev *event.Writer, log *slog.Logger) {
	br := bufio.NewReaderSize(r, 4096)
	for {
		line, err := cli.ReadLine(br, maxLine)
		if errors.Is(err, cli.ErrLineTooLong) {
			log.Warn("control command failed", "err", err)
			ev.Emit(event.Reply{Reply: fanout.Reply{Error: err.Error()}})
			continue
		}
		if len(line) > 0 {
			rep := f.Handle(line)
			if !rep.OK {
				log.Warn("control command failed", "op", rep.Op, "err", rep.Error)
			}
			ev.Emit(event.Reply{Reply: rep})
		}
		if err != nil {
			if !errors.Is(err, io.EOF) {
				log.Warn("reading stdin", "err", err)
			}
			return
		}
	}
}
