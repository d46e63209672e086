package mediator

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/bluenviron/gortsplib/v4"
	"github.com/bluenviron/gortsplib/v4/pkg/description"
	"github.com/pion/rtp"

	"github.com/ocm-overlay/ocm/internal/event"
	"github.com/ocm-overlay/ocm/internal/retry"
	"github.com/ocm-overlay/ocm/internal/streamurl"
)

// During a make-before-break switch, an old upstream silent for oldStalled
// is not worth waiting for (checked every switchCheck): a few frame times.
const (
	oldStalled  = 120 * time.Millisecond
	switchCheck = 20 * time.Millisecond
)

// errStall is the reason an upstream is dropped when it stops sending.
var errStall = errors.New("no RTP within the stall timeout")

// relay serves one origin stream pulled from an upstream that can change
// under its readers. Its goroutine run owns the readers and the linger
// and decides when the stream closes; feed, which run starts, owns the
// upstream, the forwarder and the served streams. Packets go from the
// upstream's reader goroutine through the forwarder to the readers
// without either goroutine.
type relay struct {
	m      *Mediator
	origin streamurl.Origin
	log    *slog.Logger

	ctx    context.Context
	cancel context.CancelFunc
	done   chan struct{}

	ready   chan struct{}           // closed when ss is set or failErr is
	ss      *gortsplib.ServerStream // UDP and multicast readers
	fan     *tcpFan                 // TCP readers
	desc    *description.Session
	pts     []map[uint8]bool // payload types served, per media
	fwd     *forwarder
	failErr error

	switchReq chan Upstream // to feed: one pending request, the newest

	// Requests to run, the goroutine that owns the readers and the linger.
	addReader    chan addReaderReq
	removeReader chan *gortsplib.ServerSession
	touchReq     chan chan bool
	countReq     chan chan readerCounts

	current  atomic.Pointer[Upstream]
	switches atomic.Uint64
	bytesIn  atomic.Uint64
	pktsIn   atomic.Uint64
	bitrate  rateMeter // for stats lines
	inRate   rateMeter // for the relay's reports
	// For /metrics: upstreams played (the first and every change since),
	// upstreams lost, and the bitrate scrapes see.
	upstreams  atomic.Uint64
	losses     atomic.Uint64
	scrapeRate heldRate
}

func newRelay(m *Mediator, o streamurl.Origin) *relay {
	ctx, cancel := context.WithCancel(m.ctx)
	r := &relay{
		m:            m,
		origin:       o,
		log:          m.Log.With("stream", o.URL()),
		ctx:          ctx,
		cancel:       cancel,
		done:         make(chan struct{}),
		ready:        make(chan struct{}),
		switchReq:    make(chan Upstream, 1),
		addReader:    make(chan addReaderReq),
		removeReader: make(chan *gortsplib.ServerSession),
		touchReq:     make(chan chan bool),
		countReq:     make(chan chan readerCounts),
	}
	r.bitrate.start(time.Now())
	r.inRate.start(time.Now())
	r.scrapeRate.start(time.Now())
	return r
}

func (r *relay) streams() (*gortsplib.ServerStream, *tcpFan) { return r.ss, r.fan }

// relayState is where a relay is in its life, as run sees it.
type relayState int

const (
	relayStarting relayState = iota // feed is opening the first upstream
	relayServing                    // readers are served (the upstream may be between two)
	relayClosing                    // unregistered: no new readers; feed is closing
)

type addReaderReq struct {
	ss      *gortsplib.ServerSession
	isRelay bool // the reader is a downstream relay
	res     chan bool
}

type readerCounts struct{ all, relays int }

// run owns the relay's readers: it adds and removes them, counts them, and
// when none has come for a linger closes the stream: unregistered first,
// so a new reader finds or creates another relay instead.
func (r *relay) run() {
	defer close(r.done)
	fed := make(chan struct{})
	go func() {
		defer close(fed)
		r.feed()
	}()
	readers := map[*gortsplib.ServerSession]bool{}
	// The linger runs only while serving with no readers: a relay still
	// opening its first upstream is what a DESCRIBE waits for.
	linger := time.NewTimer(r.m.Linger)
	linger.Stop()
	defer linger.Stop()
	state, ready := relayStarting, r.ready
	closing := func() {
		state = relayClosing
		linger.Stop()
		r.cancel()
	}
	for {
		select {
		case <-ready:
			ready = nil
			if r.failErr == nil {
				state = relayServing
				if len(readers) == 0 {
					linger.Reset(r.m.Linger)
				}
			}
		case q := <-r.addReader:
			if state == relayClosing {
				q.res <- false
				continue
			}
			readers[q.ss] = q.isRelay
			linger.Stop()
			q.res <- true
		case ss := <-r.removeReader:
			delete(readers, ss)
			if len(readers) == 0 && state == relayServing {
				linger.Reset(r.m.Linger)
			}
		case res := <-r.touchReq:
			if state == relayServing && len(readers) == 0 {
				linger.Reset(r.m.Linger)
			}
			res <- state != relayClosing
		case res := <-r.countReq:
			c := readerCounts{all: len(readers)}
			for _, isRelay := range readers {
				if isRelay {
					c.relays++
				}
			}
			res <- c
		case <-linger.C:
			if len(readers) == 0 && state == relayServing && r.m.reg.forget(r) {
				r.log.Info("closing upstream: no readers", "linger", r.m.Linger)
				closing()
			}
		case <-fed:
			// The first upstream failed, or the relay or the mediator closed.
			if state != relayClosing {
				r.m.reg.forget(r)
			}
			return
		}
	}
}

