package rtspmediator

import (
	"cmp"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/ocm-overlay/ocm/internal/allow"
	"github.com/ocm-overlay/ocm/internal/cli"
	"github.com/ocm-overlay/ocm/internal/event"
	"github.com/ocm-overlay/ocm/internal/mediator"
	"github.com/ocm-overlay/ocm/internal/metrics"
	"github.com/ocm-overlay/ocm/internal/streamurl"
)

type mediatorOptions struct {
	listen, rtp, rtcp string
	publish           bool
	testSource        string
	serveRelayed      []string
	resolver          string
	allowOrigin       string
	stallTimeout      time.Duration
	keyframeWait      time.Duration
	linger            time.Duration
	statsInterval     time.Duration
	upstreamTransport string
	noCoalesce        bool
	control           string
	multicastRange    string
	multicastRTP      int
	multicastTTL      int
	maxConns          int
	requestTimeout    time.Duration
	recordTimeout     time.Duration
	debug             bool
	metrics           string
	metricsStreams    int
}

// NewCommand builds rtsp-mediator.
func NewCommand() *cobra.Command {
	o := &mediatorOptions{}
	cmd := &cobra.Command{
		Use:   "rtsp-mediator",
		Short: "Local RTSP server that relays an origin stream to unmodified players",
		Long: `rtsp-mediator is the RTSP server players and downstream relays talk to.

A player opens the enhanced URL rtsp://localhost:8554/MEDIA?MSHOST[:MSPORT]
instead of rtsp://MSHOST[:MSPORT]/MEDIA. The mediator asks its resolver where
to pull the stream from (the origin itself, a parent mediator, or the overlay),
pulls it once for all its readers, and switches upstream without closing the
readers' sessions when an upstream dies or stalls.

It can also be the origin: --publish accepts publishers (ANNOUNCE/RECORD) and
--test-source serves a built-in looping H264 test stream. --serve-relayed makes
it the origin of a stream it relays: a plain path answered as an enhanced URL,
e.g. an island's regional ocm-server and relays treat rtsp://ROOT:8554/live as
their origin while the root relays live?ms.example.org from the upper tree.

On start it prints {"event":"ready","rtsp":"HOST:PORT",...} on stdout, then one
{"event":"stats",...} line per stream per --stats-interval; logs go to stderr.`,
		Example: `  # An origin with the built-in test stream at rtsp://HOST:8554/test
  rtsp-mediator --test-source test

  # A viewer host: relay any stream, pulling straight from its origin
  rtsp-mediator --listen 127.0.0.1:8555 --rtp off --rtcp off
  ffplay 'rtsp://127.0.0.1:8555/test?127.0.0.1:8554'

  # A second hop that always pulls through the mediator above
  rtsp-mediator --listen 127.0.0.1:8556 --rtp off --rtcp off --resolver parent:127.0.0.1:8555

  # A viewer host other hosts reach: only the origins it is told about
  rtsp-mediator --allow-origin ms.example.org,192.168.1.0/24

  # A viewer host in the overlay: the local ocm-relay picks the upstream
  rtsp-mediator --resolver ocm --control 127.0.0.1:7071

  # Several players on one LAN sharing one multicast copy (TTL 1)
  rtsp-mediator --test-source test --multicast-range 239.255.42.0/24
  ffplay -rtsp_transport udp_multicast rtsp://HOST:8554/test

  # A distribution island's root: in the upper tree (ocm-relay --server UPPER),
  # and the origin rtsp://ROOT:8554/live of the island's ocm-server and relays
  rtsp-mediator --resolver ocm --serve-relayed live=live?ms.example.org:8554
  ffplay 'rtsp://ISLAND-VIEWER:8554/live?ROOT:8554'

  # An origin that accepts ffmpeg publishing
  rtsp-mediator --publish &
  ffmpeg -re -i f.mp4 -c copy -f rtsp rtsp://127.0.0.1:8554/live`,
		Args:          cobra.NoArgs,
		SilenceUsage:  true,
		SilenceErrors: true,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runMediator(cmd, o)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.listen, "listen", mediator.DefaultListen, "RTSP TCP address to listen on")
	f.StringVar(&o.rtp, "rtp", mediator.DefaultRTPAddress, "UDP address for RTP to players ('off' disables UDP)")
	f.StringVar(&o.rtcp, "rtcp", mediator.DefaultRTCPAddress, "UDP address for RTCP, the RTP port + 1 ('off' disables UDP)")
	f.BoolVar(&o.publish, "publish", false, "accept publishers (ANNOUNCE/RECORD) on any plain path")
	f.StringVar(&o.testSource, "test-source", "", "serve the built-in test stream at /NAME")
	f.StringArrayVar(&o.serveRelayed, "serve-relayed", nil, "serve plain path /NAME as the stream this mediator relays for MEDIA?MSHOST[:MSPORT],\n"+
		"given as NAME=MEDIA?MSHOST[:MSPORT] (repeatable); the origin must pass --allow-origin, /NAME cannot be published,\n"+
		"and other relays are served /NAME even when this host is passive (ocm-relay --willing=false)")
	f.StringVar(&o.resolver, "resolver", "direct", "where upstreams come from: direct | parent:HOST:PORT[,HOST:PORT...] |\nocm (ask the local ocm-relay) | redirect (answer players with a 302 to the relay ocm-relay picks)")
	f.StringVar(&o.control, "control", "127.0.0.1:7071", "ocm-relay control address, for --resolver ocm and redirect")
	f.StringVar(&o.allowOrigin, "allow-origin", "", "origins enhanced requests may reach, comma-separated: any, public (publicly routable unicast),\n"+
		"loopback, private (10/8, 172.16/12, 192.168/16, 100.64/10, fc00::/7), CIDRs, IPs, host names.\n"+
		"A name passes when every address it resolves to does, and the mediator connects to those addresses.\n"+
		"Link-local (169.254/16: cloud metadata; fe80::/10), 0.0.0.0, ::, multicast and broadcast are never reached\n"+
		"unless a CIDR or IP inside them is listed.\n"+
		"(default: any when --listen is loopback-only, else public: name LAN origins, e.g. public,192.168.1.0/24)")
	f.DurationVar(&o.stallTimeout, "stall-timeout", mediator.DefaultStallTimeout, "switch upstream after this long without RTP")
	f.DurationVar(&o.keyframeWait, "keyframe-wait", mediator.DefaultKeyframeWait,
		"a new TCP player's H264/H265 video starts at the next keyframe, waiting at most this long (0: start at once, mid-GOP; relays never wait)")
	f.DurationVar(&o.linger, "linger", mediator.DefaultLinger, "keep an upstream this long after its last reader leaves")
	f.DurationVar(&o.statsInterval, "stats-interval", mediator.DefaultStatsInterval, "print one stats line per stream this often (0 disables)")
	f.StringVar(&o.upstreamTransport, "upstream-transport", "tcp", "how to pull upstreams: tcp, udp or auto")
	f.BoolVar(&o.noCoalesce, "no-coalesce", false, "let gortsplib write each packet to each TCP reader instead of one write per frame per reader (slower; for comparison)")
	f.StringVar(&o.multicastRange, "multicast-range", "", "serve RTSP multicast to players that ask for it, from this range (e.g. 239.255.42.0/24; needs UDP)")
	f.IntVar(&o.multicastRTP, "multicast-rtp", 8002, "multicast RTP port (RTCP is the next one)")
	f.IntVar(&o.multicastTTL, "multicast-ttl", 1, "multicast TTL (1: this LAN only)")
	f.IntVar(&o.maxConns, "max-conns", 0, fmt.Sprintf("RTSP connections held at once; more are closed as they come\n(default %d, lowered to fit the open-file limit: a quarter of the files stays free)", mediator.DefaultMaxConns))
	f.DurationVar(&o.requestTimeout, "request-timeout", mediator.DefaultRequestTimeout, "close a connection that sends no request for this long before it plays or records")
	f.DurationVar(&o.recordTimeout, "record-timeout", mediator.DefaultRecordTimeout, "free a published path whose publisher sends no RECORD this long after ANNOUNCE")
	f.StringVar(&o.metrics, "metrics", "", metrics.FlagHelp)
	f.IntVar(&o.metricsStreams, "metrics-streams", metrics.DefaultMaxStreams, "streams with metric series of their own (the first by name); the others are summed under stream=\"other\"")
	f.BoolVar(&o.debug, "debug", false, "log debug messages")
	cmd.AddCommand(newReadCommand())
	return cmd
}

