// Package server is ocm-server: it accepts relays on the OCM TCP port
// (package wire), keeps the overlay's trees (package tree) in one state
// goroutine, applies the recovery policy when a relay fails, and serves a
// JSON API and Prometheus metrics over HTTP.
//
// A relay leaving a stream it still serves children on (left, or a drain)
// hands them over gracefully: see handover.go and the wire package doc.
//
// Events go to Events as JSON lines: ready (first, with the bound
// addresses), node_joined, node_left, node_failed, node_replaced,
// child_stalled, node_quarantined, node_released (see stall.go),
// tree_joined, tree_left, tree_pending, tree_orphaned, tree_removed,
// tree_displaced (a relay took the slot of a far child, which moves
// under it: tree.Forest.JoinVia), join_rejected, reconnect_sent,
// drain_sent, handover_started, handover_done, policy_changed and
// rejected (bad input from a connection, or a hello with the node id of
// a live connection: refused with duplicate_node, the live one
// untouched).
//
// HTTP API (JSON; errors are {"error":"..."} with a 4xx status):
//
//	GET  /api/v1/nodes                   every node: api.Node + remote, connected, last_seen
//	                                     (quarantined, quarantine_reason: see stall.go)
//	GET  /api/v1/streams                 every stream: api.Stream + origin
//	GET  /api/v1/tree?stream=S           one api.Tree (404 if unknown)
//	GET  /api/v1/tree                    every tree, as a list
//	GET  /api/v1/policy                  recovery policy and timings
//	POST /api/v1/policy?recovery=P       change the recovery policy
//	POST /api/v1/reconnect?node=ID[&stream=S][&subtree=1][&to=PARENT]
//	                                     send reconnect (reason operator) to the node,
//	                                     or its whole subtree; to= suggests a new parent
//	POST /api/v1/kick?node=ID            close the node's connection, as a failure
//	POST /api/v1/drain?node=ID           hand the node's children over (as for left) and
//	                                     tell it to leave (drain)
//	GET  /metrics                        Prometheus text format
package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ocm-overlay/ocm/internal/event"
	"github.com/ocm-overlay/ocm/internal/tree"
	"github.com/ocm-overlay/ocm/internal/wire"
)

// Defaults, applied by Start to zero fields.
const (
	DefaultListen         = ":7070"
	DefaultHTTP           = "127.0.0.1:7080"
	DefaultRecovery       = tree.Repair
	DefaultReportInterval = 10 * time.Second
	DefaultHeartbeat      = 2 * time.Second // a node silent for MissedHeartbeats intervals has failed
	DefaultMaxCandidates  = 5
	DefaultOriginCapacity = 4
	// DefaultNearCandidates is how many relays near the requester (by the
	// address it connects from: tree.Forest.SetNearby) are offered beside
	// the MaxCandidates best; bench/scale's simulator measured why.
	DefaultNearCandidates = 5
	// DefaultDisplace is how many full relays, besides the origin, are
	// offered for displacement (tree.Forest.SetDisplace): a relay much
	// closer to one of them than its farthest child may take that
	// child's slot (wire.Displaces), so the relays nearest the origin end
	// up at the top of the tree (bench/scale's simulator models it).
	DefaultDisplace      = 4
	DefaultReconnectStep = 500 * time.Millisecond
	// DefaultHandoverTimeout bounds a graceful handover: how long a
	// leaving relay's left waits for its children to switch.
	DefaultHandoverTimeout = 2 * time.Second
	// DefaultOrphanGrace is how long an orphan may stay detached (waiting
	// for a parent that has not said hello since a restart, or not having
	// rejoined after a reconnect) before it is told to reconnect (again).
	// Long enough for every relay to reconnect after a server restart.
	DefaultOrphanGrace  = 30 * time.Second
	DefaultHelloTimeout = 10 * time.Second
	DefaultWriteTimeout = 5 * time.Second
	// HTTP bounds: a whole request (headers and body) must arrive within
	// DefaultHTTPReadTimeout, a response be written within
	// DefaultHTTPWriteTimeout (per handler, so a streaming one can lift
	// it), a kept-alive connection idle for DefaultHTTPIdleTimeout is
	// closed. The API's requests carry their parameters in the query: a
	// body over DefaultHTTPMaxBody is refused (413).
	DefaultHTTPReadTimeout    = 10 * time.Second
	DefaultHTTPWriteTimeout   = 30 * time.Second
	DefaultHTTPIdleTimeout    = 60 * time.Second
	DefaultHTTPMaxHeaderBytes = 16 << 10
	DefaultHTTPMaxBody        = 64 << 10
	// Black holes (see stall.go): StallLimit distinct children stalling
	// under a parent within DefaultStallWindow quarantine it until its
	// reports are clean for DefaultQuarantineClean (doubled per repeat);
	// a stall is judged DefaultStallConfirm after the child said so.
	DefaultStallWindow     = time.Minute
	DefaultStallLimit      = 2
	DefaultStallConfirm    = 5 * time.Second
	DefaultQuarantineClean = 2 * time.Minute
	// DefaultFDReserve is how many file descriptors of the open-file limit
	// are kept for everything but relay connections (listeners, the HTTP
	// API's clients, logs) when MaxRelays is not set.
	DefaultFDReserve = 64
	// MissedHeartbeats is how many heartbeat intervals of silence make a
	// node failed.
	MissedHeartbeats = wire.MissedHeartbeats
	// maxQueued bounds each connection's outgoing queue; a relay that lets
	// it fill is too slow to be part of the overlay and is disconnected.
	maxQueued = 256
)