// ask sends q to run and waits for its reply; ok is false once run has
// returned.
func askRelay[Q any, R any](r *relay, ch chan Q, q Q, res chan R) (reply R, ok bool) {
	select {
	case ch <- q:
		return <-res, true
	case <-r.done:
		return reply, false
	}
}

// add makes ss a reader; false when the relay is closing, and the reader
// must find the stream again.
func (r *relay) add(ss *gortsplib.ServerSession, isRelay bool) bool {
	res := make(chan bool, 1)
	ok, _ := askRelay(r, r.addReader, addReaderReq{ss: ss, isRelay: isRelay, res: res}, res)
	return ok
}

func (r *relay) remove(ss *gortsplib.ServerSession) {
	select {
	case r.removeReader <- ss:
	case <-r.done:
	}
}

// touch keeps a relay with no readers alive for another linger, when a
// DESCRIBE finds it; false when it is closing.
func (r *relay) touch() bool {
	res := make(chan bool, 1)
	ok, _ := askRelay(r, r.touchReq, res, res)
	return ok
}

// readerCounts returns all readers and those that are relays.
func (r *relay) readerCounts() (all, relays int) {
	res := make(chan readerCounts, 1)
	c, _ := askRelay(r, r.countReq, res, res)
	return c.all, c.relays
}

// waitReady waits until the first upstream is playing or has failed.
func (r *relay) waitReady(ctx context.Context) error {
	select {
	case <-r.ready:
		return r.failErr
	case <-ctx.Done():
		return ctx.Err()
	}
}

// failedFirst reports whether the relay ended without ever serving: its
// first upstream failed (failErr says why).
func (r *relay) failedFirst() bool {
	select {
	case <-r.ready:
		return r.failErr != nil
	default:
		return false
	}
}

// isReady reports whether the stream is being served (r.ss and r.fwd set).
func (r *relay) isReady() bool {
	select {
	case <-r.ready:
		return r.failErr == nil
	default:
		return false
	}
}

// requestSwitch asks the relay to move to up, make-before-break.
func (r *relay) requestSwitch(up Upstream) {
	select {
	case r.switchReq <- up:
	default:
		// One pending request is enough: replace it with the newer one.
		select {
		case <-r.switchReq:
		default:
		}
		select {
		case r.switchReq <- up:
		default:
		}
	}
}

// Pacing of the upstream loop. An upstream that failed is avoided for
// excludeFor if anything else is offered (exclusions); retries after a
// failure wait at most retryMax, jittered, so an upstream that comes back
// (the origin restarted, a parent whose own upstream returned) is found
// within about that.
const (
	retryMin   = 50 * time.Millisecond
	retryMax   = 500 * time.Millisecond
	excludeFor = 5 * time.Second
)

// feed keeps the stream fed: resolve, pull, watch, and on loss resolve
// again avoiding what failed, with backoff, until the relay is closed.
func (r *relay) feed() {
	defer r.shutdown()

	ex := exclusions{ttl: excludeFor}
	backoff := retry.Backoff{Min: retryMin, Max: retryMax, Immediate: true, Jitter: true}
	_, p, err := r.connect(nil)
	if err != nil {
		if errors.Is(err, ErrNoRoom) {
			r.log.Warn("no parent with room: the first request fails", "err", err)
		} else {
			r.log.Warn("origin unreachable", "origin", r.origin.Addr(), "err", err)
		}
		r.failErr = err
		close(r.ready)
		return
	}
	close(r.ready)
	for r.ctx.Err() == nil {
		started, in := time.Now(), r.pktsIn.Load()
		err := r.watch(p)
		if r.ctx.Err() != nil {
			return
		}
		lost := r.current.Load()
		r.losses.Add(1)
		r.log.Warn("upstream lost", "upstream", lost.URL, "err", err)
		r.m.Events.Emit(event.Upstream{Stream: r.origin.URL(), State: "lost", Upstream: lost.URL, Reason: err.Error()})
		if time.Since(started) > r.m.StallTimeout && r.pktsIn.Load() > in {
			backoff.Reset() // it played: a new loss, not a flapping upstream
		}
		ex.add(lost.Addr, time.Now())
		if p = r.reconnect(&ex, &backoff); p == nil {
			return
		}
	}
}

