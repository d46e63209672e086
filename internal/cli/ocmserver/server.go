package ocmserver

import (
	"fmt"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/ocm-overlay/ocm/internal/cli"
	"github.com/ocm-overlay/ocm/internal/event"
	"github.com/ocm-overlay/ocm/internal/server"
	"github.com/ocm-overlay/ocm/internal/tree"
)

// serverOptions are ocm-server's flags.
type serverOptions struct {
	listen         string
	http           string
	recovery       string
	reportInterval time.Duration
	heartbeat      time.Duration
	maxCandidates  int
	originCapacity int
	nearCandidates int
	displace       int
	reconnectStep  time.Duration
	handover       time.Duration
	orphanGrace    time.Duration
	pendingGrace   time.Duration
	token          string
	apiReadToken   string
	eventRing      int
	eventBuffer    int
	debug          bool
	httpRead       time.Duration
	httpWrite      time.Duration
	httpIdle       time.Duration
	httpMaxHeader  int
	httpMaxBody    int64
	stallWindow    time.Duration
	stallLimit     int
	stallConfirm   time.Duration
	quarantine     time.Duration
	maxRelays      int
}

// NewCommand returns the ocm-server command.
func NewCommand() *cobra.Command {
	o := &serverOptions{}
	cmd := &cobra.Command{
		Use:   "ocm-server",
		Short: "Keep the overlay's relay trees and repair them when a relay fails",
		Long: `ocm-server is the Server OCM: relays (ocm-relay) keep a TCP connection to it,
ask it for candidate parents, and report the parent they joined, so it holds
one distribution tree per stream (keyed by the origin URL
rtsp://MSHOST:MSPORT/MEDIA). When a relay fails (connection closed, or
` + fmt.Sprint(server.MissedHeartbeats) + ` heartbeats missed) it applies the recovery policy:

  repair     remove only the failed relay; its children rejoin at once and
             keep their own children (default)
  drop       remove its whole subtree and tell nobody
  reconnect  remove its subtree and tell every relay in it to reconnect
  gradual    like reconnect, the failed relay's children first, then each
             relay as soon as its old parent is back (its slot there is kept),
             or its whole level when the one above has rejoined or after
             --reconnect-step, down to the leaves

The policy is announced to relays in the welcome: under reconnect and
gradual a relay waits for its reconnect instead of rejoining on its own
stall, unless the server still has its parent (no relay above it failed:
the origin itself went away, and no reconnect comes for the origin). A relay that leaves (SIGTERM) or is drained hands its children over
without a gap: the server picks each child's new parent, tells it to switch
make-before-break, and lets the relay go when all have switched (or after
--handover-timeout).

A relay whose children lose the stream under it while it stays connected
(a black hole: its mediator frozen, or a relay lying about itself) is
quarantined after --stall-limit children within --stall-window: no longer
offered as a parent until its own reports are clean for --quarantine-clean;
GET /api/v1/nodes says why. Candidates carry the server's level and load
of each relay, which relays score with rather than what a relay says of
itself, and its path: the RTT along the tree from the origin, summed from
the RTTs relays measure to their parents. A full parent near the top (the
origin, and --displace relays) is offered with the RTT of its farthest
child: a relay much closer to it may take that child's slot, the child
moving under that relay make-before-break (within ` + tree.DisplaceHold.String() + `, else it
is detached and told to rejoin). A hello with the node id of a live connection is refused.

After a restart, or on a standby taking over (ocm-relay --server A,B), the
trees are rebuilt from the relays' hellos without interrupting any stream:
each hello declares the streams the relay plays and their parents. A relay
whose declared parent has not said hello yet is held pending under it,
detached (not offered as a candidate, its own children kept below it); it is
attached when that parent says hello with the stream (or joins it), unless the edge would
make a cycle or the parent is full, in which case it is told at once to
rejoin through candidates; if the parent has not come within --pending-grace,
it is told to rejoin (reason parent_missing). No relay is ever attached under
a parent this server has not seen, and none is offered as a candidate unless
its whole chain up to the origin was declared here.

A JSON API and Prometheus metrics are served over
HTTP (/api/v1/nodes, /api/v1/streams, /api/v1/tree, /api/v1/reconnect,
/api/v1/drain, /metrics). /metrics has per-stream tree gauges for at most
100 streams (the largest trees; the rest are summed under stream="other"),
and ocm_recovery_seconds: from a node's failure to every relay it orphaned
attached again, by policy (a recovery not done within 30 s is counted in
ocm_recoveries_unfinished_total instead).

A live monitor page is served at /, and every event as it happens at
/api/v1/events (server-sent events, numbered: a client resumes with
Last-Event-ID from the last --event-ring events; one that lets
--event-client-buffer events wait is dropped, never slowing the server).

Access: the HTTP API listens on 127.0.0.1:7080 by default. With a token
(--token or $OCM_TOKEN), which relays present in their hello, every action
(POST: reconnect, kick, drain, policy) needs "Authorization: Bearer TOKEN"
and is answered 401 without it; reads (GET, /metrics) stay open unless
--api-read-token is set, then they need that token or --token. Binding
--http beyond loopback without a token prints a warning.

stdout carries JSON lines: first {"event":"ready","ocm":ADDR,"http":ADDR},
then node and tree events. Logs go to stderr.`,
		Example: `  # Defaults: OCM on :7070, HTTP API on 127.0.0.1:7080, repair policy
  ocm-server

  # The API reachable from other hosts: actions need the token
  OCM_TOKEN=s3cret ocm-server --http :7080
  curl -s -X POST -H 'Authorization: Bearer s3cret' 'host:7080/api/v1/drain?node=r3'

  # Any free ports (read them from the ready line), a shared token
  OCM_TOKEN=s3cret ocm-server --listen 127.0.0.1:0 --http 127.0.0.1:0

  # The paper's gradual policy, heartbeats every second
  ocm-server --recovery gradual --reconnect-step 250ms --heartbeat 1s

  # Look at the trees
  curl -s localhost:7080/api/v1/tree

  # Move relay r7 and everything below it; drain r3 before maintenance
  curl -s -X POST 'localhost:7080/api/v1/reconnect?node=r7&subtree=1'
  curl -s -X POST 'localhost:7080/api/v1/drain?node=r3'`,
		Args:         cobra.NoArgs,
		SilenceUsage: true,
		RunE: func(cmd *cobra.Command, args []string) error {
			if !cmd.Flags().Changed("token") {
				o.token = os.Getenv("OCM_TOKEN")
			}
			if !cmd.Flags().Changed("api-read-token") {
				o.apiReadToken = os.Getenv("OCM_API_READ_TOKEN")
			}
			return o.run(cmd)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.listen, "listen", server.DefaultListen, "OCM TCP address relays connect to (port 0: any)")
	f.StringVar(&o.http, "http", server.DefaultHTTP, `HTTP address of the API and metrics ("off" disables it)`)
	f.StringVar(&o.recovery, "recovery", string(server.DefaultRecovery), "recovery policy: repair, drop, reconnect or gradual")
	f.DurationVar(&o.reportInterval, "report-interval", server.DefaultReportInterval, "how often relays report (told in the welcome)")
	f.DurationVar(&o.heartbeat, "heartbeat", server.DefaultHeartbeat,
		fmt.Sprintf("heartbeat interval; a relay silent for %d intervals has failed", server.MissedHeartbeats))
	f.IntVar(&o.maxCandidates, "max-candidates", server.DefaultMaxCandidates, "relays offered per request, besides the origin")
	f.IntVar(&o.originCapacity, "origin-capacity", server.DefaultOriginCapacity, "relays allowed to pull each stream from the origin")
	f.IntVar(&o.nearCandidates, "near-candidates", server.DefaultNearCandidates,
		"relays near the requester (longest shared prefix of the addresses they connect from, at least /16 or /32 for IPv6) offered besides --max-candidates; 0: none")
	f.IntVar(&o.displace, "displace", server.DefaultDisplace,
		"full relays offered for displacement besides the origin: a relay that relays and is much closer to a full parent\n"+
			"than that parent's farthest child takes the child's slot, the child moving under it, so the relays nearest the\n"+
			"origin end up at the top of the tree (0: the origin only; -1: displacement off)")
	f.DurationVar(&o.reconnectStep, "reconnect-step", server.DefaultReconnectStep,
		"under --recovery gradual, the longest wait before telling the next level (sooner once a level has rejoined, or a relay's old parent is back)")
	f.DurationVar(&o.reconnectStep, "gradual-step", server.DefaultReconnectStep, "old name of --reconnect-step")
	_ = f.MarkHidden("gradual-step")
	f.DurationVar(&o.handover, "handover-timeout", server.DefaultHandoverTimeout,
		"how long a leaving or drained relay waits for its children to switch to their new parents")
	f.DurationVar(&o.orphanGrace, "orphan-grace", server.DefaultOrphanGrace,
		"how long a relay may stay detached (e.g. it did not rejoin after a reconnect) before it is told to reconnect again")
	f.DurationVar(&o.pendingGrace, "pending-grace", 0,
		fmt.Sprintf("how long a relay whose hello names a parent this server has not seen is held pending under it\n"+
			"before it is told to rejoin through candidates (0: %d heartbeat intervals, at least %v; %v with the default --heartbeat)",
			server.DefaultPendingHeartbeats, server.DefaultMinPendingGrace,
			max(server.DefaultPendingHeartbeats*server.DefaultHeartbeat, server.DefaultMinPendingGrace)))
	f.IntVar(&o.stallLimit, "stall-limit", server.DefaultStallLimit,
		"quarantine a relay once this many of its children lost the stream under it within --stall-window while it stayed connected (0: never)")
	f.DurationVar(&o.stallWindow, "stall-window", server.DefaultStallWindow, "window in which children's stalls count against their parent")
	f.DurationVar(&o.stallConfirm, "stall-confirm", server.DefaultStallConfirm,
		"a child's stall is judged this long after it said so: excused if its parent lost its own upstream within as long")
	f.DurationVar(&o.quarantine, "quarantine-clean", server.DefaultQuarantineClean,
		"a quarantined relay is offered again after its reports were clean this long (doubled for each repeat)")
	f.DurationVar(&o.httpRead, "http-read-timeout", server.DefaultHTTPReadTimeout,
		"an HTTP request's headers and body must arrive within this, else the connection is dropped")
	f.DurationVar(&o.httpWrite, "http-write-timeout", server.DefaultHTTPWriteTimeout, "an HTTP response must be written within this")
	f.DurationVar(&o.httpIdle, "http-idle-timeout", server.DefaultHTTPIdleTimeout, "an idle kept-alive HTTP connection is closed after this")
	f.IntVar(&o.httpMaxHeader, "http-max-header-bytes", server.DefaultHTTPMaxHeaderBytes, "largest HTTP request header accepted")
	f.Int64Var(&o.httpMaxBody, "http-max-body", server.DefaultHTTPMaxBody,
		"largest HTTP request body accepted (413 above; the API takes its parameters in the query)")
	f.StringVar(&o.token, "token", "", "shared secret relays present, also required of API actions (POST) as a bearer token (default $OCM_TOKEN)")
	f.StringVar(&o.apiReadToken, "api-read-token", "", "bearer token API reads (GET, /metrics) need, besides --token (default $OCM_API_READ_TOKEN; empty: reads are open)")
	f.IntVar(&o.maxRelays, "max-relays", 0, fmt.Sprintf("relay connections held at once; more are answered busy and closed "+
		"(0: the open-file limit less %d, so the server never runs out of descriptors)", server.DefaultFDReserve))
	f.IntVar(&o.eventRing, "event-ring", server.DefaultEventRing, "events kept for /api/v1/events clients that resume (Last-Event-ID)")
	f.IntVar(&o.eventBuffer, "event-client-buffer", server.DefaultEventClientBuffer,
		"events that may wait for one /api/v1/events client before it is dropped")
	f.BoolVar(&o.debug, "debug", false, "debug logging")
	return cmd
}

func (o *serverOptions) run(cmd *cobra.Command) error {
	pol, err := tree.ParsePolicy(o.recovery)
	if err != nil {
		return err
	}
	if o.originCapacity < 0 || o.maxCandidates < 1 || o.nearCandidates < 0 {
		return fmt.Errorf("--origin-capacity and --near-candidates must be >= 0 and --max-candidates >= 1")
	}
	if o.displace < -1 {
		return fmt.Errorf("--displace %d: must be >= -1 (-1: off, 0: the origin only)", o.displace)
	}
	if o.stallLimit < 0 {
		return fmt.Errorf("--stall-limit must be >= 0 (0: never quarantine)")
	}
	stallLimit := o.stallLimit
	if stallLimit == 0 {
		stallLimit = -1 // the server reads 0 as "default"; the flag's 0 means never
	}
	if o.maxRelays < 0 {
		return fmt.Errorf("--max-relays must be >= 0 (0: from the open-file limit)")
	}
	if o.eventRing < 1 || o.eventBuffer < 1 {
		return fmt.Errorf("--event-ring and --event-client-buffer must be >= 1")
	}
	if o.httpMaxHeader < 1 || o.httpMaxBody < 1 {
		return fmt.Errorf("--http-max-header-bytes and --http-max-body must be >= 1")
	}
	originCap := o.originCapacity
	if originCap == 0 {
		originCap = -1 // the server reads 0 as "default"; the flag's 0 means none
	}
	near := o.nearCandidates
	if near == 0 {
		near = -1 // as for originCap
	}
	displace := o.displace
	if displace == 0 {
		displace = -1 // as for originCap; -1 is NoDisplace
	}
	s := &server.Server{
		Listen:             o.listen,
		HTTP:               o.http,
		Recovery:           pol,
		ReportInterval:     o.reportInterval,
		Heartbeat:          o.heartbeat,
		MaxCandidates:      o.maxCandidates,
		OriginCapacity:     originCap,
		NearCandidates:     near,
		Displace:           displace,
		NoDisplace:         o.displace < 0,
		ReconnectStep:      o.reconnectStep,
		HandoverTimeout:    o.handover,
		OrphanGrace:        o.orphanGrace,
		PendingGrace:       o.pendingGrace,
		Token:              o.token,
		APIReadToken:       o.apiReadToken,
		Version:            cli.Version(),
		StallWindow:        o.stallWindow,
		StallLimit:         stallLimit,
		StallConfirm:       o.stallConfirm,
		QuarantineClean:    o.quarantine,
		HTTPReadTimeout:    o.httpRead,
		HTTPWriteTimeout:   o.httpWrite,
		HTTPIdleTimeout:    o.httpIdle,
		HTTPMaxHeaderBytes: o.httpMaxHeader,
		HTTPMaxBody:        o.httpMaxBody,
		MaxRelays:          o.maxRelays,
		EventRing:          o.eventRing,
		EventClientBuffer:  o.eventBuffer,
		Log:                cli.NewLogger(cmd.ErrOrStderr(), o.debug),
		Events:             event.NewWriter(cmd.OutOrStdout()),
	}
	if err := s.Start(); err != nil {
		return err
	}
	ctx := cmd.Context()
	done := make(chan error, 1)
	go func() { done <- s.Wait() }()
	select {
	case <-ctx.Done():
		s.Close()
		return <-done
	case err := <-done:
		return err
	}
}