// DefaultPendingHeartbeats and DefaultMinPendingGrace set
// Server.PendingGrace when it is zero: that many heartbeat intervals, and
// no less than the minimum. A relay notices a closed connection at once
// and an unanswering server within MissedHeartbeats+1 intervals, and
// retries an unreachable one after at most 2 s (plus a 1 s dial timeout),
// so after a failover or a restart a child's hello is followed by its
// parent's within about that, unless the parent went elsewhere. Erring
// long costs little: a pending relay still receives from its parent (the
// server is not in the media path), and one whose parent died finds a new
// one on its own when its stream stalls.
const (
	DefaultPendingHeartbeats = 5
	DefaultMinPendingGrace   = 5 * time.Second
)

// HTTPOff as the HTTP address disables the HTTP server.
const HTTPOff = "off"

// Server is ocm-server. Set the exported fields, then Start; Close stops
// it. Fields must not change after Start.
type Server struct {
	Listen         string      // OCM TCP address; port 0 picks one
	HTTP           string      // HTTP address; HTTPOff disables it
	Recovery       tree.Policy // what a node's failure does to its subtree
	ReportInterval time.Duration
	Heartbeat      time.Duration
	MaxCandidates  int // relays offered per request, besides the origin
	// OriginCapacity is the origin's direct children per stream; negative
	// means none (every relay must find a relay parent: only useful in
	// tests), zero means the default.
	OriginCapacity int
	// NearCandidates is how many relays sharing the longest address
	// prefix with the requester are offered besides MaxCandidates;
	// negative means none, zero the default.
	NearCandidates int
	// Displace is how many full relays (the shallowest whose farthest
	// child is far) are offered for displacement besides the origin;
	// negative means none but the origin, zero the default. NoDisplace
	// turns displacement off entirely: nothing is offered for it and a
	// joined asking for it is treated as a plain one.
	Displace   int
	NoDisplace bool
	// Token is the shared secret relays present in their hello; when set,
	// every state-changing API call (POST) must carry it too, as
	// "Authorization: Bearer TOKEN". Empty: none.
	Token string
	// APIReadToken, when set, closes the API's reads (GET, /metrics) too:
	// they need it or Token as their bearer token. Empty: reads are open.
	APIReadToken string
	// Version is the build, said in the ready line; empty: not said.
	Version string
	// ReconnectStep is the longest delay between the levels told under
	// the gradual policy: the next level goes as soon as the previous one
	// has rejoined.
	ReconnectStep time.Duration
	// HandoverTimeout bounds a graceful handover (left or drain).
	HandoverTimeout time.Duration
	OrphanGrace     time.Duration
	HelloTimeout    time.Duration
	WriteTimeout    time.Duration
	MaxLine         int // longest accepted line; default wire.MaxLineLen
	// MaxRelays bounds the relay connections held at once; one more is
	// answered busy and closed, so the server never runs out of file
	// descriptors (its HTTP API, among others, keeps working). Zero: the
	// open-file limit less DefaultFDReserve.
	MaxRelays int
	// PendingGrace is how long a relay whose hello declares a parent the
	// server does not have in the stream's tree (its hello has not come
	// yet, e.g. during a failover or after a restart) is held detached,
	// "pending under" that parent: attached when the parent's hello (or
	// join) makes it a member, if that makes no cycle and the parent has
	// room (else told to rejoin at once); told to rejoin through
	// candidates (RECONNECT, parent_missing) when the bound passes first.
	// Zero: DefaultPendingHeartbeats heartbeat intervals, at least
	// DefaultMinPendingGrace.
	PendingGrace time.Duration
	// StallWindow, StallLimit, StallConfirm and QuarantineClean rule the
	// quarantine of black holes (see stall.go and the Default*
	// constants); a negative StallLimit disables it.
	StallWindow     time.Duration
	StallLimit      int
	StallConfirm    time.Duration
	QuarantineClean time.Duration
	// HTTP server bounds (see the DefaultHTTP* constants).
	HTTPReadTimeout    time.Duration
	HTTPWriteTimeout   time.Duration
	HTTPIdleTimeout    time.Duration
	HTTPMaxHeaderBytes int
	HTTPMaxBody        int64
	// EventRing is how many events GET /api/v1/events keeps for clients
	// that resume; EventClientBuffer how many may wait for one client
	// before it is dropped (see events.go and the Default* constants).
	EventRing         int
	EventClientBuffer int

	Log    *slog.Logger  // nil: discard
	Events *event.Writer // nil: discard; Start also tees it to /api/v1/events, so each server needs its own
	// Now is the clock for heartbeats and timestamps; nil: time.Now.
	Now func() time.Time
	// ListenFunc opens the listeners; nil: net.Listen.
	ListenFunc func(network, addr string) (net.Listener, error)

	// duplicateGrace is duplicateGrace unless a test shortens it.
	duplicateGrace time.Duration

	ln       net.Listener
	httpLn   net.Listener
	httpSrv  *http.Server
	ctx      context.Context
	cancel   context.CancelFunc
	reqs     chan func(*state)
	parker   *parker        // idle connections (park_linux.go); nil: none parked
	workers  *workers       // run parked connections' messages and send queues (workers.go)
	wg       sync.WaitGroup // accept loop, HTTP, state loop, parker
	conns    sync.WaitGroup // connection goroutines
	nconns   atomic.Int64   // relay connections held (counted by the accept loop)
	refusing atomic.Int64   // busy refusals being written
	loopEnd  chan struct{}
	hub      *hub    // the event stream (events.go)
	sum      summary // report_summary (events.go), state goroutine only

	lastBusy atomic.Int64 // unix ns of the last busy refusal logged

	// The /metrics registry and the state goroutine's counters in it
	// (metrics.go).
	reg      *prometheus.Registry
	counters counters

	errMu     sync.Mutex
	err       error
	closeOnce sync.Once
}