// reconnect finds and opens a new upstream after a loss, retrying until
// one plays; nil when the relay is closed first. A resolve that finds
// nothing while upstreams are excluded is asked again at once without
// them: what failed may be the only way (the origin restarted, or the
// parent whose own upstream went away and comes back).
func (r *relay) reconnect(ex *exclusions, backoff *retry.Backoff) *pull {
	for r.ctx.Err() == nil {
		exclude := ex.list(time.Now())
		up, p, err := r.connect(exclude)
		if err == nil {
			return p
		}
		switch {
		case errors.Is(err, errResolve) && len(exclude) > 0:
			ex.forget()
			r.log.Debug("no upstream but the ones that failed: asking again without excluding them", "excluded", exclude, "err", err)
			continue
		case errors.Is(err, errResolve):
		default:
			ex.add(up.Addr, time.Now())
		}
		d := backoff.Next()
		r.log.Warn("upstream failed, retrying", "upstream", up.URL, "err", err, "retry_in", d)
		if !retry.Sleep(r.ctx, d) {
			return nil
		}
	}
	return nil
}

// connect resolves an upstream and starts pulling from it.
func (r *relay) connect(exclude []string) (Upstream, *pull, error) {
	ctx, cancel := context.WithTimeout(r.ctx, r.m.ResolveTimeout)
	up, err := r.m.Resolver.Resolve(ctx, ResolveRequest{Origin: r.origin, Exclude: exclude})
	cancel()
	if err != nil {
		return up, nil, fmt.Errorf("%w: %w", errResolve, err)
	}
	p, _, err := r.open(up)
	if err != nil {
		return up, nil, err
	}
	r.becameActive(up)
	return up, p, nil
}

// open pulls from up and attaches it to the forwarder: active at once if
// nothing is, else pending until it overlaps the current upstream.
func (r *relay) open(up Upstream) (*pull, <-chan struct{}, error) {
	cfg := r.m.pullConfig()
	if up.URL == r.origin.URL() {
		cfg.Allow = r.m.Allow // the origin itself: the host the allow list judged
	}
	p, err := openPull(r.ctx, up, cfg, r.onPacket)
	if err != nil {
		return nil, nil, err
	}
	if r.ss == nil {
		if err := r.serve(p.desc); err != nil {
			p.close()
			return nil, nil, err
		}
	} else if err := compatible(r.desc, p.desc); err != nil {
		p.close()
		return nil, nil, fmt.Errorf("upstream %s: %w", up.URL, err)
	}
	active := r.fwd.attach(p.id)
	if err := p.start(); err != nil {
		r.fwd.detach(p.id)
		return nil, nil, err
	}
	return p, active, nil
}

// serve creates the stream readers see, from the first upstream's description.
func (r *relay) serve(desc *description.Session) error {
	ss := &gortsplib.ServerStream{Server: r.m.srv, Desc: desc}
	if err := ss.Initialize(); err != nil {
		return err
	}
	fan, err := newTCPFan(r.m.srv, desc)
	if err != nil {
		ss.Close()
		return err
	}
	r.fan = fan
	r.desc = desc
	r.pts = payloadTypes(desc)
	r.fwd = newForwarder(len(desc.Medias), r.write)
	r.ss = ss
	return nil
}

func (r *relay) becameActive(up Upstream) {
	r.current.Store(&up)
	r.upstreams.Add(1)
	r.log.Info("upstream playing", "upstream", up.URL)
	r.m.Events.Emit(event.Upstream{Stream: r.origin.URL(), State: "playing", Upstream: up.URL, Node: up.Node})
	if n, ok := r.m.Resolver.(Notifier); ok {
		n.Active(r.origin, up)
	}
}

// watch returns when p closes or stalls, switching upstreams on request in
// between; the pull it returns about has been detached.
func (r *relay) watch(p *pull) error {
	tick := time.NewTicker(max(r.m.StallTimeout/4, 10*time.Millisecond))
	defer tick.Stop()
	started := time.Now()
	for {
		select {
		case <-r.ctx.Done():
			r.drop(p)
			return r.ctx.Err()
		case <-p.done:
			r.fwd.detach(p.id)
			return fmt.Errorf("upstream closed: %w", p.err)
		case now := <-tick.C:
			grace := r.m.StallTimeout
			if p.packets.Load() == 0 {
				grace = max(grace, r.m.FirstPacketTimeout)
			}
			if p.idle(now, started) > grace {
				r.drop(p)
				return errStall
			}
		case up := <-r.switchReq:
			if up.URL == p.up.URL {
				continue // already there (the relay and our own recovery agreed)
			}
			if np := r.switchTo(p, up); np != nil {
				p, started = np, time.Now()
			}
		}
	}
}

