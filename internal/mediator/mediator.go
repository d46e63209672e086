// Package mediator is the data plane: an RTSP server that serves players and
// downstream relays, pulls each origin stream on demand through a Resolver,
// and switches upstreams without disturbing its readers.
package mediator

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/bluenviron/gortsplib/v4"
	"github.com/bluenviron/gortsplib/v4/pkg/base"
	"github.com/bluenviron/gortsplib/v4/pkg/description"
	"github.com/pion/rtp"

	"github.com/ocm-overlay/ocm/internal/allow"
	"github.com/ocm-overlay/ocm/internal/control"
	"github.com/ocm-overlay/ocm/internal/defaults"
	"github.com/ocm-overlay/ocm/internal/event"
	"github.com/ocm-overlay/ocm/internal/streamurl"
	"github.com/ocm-overlay/ocm/internal/testsrc"
)

// Defaults, in one place.
const (
	DefaultListen       = ":8554"
	DefaultRTPAddress   = ":8000"
	DefaultRTCPAddress  = ":8001"
	DefaultStallTimeout = time.Second
	// DefaultKeyframeWait bounds how long a new player's H264 or H265
	// video waits for the next keyframe, so that the first frame it
	// decodes is whole; a stream that never sends one (intra refresh)
	// reaches it anyway after that.
	DefaultKeyframeWait    = 5 * time.Second
	DefaultLinger          = 5 * time.Second
	DefaultStatsInterval   = 10 * time.Second
	DefaultDescribeTimeout = 5 * time.Second
	DefaultDialTimeout     = 1500 * time.Millisecond
	DefaultReadTimeout     = 5 * time.Second
	DefaultSwitchTimeout   = 2 * time.Second
	DefaultResolveTimeout  = 8 * time.Second
	// DefaultFirstPacketTimeout is the stall timeout for an upstream that
	// has sent nothing yet: origins may take a moment to start a pipeline.
	DefaultFirstPacketTimeout = 3 * time.Second
	// DefaultMaxConns bounds the RTSP connections held at once; it is
	// lowered to fit the open-file limit (connLimit).
	DefaultMaxConns = 1000
	// DefaultRequestTimeout is how long a connection may keep silent
	// before its first request, and between requests until it plays or
	// records: players ask at once.
	DefaultRequestTimeout = 10 * time.Second
	// DefaultRecordTimeout is how long a publisher may hold its path
	// between ANNOUNCE and RECORD: publishers send RECORD a few round
	// trips after ANNOUNCE.
	DefaultRecordTimeout = 5 * time.Second
)

// Mediator is the RTSP server. Fill the exported fields, then Start.
type Mediator struct {
	Listen      string // RTSP TCP address
	RTPAddress  string // UDP RTP address; empty disables UDP
	RTCPAddress string // UDP RTCP address; must be RTP port + 1
	// Publish accepts ANNOUNCE/RECORD publishers on any path.
	Publish bool
	// TestSource, when set, serves the built-in test stream at /TestSource.
	TestSource string
	Resolver   Resolver
	Allow      *allow.List // nil: allow.Default(Listen)

	StallTimeout time.Duration
	// KeyframeWait: see DefaultKeyframeWait (0: the default; negative: a
	// player starts at once, mid-GOP). Relays are never held.
	KeyframeWait       time.Duration
	FirstPacketTimeout time.Duration
	Linger             time.Duration
	StatsInterval      time.Duration // 0 disables stats lines
	DescribeTimeout    time.Duration
	DialTimeout        time.Duration
	ReadTimeout        time.Duration
	SwitchTimeout      time.Duration
	ResolveTimeout     time.Duration
	// UpstreamTransport is how relays pull: "tcp" (default), "udp" or "auto".
	UpstreamTransport string
	// NoCoalesce leaves TCP readers to gortsplib, which writes every packet
	// to every reader on its own, instead of the fan's one write per frame
	// per reader (fan.go). For comparison and for ruling the fan out.
	NoCoalesce bool
	// MulticastRange (a CIDR such as 239.255.42.0/24) enables RTSP
	// multicast for players that ask for it, on MulticastPorts (RTP, RTCP),
	// with MulticastTTL (default 1: the local segment only).
	MulticastRange string
	MulticastPorts [2]int
	MulticastTTL   int
	// MaxConns bounds the RTSP connections held at once (0: DefaultMaxConns,
	// lowered to fit the open-file limit); RequestTimeout closes a
	// connection that keeps silent before it plays or records;
	// RecordTimeout frees a path announced but not recorded.
	MaxConns       int
	RequestTimeout time.Duration
	RecordTimeout  time.Duration

	Events *event.Writer
	Log    *slog.Logger

	srv      *gortsplib.Server
	addr     string
	udpAddrs []string
	ctx      context.Context
	cancel   context.CancelFunc
	wg       sync.WaitGroup
	guard    *connGuard
	guardWas guardConnStats // at the last stats line

	reg       *registry // the streams served here
	closeOnce sync.Once
}