// errClosed is returned by requests made after the server stopped.
var errClosed = errors.New("server closed")

func (s *Server) fill() error {
	if s.Listen == "" {
		s.Listen = DefaultListen
	}
	if s.HTTP == "" {
		s.HTTP = DefaultHTTP
	}
	if s.Recovery == "" {
		s.Recovery = DefaultRecovery
	}
	if _, err := tree.ParsePolicy(string(s.Recovery)); err != nil {
		return err
	}
	durations := []struct {
		p   *time.Duration
		def time.Duration
		n   string
	}{
		{&s.ReportInterval, DefaultReportInterval, "report interval"},
		{&s.Heartbeat, DefaultHeartbeat, "heartbeat"},
		{&s.ReconnectStep, DefaultReconnectStep, "reconnect step"},
		{&s.HandoverTimeout, DefaultHandoverTimeout, "handover timeout"},
		{&s.OrphanGrace, DefaultOrphanGrace, "orphan grace"},
		{&s.HelloTimeout, DefaultHelloTimeout, "hello timeout"},
		{&s.WriteTimeout, DefaultWriteTimeout, "write timeout"},
		{&s.HTTPReadTimeout, DefaultHTTPReadTimeout, "http read timeout"},
		{&s.HTTPWriteTimeout, DefaultHTTPWriteTimeout, "http write timeout"},
		{&s.HTTPIdleTimeout, DefaultHTTPIdleTimeout, "http idle timeout"},
		{&s.StallWindow, DefaultStallWindow, "stall window"},
		{&s.StallConfirm, DefaultStallConfirm, "stall confirm"},
		{&s.QuarantineClean, DefaultQuarantineClean, "quarantine clean"},
	}
	for _, d := range durations {
		if *d.p == 0 {
			*d.p = d.def
		}
		if *d.p < time.Millisecond {
			return fmt.Errorf("%s %v is below 1ms", d.n, *d.p)
		}
	}
	if s.PendingGrace == 0 {
		s.PendingGrace = max(DefaultPendingHeartbeats*s.Heartbeat, DefaultMinPendingGrace)
	}
	if s.PendingGrace < 0 {
		return fmt.Errorf("pending grace %v is negative", s.PendingGrace)
	}
	if s.MaxCandidates == 0 {
		s.MaxCandidates = DefaultMaxCandidates
	}
	if s.MaxCandidates < 0 {
		return fmt.Errorf("max candidates %d is negative", s.MaxCandidates)
	}
	if s.OriginCapacity == 0 {
		s.OriginCapacity = DefaultOriginCapacity
	}
	if s.OriginCapacity < 0 {
		s.OriginCapacity = 0
	}
	if s.NearCandidates == 0 {
		s.NearCandidates = DefaultNearCandidates
	}
	if s.NearCandidates < 0 {
		s.NearCandidates = 0
	}
	if s.Displace == 0 {
		s.Displace = DefaultDisplace
	}
	if s.Displace < 0 {
		s.Displace = 0
	}
	if s.StallLimit == 0 {
		s.StallLimit = DefaultStallLimit
	}
	if s.HTTPMaxHeaderBytes == 0 {
		s.HTTPMaxHeaderBytes = DefaultHTTPMaxHeaderBytes
	}
	if s.HTTPMaxBody == 0 {
		s.HTTPMaxBody = DefaultHTTPMaxBody
	}
	if s.HTTPMaxHeaderBytes < 0 || s.HTTPMaxBody < 0 {
		return fmt.Errorf("http max header bytes %d and max body %d must not be negative", s.HTTPMaxHeaderBytes, s.HTTPMaxBody)
	}
	if s.EventRing == 0 {
		s.EventRing = DefaultEventRing
	}
	if s.EventClientBuffer == 0 {
		s.EventClientBuffer = DefaultEventClientBuffer
	}
	if s.EventRing < 1 || s.EventClientBuffer < 1 {
		return fmt.Errorf("event ring %d and client buffer %d must be >= 1", s.EventRing, s.EventClientBuffer)
	}
	if s.duplicateGrace <= 0 {
		s.duplicateGrace = duplicateGrace
	}
	if s.MaxLine <= 0 {
		s.MaxLine = wire.MaxLineLen
	}
	if s.MaxRelays < 0 {
		return fmt.Errorf("max relays %d is negative", s.MaxRelays)
	}
	if s.MaxRelays == 0 {
		s.MaxRelays = relaysForFDs()
	}
	if s.Log == nil {
		s.Log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if s.Now == nil {
		s.Now = time.Now
	}
	if s.ListenFunc == nil {
		s.ListenFunc = net.Listen
	}
	return nil
}

// displaceSetting is what --displace says of the filled Displace and
// NoDisplace: -1 off, else the full relays offered besides the origin.
func (s *Server) displaceSetting() int {
	if s.NoDisplace {
		return -1
	}
	return s.Displace
}

// Start fills the defaults, opens the listeners, emits the ready event
// and starts serving.
func (s *Server) Start() error {
	if err := s.fill(); err != nil {
		return err
	}
	s.reg, s.counters = s.registerMetrics()
	ln, err := s.ListenFunc("tcp", s.Listen)
	if err != nil {
		return fmt.Errorf("listen ocm %s: %w", s.Listen, err)
	}
	s.ln = ln
	httpAddr := ""
	if s.HTTP != HTTPOff {
		hl, err := s.ListenFunc("tcp", s.HTTP)
		if err != nil {
			ln.Close()
			return fmt.Errorf("listen http %s: %w", s.HTTP, err)
		}
		s.httpLn = hl
		httpAddr = hl.Addr().String()
		// No server-wide WriteTimeout: it would cut a streaming response
		// (server-sent events); each handler gets its own deadline
		// instead (see limited). ReadTimeout covers headers and body, and
		// ends once the body is read, so it does not limit a stream.
		s.httpSrv = &http.Server{Handler: s.limited(s.authorized(s.handler())), ReadTimeout: s.HTTPReadTimeout,
			ReadHeaderTimeout: s.HTTPReadTimeout,
			IdleTimeout:       s.HTTPIdleTimeout, MaxHeaderBytes: s.HTTPMaxHeaderBytes}
		if ta, ok := hl.Addr().(*net.TCPAddr); ok && !ta.IP.IsLoopback() && s.Token == "" {
			s.Log.Warn("the HTTP API listens beyond this host without a token: anyone who reaches "+
				httpAddr+" can move, kick and drain relays; set --token (or $OCM_TOKEN)", "http", httpAddr)
		}
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.reqs = make(chan func(*state))
	s.loopEnd = make(chan struct{})
	s.Log = s.Log.With("component", "ocm-server")
	s.hub = newHub(s.EventRing, s.EventClientBuffer, idBase(time.Now()))
	if s.Events == nil {
		s.Events = event.NewWriter(io.Discard) // the event stream still needs them
	}
	s.Events.Tee(s.hub.publish)

	// The ready line comes before anything a connection could cause.
	s.Events.Emit(event.ServerReady{OCM: ln.Addr().String(), HTTP: httpAddr, Version: s.Version})
	s.Log.Info("listening", "ocm", ln.Addr().String(), "http", httpAddr,
		"recovery", s.Recovery, "heartbeat", s.Heartbeat, "token", s.Token != "")

	st := newState(s)
	s.wg.Add(2)
	go func() { defer s.wg.Done(); st.run(s.ctx) }()
	go func() { defer s.wg.Done(); s.acceptLoop() }()
	s.workers = newWorkers(s.ctx)
	if p, err := newParker(s); err != nil {
		s.Log.Warn("every relay connection keeps a goroutine: no epoll set", "err", err)
	} else if p != nil {
		s.parker = p
		s.wg.Add(1)
		go func() { defer s.wg.Done(); p.run(s.ctx) }()
	}
	if s.httpSrv != nil {
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			if err := s.httpSrv.Serve(s.httpLn); err != nil && !errors.Is(err, http.ErrServerClosed) {
				s.fail(fmt.Errorf("http: %w", err))
			}
		}()
	}
	return nil
}

// Addr returns the bound OCM address (after Start).
func (s *Server) Addr() string { return s.ln.Addr().String() }

// HTTPAddr returns the bound HTTP address, "" when disabled.
func (s *Server) HTTPAddr() string {
	if s.httpLn == nil {
		return ""
	}
	return s.httpLn.Addr().String()
}

// Close stops the server: no message is sent, connections are closed, so
// relays keep their streams and re-hello to the next server. Idempotent.
func (s *Server) Close() {
	s.closeOnce.Do(func() {
		if s.cancel == nil {
			return // never started
		}
		s.cancel()
		s.ln.Close()
		s.hub.close() // event streams end, so Shutdown need not wait for them
		if s.httpSrv != nil {
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			if err := s.httpSrv.Shutdown(ctx); err != nil {
				s.httpSrv.Close()
			}
			cancel()
		}
	})
	s.Wait()
}

// Wait waits until the server has stopped and returns the error that
// stopped it, nil after Close.
func (s *Server) Wait() error {
	s.wg.Wait()
	s.conns.Wait()
	s.workers.wait() // after conns: nothing starts a task any more
	s.errMu.Lock()
	defer s.errMu.Unlock()
	return s.err
}

// fail records a fatal error and stops the server.
func (s *Server) fail(err error) {
	s.errMu.Lock()
	if s.err == nil {
		s.err = err
	}
	s.errMu.Unlock()
	s.Log.Error("stopping", "err", err)
	go s.Close()
}

func (s *Server) acceptLoop() {
	var backoff time.Duration
	for {
		nc, err := s.ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) || s.ctx.Err() != nil {
				return
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() || isTemporary(err) {
				backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
				s.Log.Warn("accept", "err", err, "retry_in", backoff)
				select {
				case <-time.After(backoff):
					continue
				case <-s.ctx.Done():
					return
				}
			}
			s.fail(fmt.Errorf("accept: %w", err))
			return
		}
		backoff = 0
		if s.nconns.Load() >= int64(s.MaxRelays) {
			// Refusals in flight are bounded too, within the reserve.
			if s.refusing.Add(1) > DefaultFDReserve/2 {
				s.refusing.Add(-1)
				nc.Close()
				continue
			}
			s.conns.Add(1)
			go func() {
				defer s.conns.Done()
				defer s.refusing.Add(-1)
				s.refuseBusy(nc)
			}()
			continue
		}
		s.nconns.Add(1)
		s.conns.Add(1)
		go s.serveConn(nc) // connDone uncounts it

	}
}

