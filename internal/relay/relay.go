// Package relay is ocm-relay, the per-host agent of the overlay: it keeps a
// permanent connection to ocm-server, answers the local mediator's resolve
// requests by asking the server for candidates, probing and scoring them,
// reports every interval, answers other relays' probes, and pushes
// switches to the mediator when the tree changes.
package relay

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"runtime"
	"sync"
	"time"

	"github.com/ocm-overlay/ocm/internal/allow"
	"github.com/ocm-overlay/ocm/internal/control"
	"github.com/ocm-overlay/ocm/internal/event"
	"github.com/ocm-overlay/ocm/internal/probe"
	"github.com/ocm-overlay/ocm/internal/wire"
)

// Defaults, in one place.
const (
	DefaultControl     = "127.0.0.1:7071"
	DefaultProbe       = ":7072"
	DefaultServerPort  = "7070"
	DefaultCapacity    = 4
	DefaultDialTimeout = time.Second
	// DefaultCallTimeout bounds one request to the server.
	DefaultCallTimeout = 2 * time.Second
	// leaveGrace keeps serving children a moment after telling the server
	// we leave, so their switch to a new parent is make-before-break.
	leaveGrace = 500 * time.Millisecond
	// DefaultMaxStreams bounds the streams one relay receives (resolving,
	// waiting for media, or playing): each is an edge in the server's
	// tree and a line of the hello and of every report.
	DefaultMaxStreams = 64
	// DefaultMaxControlClients bounds the connections to the control
	// socket (one mediator needs one).
	DefaultMaxControlClients = 8
	// DefaultMaxResolves bounds the resolves in progress at once; more
	// are answered with an error at once.
	DefaultMaxResolves = 16
	// DefaultActiveTimeout is how long a stream resolved for the mediator
	// may wait for the mediator's active (its upstream playing) before the
	// relay leaves it: a resolve that never leads to media leaves nothing.
	DefaultActiveTimeout = 20 * time.Second
	// DefaultJoinAttempts and DefaultJoinWait bound how often, and how
	// long, one resolve asks the server for candidates again when the
	// parents offered had no room (full by the time of the join, or none
	// free yet): a flash crowd is offered the same few parents, and the
	// relays that just joined are parents a moment later. A few rounds
	// of doubling waits reach the tree's next levels; the wait fits in
	// the player's patience (rtsp-mediator --describe-timeout, 5 s, and
	// --resolve-timeout, 8 s, with the pull still to open).
	DefaultJoinAttempts = 10
	DefaultJoinWait     = 3 * time.Second
	// DefaultImproveEvery is how often a relay looks for a better parent
	// for each stream it receives (improve.go); MaxImproveEvery is the
	// longest its wait grows to while it finds none (it doubles after
	// every round without a move).
	DefaultImproveEvery = 30 * time.Second
	MaxImproveEvery     = 5 * time.Minute
)

// Relay is the agent. Fill the exported fields, then Start.
type Relay struct {
	// Server is the ocm-server address, or a comma-separated list of
	// them (a standby after the active one: see ParseServers); empty: the
	// origin's host, port 7070, on first use.
	Server   string
	Control  string // control socket for the mediator
	Probe    string // UDP probe responder address
	RTSP     string // this host's mediator as other hosts reach it; empty: what the mediator says
	NodeID   string // default: hostname-pid
	Token    string
	Willing  bool
	Capacity int // max children over all streams
	Weights  probe.Weights

	MaxStreams        int           // streams at once; 0: DefaultMaxStreams
	MaxControlClients int           // control connections at once; 0: DefaultMaxControlClients
	MaxResolves       int           // resolves in progress at once; 0: DefaultMaxResolves
	ActiveTimeout     time.Duration // resolved to active; 0: DefaultActiveTimeout
	// JoinAttempts and JoinWait bound one resolve's candidate rounds
	// when the parents offered have no room (0: DefaultJoinAttempts,
	// DefaultJoinWait).
	JoinAttempts int
	JoinWait     time.Duration
	// ImproveEvery is the base wait between two improvement rounds of a
	// stream (improve.go; 0: DefaultImproveEvery); NoImprove turns them
	// off (ocm-relay --improve-every 0).
	ImproveEvery time.Duration
	NoImprove    bool

	// AllowOrigin says which origins' hosts may serve as the ocm-server
	// when Server is empty (nil: loopback only): the relay sends its
	// hello and token there, so a player naming any origin must not
	// choose where they go. Other origins are pulled directly.
	AllowOrigin *allow.List
	// ServerPort is the port of a server taken from the origin's host
	// (empty: DefaultServerPort).
	ServerPort string

	Events *event.Writer
	Log    *slog.Logger

	ctx       context.Context
	cancel    context.CancelFunc
	wg        sync.WaitGroup
	closeOnce sync.Once
	ctlLn     net.Listener
	resp      *probe.Responder
	cpu       *probe.CPUSampler

	resolveSlots chan struct{} // one per resolve in progress
	m            *relayMetrics // made by Start (metrics.go)

	// reqs carries requests to the state goroutine (run), which owns
	// the relay's state; loopEnd is closed when it has stopped.
	reqs    chan func(*state)
	loopEnd chan struct{}
}