// switchTo opens up alongside p and moves the readers over once the new
// upstream's packets overlap the old one's; it returns the new pull, or nil
// when the switch failed and p stays.
func (r *relay) switchTo(p *pull, up Upstream) *pull {
	r.log.Info("switching upstream", "from", p.up.URL, "to", up.URL)
	np, active, err := r.open(up)
	if err != nil {
		r.log.Warn("switch failed, keeping upstream", "upstream", p.up.URL, "to", up.URL, "err", err)
		r.m.Events.Emit(event.Upstream{Stream: r.origin.URL(), State: "switch-failed", Upstream: up.URL, Reason: err.Error()})
		return nil
	}
	timer := time.NewTimer(r.m.SwitchTimeout)
	defer timer.Stop()
	// Waiting for the two upstreams to overlap only makes sense while the
	// old one flows; once it has stalled (its own upstream died: the case
	// of a relay told to reconnect because an ancestor failed) nothing more
	// will come from it, so the new one takes over as soon as it sends.
	tick := time.NewTicker(switchCheck)
	defer tick.Stop()
	started := time.Now()
wait:
	for {
		select {
		case <-active:
			break wait
		case <-p.done:
			// The old upstream died first: the new one takes over with the gap.
			break wait
		case <-np.done:
			r.fwd.detach(np.id)
			r.log.Warn("switch failed, new upstream closed", "to", up.URL, "err", np.err)
			return nil
		case now := <-tick.C:
			if np.packets.Load() > 0 && p.idle(now, started) > oldStalled {
				r.log.Info("old upstream stalled: switching without overlap", "to", up.URL)
				r.fwd.force(np.id)
				break wait
			}
		case <-timer.C:
			r.log.Warn("switch did not overlap in time, forcing it", "to", up.URL, "timeout", r.m.SwitchTimeout)
			r.fwd.force(np.id)
			break wait
		case <-r.ctx.Done():
			r.drop(np)
			return nil
		}
	}
	r.drop(p)
	r.switches.Add(1)
	r.becameActive(up)
	return np
}

// drop closes p and stops forwarding from it.
func (r *relay) drop(p *pull) {
	r.fwd.detach(p.id)
	p.close()
	<-p.done
}

func (r *relay) onPacket(p *pull, media int, pkt *rtp.Packet) {
	r.pktsIn.Add(1)
	n := uint64(pkt.MarshalSize())
	r.bytesIn.Add(n)
	r.fwd.packet(p.id, media, pkt)
}

// write hands a packet to gortsplib for UDP and multicast readers, and to
// the fan for TCP readers.
func (r *relay) write(media int, pkt *rtp.Packet) {
	if !r.pts[media][pkt.PayloadType] {
		return // gortsplib has no format for it
	}
	_ = r.ss.WritePacketRTP(r.desc.Medias[media], pkt)
	r.fan.write(media, pkt)
}

// shutdown closes what run opened; readers' sessions end with the stream.
func (r *relay) shutdown() {
	if r.ss != nil {
		r.fan.close()
		r.ss.Close()
	}
	// Also when nothing ever played: the ocm relay keeps what it resolved
	// for us until we say so.
	if n, ok := r.m.Resolver.(Notifier); ok {
		n.Inactive(r.origin)
	}
	if r.current.Load() != nil {
		r.m.Events.Emit(event.Upstream{Stream: r.origin.URL(), State: "closed"})
	}
}

func (r *relay) stats(now time.Time) (event.StreamStats, bool) {
	if !r.isReady() {
		return event.StreamStats{}, false // r.ss and r.fwd are being set up, or failed
	}
	readers, _ := r.readerCounts()
	fwd, dropped, lost := r.fwd.counters()
	rc := &event.RelayCounters{PacketsForwarded: fwd, Duplicates: dropped, Switches: r.switches.Load()}
	if up := r.current.Load(); up != nil {
		rc.Upstream = up.URL
	}
	return event.StreamStats{
		Stream:        r.origin.URL(),
		Kind:          "relay",
		Readers:       int64(readers),
		PacketsIn:     r.pktsIn.Load(),
		PacketsOut:    r.ss.Stats().RTPPacketsSent + r.fan.pktsOut.Load(),
		Lost:          lost,
		BitrateBPS:    r.bitrate.rate(now, r.bytesIn.Load()),
		RelayCounters: rc,
	}, true
}

func payloadTypes(desc *description.Session) []map[uint8]bool {
	out := make([]map[uint8]bool, len(desc.Medias))
	for i, m := range desc.Medias {
		out[i] = map[uint8]bool{}
		for _, f := range m.Formats {
			out[i][f.PayloadType()] = true
		}
	}
	return out
}