func runMediator(cmd *cobra.Command, o *mediatorOptions) error {
	log := cli.NewLogger(cmd.ErrOrStderr(), o.debug)
	var res mediator.Resolver
	var ocm *mediator.OCM
	var err error
	switch o.resolver {
	case "ocm", "redirect":
		ocm = &mediator.OCM{Addr: o.control, Redirect: o.resolver == "redirect", Log: log}
		res = ocm
	default:
		if res, err = mediator.ParseResolver(o.resolver); err != nil {
			return err
		}
	}
	var allowed *allow.List
	if o.allowOrigin != "" {
		if allowed, err = allow.Parse(o.allowOrigin); err != nil {
			return err
		}
	}
	serve, err := parseServeRelayed(o.serveRelayed)
	if err != nil {
		return err
	}
	rtp, rtcp := o.rtp, o.rtcp
	if strings.EqualFold(rtp, "off") || strings.EqualFold(rtcp, "off") {
		rtp, rtcp = "", ""
	} else if err := checkRTCPPort(rtp, rtcp); err != nil {
		return err
	}
	events := event.NewWriter(cmd.OutOrStdout())
	m := &mediator.Mediator{
		Listen:            o.listen,
		RTPAddress:        rtp,
		RTCPAddress:       rtcp,
		Publish:           o.publish,
		TestSource:        o.testSource,
		Serve:             serve,
		Resolver:          res,
		Allow:             allowed,
		StallTimeout:      o.stallTimeout,
		KeyframeWait:      cmp.Or(o.keyframeWait, -1), // 0: no wait
		Linger:            o.linger,
		StatsInterval:     o.statsInterval,
		UpstreamTransport: o.upstreamTransport,
		NoCoalesce:        o.noCoalesce,
		MulticastRange:    o.multicastRange,
		MulticastPorts:    [2]int{o.multicastRTP, o.multicastRTP + 1},
		MulticastTTL:      o.multicastTTL,
		MaxConns:          o.maxConns,
		RequestTimeout:    o.requestTimeout,
		RecordTimeout:     o.recordTimeout,
		Events:            events,
		Log:               log,
	}
	if err := m.Start(); err != nil {
		return err
	}
	defer m.Close()
	if ocm != nil {
		ocm.Attach(m)
		defer ocm.Close()
	}
	ms, err := metrics.Serve(o.metrics, m.Collector(o.metricsStreams))
	if err != nil {
		return err
	}
	defer ms.Close()

	ready := event.MediatorReady{RTSP: m.Addr(), Resolver: o.resolver, Publish: o.publish,
		AllowOrigin: m.Allow.String(), MaxConns: m.MaxConns, Version: cli.Version(), Metrics: ms.BoundAddr()}
	if u := m.UDPAddrs(); len(u) == 2 {
		ready.RTP, ready.RTCP = u[0], u[1]
	}
	if o.testSource != "" {
		ready.TestSource = "rtsp://" + displayAddr(m.Addr()) + "/" + strings.Trim(o.testSource, "/")
	}
	events.Emit(ready)
	log.Info("serving RTSP", "addr", m.Addr(), "udp", m.UDPAddrs(), "allow_origin", m.Allow.String(), "max_conns", m.MaxConns)

	errc := make(chan error, 1)
	go func() { errc <- m.Wait() }()
	select {
	case <-cmd.Context().Done():
		log.Info("shutting down")
		return nil
	case err := <-errc:
		return err
	}
}