// relaysForFDs is the default MaxRelays: the open-file limit (which Go
// raises to the hard limit at start) less DefaultFDReserve.
func relaysForFDs() int {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil || rl.Cur > 1<<30 {
		return 1 << 30 // unknown or unlimited
	}
	return max(int(rl.Cur)-DefaultFDReserve, 1)
}

// refuseBusy answers a connection over MaxRelays with a final busy error
// and closes it: the relay retries later, as after any refused hello.
func (s *Server) refuseBusy(nc net.Conn) {
	c := wire.NewConn(nc)
	defer c.Close()
	c.SetWriteTimeout(time.Second)
	if s.busyNoted(time.Now()) {
		s.Log.Warn("relay refused: the server holds its maximum of relays (--max-relays; raise the open-file limit)",
			"remote", nc.RemoteAddr().String(), "max_relays", s.MaxRelays)
	}
	// Answer the hello itself, so the relay's request gets the reason.
	c.SetReadTimeout(time.Second)
	m, _ := c.ReadMsg()
	if c.WriteMsg(wire.Msg{Re: m.ID, Body: &wire.Error{Code: wire.CodeBusy,
		Message: fmt.Sprintf("the server holds its maximum of %d relays: try again later", s.MaxRelays)}}) == nil {
		c.Linger(linger)
	}
}

// busyNoted reports whether a busy refusal at now is logged (one a
// second at most: a crowd makes many).
func (s *Server) busyNoted(now time.Time) bool {
	last := s.lastBusy.Load()
	return now.UnixNano()-last >= int64(time.Second) && s.lastBusy.CompareAndSwap(last, now.UnixNano())
}

// isTemporary reports errors an accept loop should retry (too many open
// files, aborted connections).
func isTemporary(err error) bool {
	var t interface{ Temporary() bool }
	return errors.As(err, &t) && t.Temporary()
}

// call runs fn in the state goroutine and waits for it. It fails only if
// ctx ends or the server stops before fn was taken.
func (s *Server) call(ctx context.Context, fn func(*state)) error {
	done := make(chan struct{})
	select {
	case s.reqs <- func(st *state) { fn(st); close(done) }:
	case <-ctx.Done():
		return ctx.Err()
	case <-s.loopEnd:
		return errClosed
	}
	<-done // the state goroutine never blocks inside fn
	return nil
}