// Start validates the configuration and starts the control socket, the
// probe responder and, if the server address is known, the server session.
func (r *Relay) Start() error {
	if r.Control == "" {
		r.Control = DefaultControl
	}
	if r.Probe == "" {
		r.Probe = DefaultProbe
	}
	if r.Capacity < 0 {
		return fmt.Errorf("capacity %d is negative", r.Capacity)
	}
	if r.NodeID == "" {
		h, _ := os.Hostname()
		r.NodeID = fmt.Sprintf("%s-%d", h, os.Getpid())
	}
	if r.Weights == (probe.Weights{}) {
		r.Weights = probe.DefaultWeights()
	}
	// A relay that relays can take a displaced child: it may ask for
	// the slot of a full parent's farthest child (wire.Displaces).
	r.Weights.Displace = r.Willing && r.Capacity > 0
	if r.Log == nil {
		r.Log = slog.New(slog.DiscardHandler)
	}
	if err := r.fillLimits(); err != nil {
		return err
	}
	if r.AllowOrigin == nil {
		r.AllowOrigin, _ = allow.Parse("loopback")
	}
	if r.ServerPort == "" {
		r.ServerPort = DefaultServerPort
	}
	servers, err := ParseServers(r.Server)
	if err != nil {
		return err
	}
	if r.RTSP != "" {
		if _, _, err := net.SplitHostPort(r.RTSP); err != nil {
			return fmt.Errorf("rtsp address %q: %w", r.RTSP, err)
		}
	}
	r.ctx, r.cancel = context.WithCancel(context.Background())
	r.resolveSlots = make(chan struct{}, r.MaxResolves)
	r.m = newRelayMetrics()
	r.reqs = make(chan func(*state))
	r.loopEnd = make(chan struct{})

	r.ctlLn, err = net.Listen("tcp", r.Control)
	if err != nil {
		r.cancel()
		return fmt.Errorf("control socket: %w", err)
	}
	r.cpu = probe.NewCPUSampler()
	r.resp = &probe.Responder{Listen: r.Probe, Info: r.probeInfo, Log: r.Log}
	if err := r.resp.Start(); err != nil {
		r.ctlLn.Close()
		r.cancel()
		return fmt.Errorf("probe responder: %w", err)
	}
	r.wg.Add(4)
	go r.run(newState(servers))
	go r.acceptControl()
	go r.keepServer()
	go r.expirePending()
	if !r.NoImprove {
		r.wg.Add(1)
		go r.improveLoop()
	}
	return nil
}

// fillLimits sets the bounds' defaults and checks them.
func (r *Relay) fillLimits() error {
	for _, l := range []struct {
		name string
		v    *int
		def  int
	}{
		{"max streams", &r.MaxStreams, DefaultMaxStreams},
		{"max control clients", &r.MaxControlClients, DefaultMaxControlClients},
		{"max resolves", &r.MaxResolves, DefaultMaxResolves},
		{"join attempts", &r.JoinAttempts, DefaultJoinAttempts},
	} {
		if *l.v < 0 {
			return fmt.Errorf("%s %d is negative", l.name, *l.v)
		}
		if *l.v == 0 {
			*l.v = l.def
		}
	}
	if r.MaxStreams > wire.MaxListLen {
		return fmt.Errorf("max streams %d is over the %d a hello may list", r.MaxStreams, wire.MaxListLen)
	}
	if r.ActiveTimeout < 0 {
		return fmt.Errorf("active timeout %v is negative", r.ActiveTimeout)
	}
	if r.ActiveTimeout == 0 {
		r.ActiveTimeout = DefaultActiveTimeout
	}
	if r.JoinWait < 0 {
		return fmt.Errorf("join wait %v is negative", r.JoinWait)
	}
	if r.JoinWait == 0 {
		r.JoinWait = DefaultJoinWait
	}
	if r.ImproveEvery < 0 {
		return fmt.Errorf("improve interval %v is negative (0 is the default, %v; NoImprove turns the rounds off)", r.ImproveEvery, DefaultImproveEvery)
	}
	if r.ImproveEvery == 0 {
		r.ImproveEvery = DefaultImproveEvery
	}
	return nil
}