// checkRTCPPort catches the usual mistake before gortsplib does, with a
// clearer message.
func checkRTCPPort(rtp, rtcp string) error {
	_, p1, err1 := net.SplitHostPort(rtp)
	_, p2, err2 := net.SplitHostPort(rtcp)
	if err1 != nil {
		return fmt.Errorf("--rtp %q: %w", rtp, err1)
	}
	if err2 != nil {
		return fmt.Errorf("--rtcp %q: %w", rtcp, err2)
	}
	var a, b int
	fmt.Sscan(p1, &a)
	fmt.Sscan(p2, &b)
	if a%2 != 0 {
		return fmt.Errorf("--rtp port must be even (RTP convention; got %s), with --rtcp the next port", p1)
	}
	if b != a+1 {
		return fmt.Errorf("--rtcp port must be the --rtp port + 1 (got %s and %s), or use --rtp off --rtcp off", p1, p2)
	}
	return nil
}

// displayAddr turns a wildcard listen address into one a local player can
// open.
func displayAddr(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	if ip := net.ParseIP(host); host == "" || ip != nil && ip.IsUnspecified() {
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, port)
}

// parseServeRelayed parses --serve-relayed values, NAME=MEDIA?MSHOST[:MSPORT].
func parseServeRelayed(values []string) (map[string]streamurl.Origin, error) {
	serve := map[string]streamurl.Origin{}
	for _, v := range values {
		name, enhanced, ok := strings.Cut(v, "=")
		name = strings.Trim(name, "/")
		media, query, hasQuery := strings.Cut(enhanced, "?")
		if !ok || name == "" || !hasQuery {
			return nil, fmt.Errorf("--serve-relayed %q: want NAME=MEDIA?MSHOST[:MSPORT], e.g. live=live?ms.example.org:8554", v)
		}
		o, err := streamurl.ParseEnhanced("/"+media, query)
		if err != nil {
			return nil, fmt.Errorf("--serve-relayed %q: %w", v, err)
		}
		if _, dup := serve[name]; dup {
			return nil, fmt.Errorf("--serve-relayed %q: /%s is given twice", v, name)
		}
		serve[name] = o
	}
	return serve, nil
}
