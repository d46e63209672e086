package ocmrelay

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/ocm-overlay/ocm/internal/allow"
	"github.com/ocm-overlay/ocm/internal/cli"
	"github.com/ocm-overlay/ocm/internal/event"
	"github.com/ocm-overlay/ocm/internal/metrics"
	"github.com/ocm-overlay/ocm/internal/probe"
	"github.com/ocm-overlay/ocm/internal/relay"
)

type relayOptions struct {
	server, control, probe, rtsp string
	allowOrigin                  string
	nodeID, token                string
	willing                      bool
	capacity                     int
	maxStreams, maxControl       int
	maxResolves                  int
	activeTimeout                time.Duration
	joinAttempts                 int
	joinWait                     time.Duration
	improveEvery                 time.Duration
	weights                      probe.Weights
	debug                        bool
	metrics                      string
}

// NewCommand builds ocm-relay.
func NewCommand() *cobra.Command {
	o := &relayOptions{weights: probe.DefaultWeights()}
	cmd := &cobra.Command{
		Use:   "ocm-relay",
		Short: "Per-host agent: finds, probes and picks a parent for the local mediator",
		Long: `ocm-relay runs on every viewer host beside rtsp-mediator (--resolver ocm).
When the mediator needs a stream it asks the relay, which asks ocm-server for
candidate parents, probes them all in parallel, scores them
(rtt_ms + w_path*path_ms + w_load*clients/capacity + w_level*level + w_cpu*cpu_busy,
lower wins; path_ms is the server's RTT along the tree from the origin to the
candidate), tells the server its choice with the RTT it measured, and hands
the mediator the upstream. It keeps a permanent connection to the server,
reports every interval (with the RTT to each parent), answers other relays'
probes, and makes the mediator switch when the server repairs the tree.
If the server cannot be reached, the mediator pulls from the origin directly.
Without --server, the server is port 7070 of the origin's host, but only for
origins in --allow-origin (default: loopback, i.e. this host), since the relay's
hello and token go there: a player naming another origin cannot choose where.

Failover: --server may list several servers, A,B[,C], the active one first.
A relay whose server connection is lost (closed, or heartbeats unanswered) or
cannot be made connects to the next one in the list, wrapping around, with the
usual backoff, and stays on the server it reached: it does not move back when
A returns (a server refusing its node id is up, and is asked again). Its
hello declares the streams it relays with their parents, so a standby needs
nothing shared with A: it rebuilds the trees from the hellos as a restarted
server does, and the media, which never passes through a server, keeps
flowing. Give every relay the same list, in the same order.

Improvement: for each stream it receives, every --improve-every (give or take
a quarter, at random) the relay asks for candidates again and probes them, its
parent among them; when another parent brings the stream at least 5 ms and 20%
sooner (rtt_ms + path_ms), it joins that one and makes the mediator switch,
make-before-break: the players see nothing. A round that finds nothing better
doubles the wait, up to 5m; a move starts it over. A relay that relays may take
the slot of a full parent's farthest child when it is much closer to that
parent; the child is moved under it.

On SIGTERM or SIGINT it leaves gracefully: the server moves its children to
new parents before it stops. It prints {"event":"ready",...} on stdout first.`,
		Example: `  # A viewer host: the relay and its mediator
  ocm-relay --server ms.example.org:7070 --rtsp 192.0.2.10:8554 &
  rtsp-mediator --resolver ocm &
  ffplay 'rtsp://localhost:8554/live?ms.example.org:8554'

  # Two servers: ms1 is active, ms2 the standby the relay moves to if ms1 fails
  ocm-relay --server ms1.example.org:7070,ms2.example.org:7070 --rtsp 192.0.2.10:8554

  # A passive host: receives through the overlay, never relays
  ocm-relay --server ms.example.org:7070 --willing=false

  # Look for a better parent every 10 s (at most every 5m once settled); 0: never
  ocm-relay --server ms.example.org:7070 --rtsp 192.0.2.10:8554 --improve-every 10s`,
		Args:          cobra.NoArgs,
		SilenceUsage:  true,
		SilenceErrors: true,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runRelay(cmd, o)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.server, "server", "", "ocm-server address HOST:PORT, or a list HOST:PORT,HOST:PORT... to fail over along (see above)\n(default: port 7070 of the first stream's origin host, if that origin is in --allow-origin;\nstreams of other origins are pulled directly)")
	f.StringVar(&o.allowOrigin, "allow-origin", "loopback", "without --server: origins whose host may be taken as the ocm-server, which gets this relay's hello\nand token (same entries as rtsp-mediator's --allow-origin: any, public, loopback, private, CIDRs, IPs, names)")
	f.StringVar(&o.control, "control", relay.DefaultControl, "control socket for the local mediator")
	f.StringVar(&o.probe, "probe", relay.DefaultProbe, "UDP address answering other relays' probes")
	f.StringVar(&o.rtsp, "rtsp", "", "this host's mediator as other hosts reach it, HOST:PORT (default: what the first mediator says; a later hello with another address is refused)")
	f.BoolVar(&o.willing, "willing", true, "relay the stream to other viewers (false: a passive host)")
	f.IntVar(&o.capacity, "capacity", relay.DefaultCapacity, "maximum number of child relays")
	f.IntVar(&o.maxStreams, "max-streams", relay.DefaultMaxStreams, "maximum number of streams received at once (resolving, waiting for media or playing)")
	f.IntVar(&o.maxControl, "max-control-clients", relay.DefaultMaxControlClients, "maximum number of connections to the control socket")
	f.IntVar(&o.maxResolves, "max-resolves", relay.DefaultMaxResolves, "maximum number of resolves in progress; more are answered with an error")
	f.DurationVar(&o.activeTimeout, "active-timeout", relay.DefaultActiveTimeout, "leave a stream resolved for the mediator if it does not play within this")
	f.IntVar(&o.joinAttempts, "join-attempts", relay.DefaultJoinAttempts, "candidate rounds one resolve may take while the parents offered have no room\n(full by the time of the join, as in a flash crowd); then the player's request fails")
	f.DurationVar(&o.joinWait, "join-wait", relay.DefaultJoinWait, "how long one resolve keeps asking for parents with room (see --join-attempts);\nkeep it under rtsp-mediator's --describe-timeout")
	f.DurationVar(&o.improveEvery, "improve-every", relay.DefaultImproveEvery, "look for a better parent for each stream this often (jittered by a quarter; doubles up to\n"+
		relay.MaxImproveEvery.String()+" while none is found, see above); 0: never")
	f.StringVar(&o.nodeID, "node-id", "", "node id in the overlay (default: hostname-pid)")
	f.StringVar(&o.token, "token", os.Getenv("OCM_TOKEN"), "shared token for ocm-server (default $OCM_TOKEN)")
	f.Float64Var(&o.weights.Path, "w-path", o.weights.Path, "score weight of a candidate's path from the origin (path_ms, from ocm-server)")
	f.Float64Var(&o.weights.Load, "w-load", o.weights.Load, "score weight of a candidate's load (clients/capacity)")
	f.Float64Var(&o.weights.Level, "w-level", o.weights.Level, "score weight of a candidate's depth in the tree")
	f.Float64Var(&o.weights.CPU, "w-cpu", o.weights.CPU, "score weight of a candidate's CPU busy fraction")
	f.Float64Var(&o.weights.MaxCPU, "max-cpu", o.weights.MaxCPU, "never pick a candidate busier than this (0..1)")
	f.IntVar(&o.weights.MaxLevel, "max-level", o.weights.MaxLevel, "never pick a candidate at this depth or deeper")
	f.DurationVar(&o.weights.Timeout, "probe-timeout", o.weights.Timeout, "how long to wait for probe answers")
	f.StringVar(&o.metrics, "metrics", "", metrics.FlagHelp)
	f.BoolVar(&o.debug, "debug", false, "log debug messages")
	return cmd
}