// ControlAddr and ProbeAddr are the bound addresses, valid after Start.
func (r *Relay) ControlAddr() string { return r.ctlLn.Addr().String() }

// Done is closed when the relay has closed, e.g. after a drain.
func (r *Relay) Done() <-chan struct{} { return r.ctx.Done() }

// ProbeAddr is the probe responder's bound address.
func (r *Relay) ProbeAddr() string { return r.resp.Addr() }

// Close leaves the overlay at once: the server notices the closed
// connection and repairs the tree.
func (r *Relay) Close() {
	r.closeOnce.Do(r.close)
}

func (r *Relay) close() {
	var sess *session
	var meds []*control.Conn
	_ = r.call(context.Background(), func(st *state) {
		st.closed = true
		sess = st.sess
		for c := range st.mediators {
			meds = append(meds, c)
		}
	})
	r.cancel()
	r.ctlLn.Close()
	if sess != nil {
		sess.close()
	}
	for _, c := range meds {
		c.Close()
	}
	r.resp.Close()
	r.cpu.Close()
	r.wg.Wait()
}

// Leave hands the relay's children over and closes: it sends left for
// every stream at once; the server finds the children new parents and
// answers each left when they have all switched (or after its handover
// timeout); the relay keeps serving a moment more so the children's
// make-before-break switches finish, then closes.
func (r *Relay) Leave(ctx context.Context) {
	var sess *session
	var streams []string
	_ = r.call(ctx, func(st *state) {
		sess = st.sess
		for s, ss := range st.streams {
			if ss.phase != phaseResolving && ss.phase != phaseLeaving {
				streams = append(streams, s)
			}
		}
	})
	if sess != nil && len(streams) > 0 {
		wait := sess.welcome.Handover() + time.Second
		var wg sync.WaitGroup
		for _, s := range streams {
			wg.Add(1)
			go func() {
				defer wg.Done()
				cctx, cancel := context.WithTimeout(ctx, max(wait, DefaultCallTimeout))
				defer cancel()
				if err := sess.cl.Leave(cctx, s); err != nil {
					r.Log.Warn("leave", "stream", s, "err", err)
				}
			}()
		}
		wg.Wait()
		r.Events.Emit(event.LeftOverlay{Streams: streams})
		t := time.NewTimer(leaveGrace)
		select {
		case <-t.C:
		case <-ctx.Done():
		}
		t.Stop()
	}
	r.Close()
}

// probeInfo answers other relays' probes.
func (r *Relay) probeInfo(stream string) probe.Info {
	info := probe.Info{Node: r.NodeID, Level: -1, Cores: runtime.NumCPU(), CPU: r.cpu.Busy(),
		FreeMem: probe.FreeMemory(), Willing: r.Willing}
	children := 0
	_ = r.call(r.ctx, func(st *state) {
		for s, ss := range st.streams {
			info.Clients += ss.stats.Readers
			children += ss.stats.RelayReaders
			if s == stream && ss.parent != "" && ss.phase != phaseLeaving {
				info.Level = ss.level
			}
		}
	})
	info.FreeCapacity = max(r.Capacity-children, 0)
	return info
}

// rtspAddr is the mediator address offered to other relays.
func (r *Relay) rtspAddr() string {
	if r.RTSP != "" {
		return r.RTSP
	}
	var a string
	_ = r.call(r.ctx, func(st *state) { a = st.medRTSP })
	return a
}

// errNoRTSP: a willing relay waits for its mediator's address.
var errNoRTSP = errors.New("waiting for the mediator to connect and say its RTSP address (or give --rtsp)")

// errClosed is returned by requests made while the relay shuts down.
var errClosed = errors.New("relay is closing")