// Start validates the configuration, listens, and starts serving.
func (m *Mediator) Start() error {
	defaults.Set(&m.Listen, DefaultListen)
	defaults.Set(&m.StallTimeout, DefaultStallTimeout)
	if m.KeyframeWait == 0 {
		m.KeyframeWait = DefaultKeyframeWait
	}
	defaults.Set(&m.FirstPacketTimeout, DefaultFirstPacketTimeout)
	defaults.Set(&m.Linger, DefaultLinger)
	defaults.Set(&m.DescribeTimeout, DefaultDescribeTimeout)
	defaults.Set(&m.DialTimeout, DefaultDialTimeout)
	defaults.Set(&m.ReadTimeout, DefaultReadTimeout)
	defaults.Set(&m.SwitchTimeout, DefaultSwitchTimeout)
	defaults.Set(&m.ResolveTimeout, DefaultResolveTimeout)
	defaults.Set(&m.RequestTimeout, DefaultRequestTimeout)
	defaults.Set(&m.RecordTimeout, DefaultRecordTimeout)
	if m.Resolver == nil {
		m.Resolver = Direct{}
	}
	if m.Log == nil {
		m.Log = slog.New(slog.DiscardHandler)
	}
	switch m.UpstreamTransport {
	case "", "tcp", "udp", "auto":
	default:
		return fmt.Errorf("upstream transport %q: want tcp, udp or auto", m.UpstreamTransport)
	}
	if (m.RTPAddress == "") != (m.RTCPAddress == "") {
		return fmt.Errorf("give both the RTP and RTCP UDP addresses, or neither")
	}
	if m.Allow == nil {
		m.Allow = allow.Default(m.Listen)
	}
	if m.MaxConns < 0 {
		return fmt.Errorf("--max-conns %d is negative (0 picks the default)", m.MaxConns)
	}
	maxConns, fit := connLimit(m.MaxConns)
	if maxConns > fit {
		m.Log.Warn("the connection bound is above what the open-file limit allows: accept will fail when files run out (it is retried)",
			"max_conns", maxConns, "fits", fit)
	}
	m.MaxConns = maxConns
	m.guard = &connGuard{max: maxConns, timeout: m.RequestTimeout, log: m.Log}

	m.ctx, m.cancel = context.WithCancel(context.Background())

	if m.MulticastRange != "" {
		if _, _, err := net.ParseCIDR(m.MulticastRange); err != nil {
			return fmt.Errorf("multicast range %q: %w", m.MulticastRange, err)
		}
		if m.MulticastPorts == [2]int{} {
			m.MulticastPorts = [2]int{8002, 8003}
		}
		if m.MulticastPorts[1] != m.MulticastPorts[0]+1 {
			return fmt.Errorf("multicast RTCP port must be the RTP port + 1, got %v", m.MulticastPorts)
		}
		defaults.Set(&m.MulticastTTL, 1)
		if m.RTPAddress == "" {
			return fmt.Errorf("multicast needs UDP: set the RTP and RTCP addresses")
		}
	}

	m.srv = &gortsplib.Server{
		Handler:        m,
		RTSPAddress:    m.Listen,
		UDPRTPAddress:  m.RTPAddress,
		UDPRTCPAddress: m.RTCPAddress,
		WriteQueueSize: 1024,
		Listen: func(network, address string) (net.Listener, error) {
			l, err := net.Listen(network, address)
			if err != nil {
				return nil, err
			}
			m.addr = l.Addr().String()
			gl := m.guard.listen(l)
			if m.NoCoalesce {
				return gl, nil
			}
			return &coalescingListener{Listener: gl}, nil
		},
		ListenPacket: func(network, address string) (net.PacketConn, error) {
			pc, err := net.ListenPacket(network, address)
			if err != nil {
				return nil, err
			}
			m.udpAddrs = append(m.udpAddrs, pc.LocalAddr().String())
			return pc, nil
		},
	}
	if m.MulticastRange != "" {
		m.srv.MulticastIPRange = m.MulticastRange
		m.srv.MulticastRTPPort, m.srv.MulticastRTCPPort = m.MulticastPorts[0], m.MulticastPorts[1]
	}
	m.reg = newRegistry()
	go m.reg.run()
	if err := m.srv.Start(); err != nil {
		m.cancel()
		m.reg.shutdown()
		return fmt.Errorf("listen: %w", err)
	}

	if m.TestSource != "" {
		if err := m.startTestSource(); err != nil {
			m.srv.Close()
			m.cancel()
			m.reg.shutdown()
			return err
		}
	}
	if m.StatsInterval > 0 {
		m.wg.Add(1)
		go m.statsLoop()
	}
	return nil
}