func runRelay(cmd *cobra.Command, o *relayOptions) error {
	log := cli.NewLogger(cmd.ErrOrStderr(), o.debug)
	events := event.NewWriter(cmd.OutOrStdout())
	if _, err := relay.ParseServers(o.server); err != nil {
		return fmt.Errorf("--server: %w", err)
	}
	if o.improveEvery < 0 {
		return fmt.Errorf("--improve-every %v is negative: give a duration such as 30s, or 0 to never look for a better parent", o.improveEvery)
	}
	allow, err := allow.Parse(o.allowOrigin)
	if err != nil {
		return err
	}
	r := &relay.Relay{
		Server: o.server, AllowOrigin: allow, Control: o.control, Probe: o.probe, RTSP: o.rtsp,
		NodeID: o.nodeID, Token: o.token, Willing: o.willing, Capacity: o.capacity,
		MaxStreams: o.maxStreams, MaxControlClients: o.maxControl, MaxResolves: o.maxResolves,
		ActiveTimeout: o.activeTimeout, JoinAttempts: o.joinAttempts, JoinWait: o.joinWait, Weights: o.weights, Events: events, Log: log,
		ImproveEvery: o.improveEvery, NoImprove: o.improveEvery == 0,
	}
	if err := r.Start(); err != nil {
		return err
	}
	ms, err := metrics.Serve(o.metrics, r.Collector())
	if err != nil {
		r.Close()
		return err
	}
	defer ms.Close()
	events.Emit(event.RelayReady{Control: r.ControlAddr(), Probe: r.ProbeAddr(), Node: r.NodeID,
		Server: o.server, Willing: o.willing, Capacity: o.capacity, Version: cli.Version(), Metrics: ms.BoundAddr()})
	log.Info("relay ready", "node", r.NodeID, "control", r.ControlAddr(), "probe", r.ProbeAddr())
	select {
	case <-r.Done():
		log.Info("drained: left the overlay")
		return nil
	case <-cmd.Context().Done():
	}
	log.Info("leaving the overlay")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	r.Leave(ctx)
	return nil
}