// Addr is the bound RTSP address, valid after Start.
func (m *Mediator) Addr() string { return m.addr }

// UDPAddrs are the bound RTP and RTCP addresses, if UDP is on.
func (m *Mediator) UDPAddrs() []string { return m.udpAddrs }

// Close stops serving and waits for every goroutine. It is idempotent.
func (m *Mediator) Close() {
	m.closeOnce.Do(m.close)
}

func (m *Mediator) close() {
	relays := m.reg.streams(true).relays // and no new relay from now on
	m.cancel()
	for _, r := range relays {
		<-r.done
	}
	m.srv.Close() // publishers' sessions close and unregister their paths
	m.wg.Wait()
	for _, l := range m.reg.streams(false).locals {
		l.close()
	}
	m.reg.shutdown()
}

// Wait blocks until the server fails or is closed.
func (m *Mediator) Wait() error {
	err := m.srv.Wait()
	if m.ctx.Err() != nil {
		return nil
	}
	return err
}

// Switch moves the relay of the stream to up, make-before-break. It returns
// an error if the stream is not relayed here.
func (m *Mediator) Switch(streamURL string, up Upstream) error {
	o, err := streamurl.Parse(streamURL)
	if err != nil {
		return err
	}
	var r *relay
	for _, c := range m.reg.streams(false).relays {
		if c.origin == o {
			r = c
		}
	}
	if r == nil {
		return fmt.Errorf("stream %s is not relayed here", o.URL())
	}
	r.requestSwitch(up)
	return nil
}

// StreamStats reports every relayed stream for the local ocm-relay.
func (m *Mediator) StreamStats() []control.StreamStats {
	relays := m.reg.streams(false).relays
	out := make([]control.StreamStats, 0, len(relays))
	for _, r := range relays {
		if !r.isReady() {
			continue
		}
		all, relaying := r.readerCounts()
		_, _, lost := r.fwd.counters()
		st := control.StreamStats{Stream: r.origin.URL(), Readers: all, RelayReaders: relaying,
			PacketsIn: r.pktsIn.Load(), Lost: lost, BitrateBPS: float64(r.inRate.rate(time.Now(), r.bytesIn.Load()))}
		if up := r.current.Load(); up != nil {
			st.Upstream = up.URL
		}
		out = append(out, st)
	}
	return out
}

// currentUpstreams returns the upstream each relayed stream plays from.
func (m *Mediator) currentUpstreams() map[string]Upstream {
	out := map[string]Upstream{}
	for _, r := range m.reg.streams(false).relays {
		if up := r.current.Load(); up != nil {
			out[r.origin.URL()] = *up
		}
	}
	return out
}

// Streams lists the origin URLs relayed here with their current upstreams.
func (m *Mediator) Streams() map[string]string {
	out := map[string]string{}
	for _, r := range m.reg.streams(false).relays {
		out[r.origin.URL()] = ""
		if up := r.current.Load(); up != nil {
			out[r.origin.URL()] = up.URL
		}
	}
	return out
}

func (m *Mediator) pullConfig() pullConfig {
	cfg := pullConfig{DialTimeout: m.DialTimeout, ReadTimeout: m.ReadTimeout}
	switch m.UpstreamTransport {
	case "", "tcp":
		t := gortsplib.TransportTCP
		cfg.Transport = &t
	case "udp":
		t := gortsplib.TransportUDP
		cfg.Transport = &t
	}
	return cfg
}

// relayFor returns the relay of o, creating and starting it if needed,
// with another linger to live.
func (m *Mediator) relayFor(o streamurl.Origin) (*relay, error) {
	for {
		made := false
		r, err := m.reg.relay(o, func(o streamurl.Origin) *relay {
			made = true
			r := newRelay(m, o)
			go r.run()
			return r
		})
		if err != nil {
			return nil, err
		}
		if r.touch() || made && r.failedFirst() {
			// One made for this request that failed its first upstream
			// before the request reached it answers with its failure:
			// asking again would resolve twice for one request.
			return r, nil
		}
		// It lingered out since: it is unregistered, so the next ask
		// creates one.
	}
}

// lives reports whether s still serves new readers here.
func (m *Mediator) lives(s served) bool {
	switch s := s.(type) {
	case *relay:
		return s.isReady() && s.ctx.Err() == nil
	case *local:
		return m.reg.local(s.name) == s
	}
	return false
}

func (m *Mediator) startTestSource() error {
	src, err := testsrc.New()
	if err != nil {
		return fmt.Errorf("test source: %w", err)
	}
	desc := &description.Session{Medias: []*description.Media{src.Media()}}
	name := strings.Trim(m.TestSource, "/")
	l, err := newLocal(m.srv, name, "test", desc, nil)
	if err != nil {
		return err
	}
	if _, err := m.reg.add(name, func() (*local, error) { return l, nil }); err != nil {
		l.close()
		return fmt.Errorf("test source /%s: %w", name, err)
	}
	medi := desc.Medias[0]
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		_ = src.Run(m.ctx, func(pkt *rtp.Packet) { l.write(medi, pkt) })
	}()
	return nil
}

func (m *Mediator) statsLoop() {
	defer m.wg.Done()
	t := time.NewTicker(m.StatsInterval)
	defer t.Stop()
	for {
		select {
		case <-m.ctx.Done():
			return
		case now := <-t.C:
			var lines []event.StreamStats
			all := m.reg.streams(false)
			for _, l := range all.locals {
				lines = append(lines, l.stats(now))
			}
			for _, r := range all.relays {
				if s, ok := r.stats(now); ok {
					lines = append(lines, s)
				}
			}
			for _, s := range lines {
				m.Events.Emit(s)
			}
			m.connStats()
		}
	}
}

// connStats prints one line about the connection guard when it refused,
// closed or failed to accept anything since the last line.
func (m *Mediator) connStats() {
	gs := m.guard.stats()
	was := m.guardWas
	if gs.Refused == was.Refused && gs.Expired == was.Expired && gs.AcceptErr == was.AcceptErr {
		return
	}
	m.guardWas = gs
	m.Events.Emit(event.Conns{Open: gs.Open, MaxConns: gs.Max, Refused: gs.Refused,
		SilentClosed: gs.Expired, AcceptErrors: gs.AcceptErr})
}

// errorResponse builds an RTSP error answer whose status line carries the
// reason, so players print it (ffprobe shows the whole line).
func errorResponse(code base.StatusCode, reason string) *base.Response {
	msg := base.StatusMessages[code]
	if reason != "" {
		reason = strings.NewReplacer("\r", " ", "\n", " ").Replace(reason)
		if room := maxStatusMessage - len(msg) - len(" (...)"); len(reason) > room {
			// Players read at most so much of a status line (gortsplib
			// fails the whole answer beyond it); the log has the rest.
			reason = strings.ToValidUTF8(reason[:max(room, 0)], "") + "..."
		}
		msg += " (" + reason + ")"
	}
	return &base.Response{StatusCode: code, StatusMessage: msg}
}

// maxStatusMessage is the longest status message gortsplib's client
// reads (255 bytes with the line's CR).
const maxStatusMessage = 254
