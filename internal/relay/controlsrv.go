package relay

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/ocm-overlay/ocm/internal/control"
	"github.com/ocm-overlay/ocm/internal/retry"
	"github.com/ocm-overlay/ocm/internal/streamurl"
	"github.com/ocm-overlay/ocm/internal/wire"
)

// acceptControl serves mediators on the control socket, at most
// MaxControlClients at once.
func (r *Relay) acceptControl() {
	defer r.wg.Done()
	for {
		nc, err := r.ctlLn.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) || r.ctx.Err() != nil {
				return
			}
			r.Log.Warn("control accept", "err", err)
			if !retry.Sleep(r.ctx, 50*time.Millisecond) {
				return
			}
			continue
		}
		c := control.NewConn(nc)
		closed, full := true, false
		_ = r.call(r.ctx, func(st *state) {
			if closed = st.closed; closed {
				return
			}
			if full = len(st.mediators) >= r.MaxControlClients; !full {
				st.mediators[c] = true
			}
		})
		if closed {
			c.Close()
			return
		}
		if full {
			r.Log.Warn("control client refused: too many", "remote", c.RemoteAddr(), "max", r.MaxControlClients)
			_ = c.Reply(0, &wire.Error{Code: control.CodeBusy,
				Message: fmt.Sprintf("too many control clients: %d connected (--max-control-clients)", r.MaxControlClients)})
			c.Close()
			continue
		}
		r.wg.Add(1)
		go r.serveMediator(c)
	}
}

func (r *Relay) serveMediator(c *control.Conn) {
	defer r.wg.Done()
	log := r.Log.With("mediator", c.RemoteAddr())
	refused := 0 // actives refused; the first is logged, the rest counted
	defer func() {
		_ = r.call(context.Background(), func(st *state) { delete(st.mediators, c) })
		c.Close()
		if refused > 1 {
			log.Warn("control client gone", "actives_refused", refused)
		}
		r.dropOwned(c)
	}()
	for {
		m, err := c.ReadMsg()
		if err != nil {
			if !wire.IsBadMessage(err) && !errors.Is(err, wire.ErrVersion) && !errors.Is(err, wire.ErrLineTooLong) {
				return // the connection ended
			}
			if errors.Is(err, wire.ErrUnknownType) {
				log.Debug("unknown control message", "err", err) // a newer mediator's
			} else {
				log.Warn("bad control message", "err", err)
			}
			_ = c.Reply(m.ID, &wire.Error{Code: wire.ErrorCode(err), Message: "bad control message: " + err.Error()})
			if !wire.IsBadMessage(err) {
				// Another version, or a line over the limit: nothing more
				// will read. Let the peer read the answer before closing.
				c.Linger(time.Second)
				return
			}
			continue
		}
		switch b := m.Body.(type) {
		case *control.Hello:
			if err := r.onHello(b.RTSP); err != nil {
				log.Warn("control hello refused", "err", err)
				_ = c.Reply(m.ID, &wire.Error{Code: control.CodeRefused, Message: err.Error()})
				continue
			}
			_ = c.Reply(m.ID, &control.Welcome{Node: r.NodeID, Willing: r.Willing})
		case *control.Resolve:
			select {
			case r.resolveSlots <- struct{}{}:
			default:
				log.Warn("resolve refused: too many in progress", "stream", b.Stream, "max", r.MaxResolves)
				_ = c.Reply(m.ID, &wire.Error{Code: control.CodeBusy,
					Message: fmt.Sprintf("too many resolves in progress: %d (--max-resolves); try again", r.MaxResolves)})
				continue
			}
			r.wg.Add(1)
			go func() {
				defer r.wg.Done()
				defer func() { <-r.resolveSlots }()
				// Room for the candidate rounds of a flash crowd (JoinWait)
				// and one last round's calls.
				ctx, cancel := context.WithTimeout(r.ctx, max(3*DefaultCallTimeout, r.JoinWait+2*DefaultCallTimeout))
				defer cancel()
				start := time.Now()
				up, err := r.resolveFor(ctx, c, b)
				r.m.resolved(b.Mode, start, err)
				if err != nil {
					log.Warn("resolve failed", "stream", b.Stream, "err", err)
					code := control.CodeNoUpstream
					if errors.Is(err, ErrNoRoom) {
						code = control.CodeNoRoom
					}
					_ = c.Reply(m.ID, &wire.Error{Code: code, Message: err.Error()})
					return
				}
				_ = c.Reply(m.ID, &control.Resolved{Upstream: up})
			}()
		case *control.Active:
			if err := r.onActive(c, b); err != nil {
				if refused++; refused == 1 {
					log.Warn("active refused (further ones counted, logged when the client goes)", "stream", b.Stream, "err", err)
				}
				_ = c.Reply(m.ID, &wire.Error{Code: control.CodeRefused, Message: err.Error()})
			}
		case *control.Inactive:
			r.onInactive(c, b.Stream)
		case *control.Stats:
			r.onStats(b.Streams)
		default:
			log.Debug("unexpected control message", "type", m.Type)
			_ = c.Reply(m.ID, &wire.Error{Code: wire.CodeUnexpected, Message: "unexpected " + m.Type + " from a mediator"})
		}
	}
}

// onHello takes the RTSP address a mediator says it listens on. With
// --rtsp the relay advertises that and ignores what mediators say.
// Without, the first mediator's address is the relay's for good: a hello
// with another one (a second mediator, or any local process) is refused,
// so nobody can make the server send the relay's children elsewhere.
func (r *Relay) onHello(rtsp string) error {
	if rtsp == "" || r.RTSP != "" {
		return nil
	}
	// As ocm-server checks it: a hello it refuses would keep us out.
	if _, port, err := net.SplitHostPort(rtsp); err != nil || len(rtsp) > wire.MaxStreamLen {
		return fmt.Errorf("rtsp address %q is not host:port", rtsp)
	} else if n, err := strconv.ParseUint(port, 10, 16); err != nil || n == 0 {
		return fmt.Errorf("rtsp address %q has no valid port", rtsp)
	}
	var err error
	if cerr := r.call(r.ctx, func(st *state) {
		switch st.medRTSP {
		case "":
			st.medRTSP = rtsp
			r.Log.Info("mediator's RTSP address", "rtsp", rtsp)
		case rtsp:
		default:
			err = fmt.Errorf("rtsp address %q refused: this relay advertises %q, said by the first mediator; "+
				"restart ocm-relay or give it --rtsp to change it", rtsp, st.medRTSP)
		}
	}); cerr != nil {
		return cerr
	}
	return err
}

// onActive records the upstream the mediator plays a stream from: from
// now on the stream is in the relay's hello and reports. If the server
// does not have that parent for us (the upstream is not the one resolved,
// the origin was pulled directly while the server was away, or the server
// is another session), tell it.
func (r *Relay) onActive(c *control.Conn, m *control.Active) error {
	o, err := streamurl.Parse(m.Stream)
	if err != nil {
		return fmt.Errorf("active: %w", err)
	}
	stream, up := o.URL(), m.Upstream
	release, err := r.acquire(r.ctx, stream)
	if err != nil {
		return err
	}
	defer release()
	var sess *session
	var node string
	tell := false
	if cerr := r.call(r.ctx, func(st *state) {
		var ss *streamState
		if ss, _, err = st.claim(stream, c, r.MaxStreams); err != nil {
			return
		}
		sess = st.session()
		known := ss.parent != "" && ss.upstream.URL == up.URL && ss.joinedIn == sess
		if node = up.Node; node == "" {
			node = ss.nodes[up.Addr]
		}
		ss.playing, ss.answered, ss.upstream = true, time.Time{}, up
		if !known && node != "" && sess == nil {
			if ss.parent != node {
				ss.rttMs = 0 // not measured
			}
			ss.parent, ss.parentRTSP, ss.joinedIn = node, up.Addr, nil // said in the next hello
		}
		ss.settle()
		tell = !known && node != "" && sess != nil
	}); cerr != nil {
		return cerr
	}
	if err != nil || !tell {
		return err
	}
	r.tellJoined(sess, stream, node, up.Addr)
	return nil
}

// tellJoined tells the server of sess that the relay receives stream from
// node (at addr), with the RTT to it if the relay measured it, and
// records the answer. The caller holds the stream's turn.
func (r *Relay) tellJoined(sess *session, stream, node, addr string) {
	var rtt float64
	_ = r.call(r.ctx, func(st *state) {
		if ss := st.streams[stream]; ss != nil && ss.parent == node {
			rtt = ss.rttMs
		}
	})
	ctx, cancel := context.WithTimeout(r.ctx, DefaultCallTimeout)
	defer cancel()
	level, err := sess.cl.JoinWith(ctx, &wire.Joined{Stream: stream, Parent: node, RTTMs: rtt})
	if err != nil {
		r.Log.Warn("server refused the upstream in use", "stream", stream, "parent", node, "err", err)
		return
	}
	_ = r.call(r.ctx, func(st *state) {
		if ss := st.streams[stream]; ss != nil {
			if ss.parent != node {
				ss.rttMs = 0 // not measured
			}
			ss.parent, ss.parentRTSP, ss.joinedIn = node, addr, sess
			if level > 0 {
				ss.level = level
			}
			ss.settle()
		}
	})
}

// declareMissed joins, in sess, each stream that plays but that sess's
// hello did not declare: one the mediator said it plays while the hello
// was on its way, or one the hello left out for the line limit. Each
// waits for its turn, and is told only if it still plays from a parent
// sess does not know.
func (r *Relay) declareMissed(sess *session, streams []string) {
	for _, stream := range streams {
		release, err := r.acquire(r.ctx, stream)
		if err != nil {
			return
		}
		var node, addr string
		_ = r.call(r.ctx, func(st *state) {
			ss := st.streams[stream]
			if ss != nil && ss.playing && ss.parent != "" && ss.joinedIn != sess &&
				ss.phase != phaseLeaving && st.session() == sess {
				node, addr = ss.parent, ss.parentRTSP
			}
		})
		if node != "" {
			r.tellJoined(sess, stream, node, addr)
		}
		release()
	}
}

// onInactive leaves a stream the mediator no longer relays (or never got
// to play: a resolve that did not lead to media). Only the mediator that
// resolved or plays the stream may say so.
func (r *Relay) onInactive(c *control.Conn, stream string) {
	o, err := streamurl.Parse(stream)
	if err != nil {
		return
	}
	stream = o.URL()
	release, err := r.acquire(r.ctx, stream)
	if err != nil {
		return
	}
	defer release()
	found, mine := false, false
	_ = r.call(r.ctx, func(st *state) {
		ss := st.streams[stream]
		found = ss != nil
		mine = found && (ss.owner == c || !st.mediators[ss.owner])
	})
	if !found {
		return
	}
	if !mine {
		r.Log.Info("inactive ignored: another control client plays the stream", "stream", stream)
		return
	}
	r.drop(stream, "inactive")
}

func (r *Relay) onStats(streams []control.StreamStats) {
	_ = r.call(r.ctx, func(st *state) {
		for _, s := range streams {
			if ss := st.streams[s.Stream]; ss != nil {
				ss.stats = s
			}
		}
	})
}

// report builds the periodic report from the mediator's latest stats.
func (r *Relay) report() (rep *wire.Report, err error) {
	err = r.call(r.ctx, func(st *state) { rep = st.report(r) })
	return rep, err
}

func (st *state) report(r *Relay) *wire.Report {
	w := r.Willing
	rep := &wire.Report{CPU: r.cpu.Busy(), Willing: &w}
	for s, ss := range st.streams {
		if !ss.playing || ss.phase == phaseLeaving {
			continue // not playing: nothing to report
		}
		cur, prev := ss.stats, ss.reported
		loss := 0.0
		if dl, dp := cur.Lost-min(prev.Lost, cur.Lost), cur.PacketsIn-min(prev.PacketsIn, cur.PacketsIn); dl+dp > 0 {
			loss = float64(dl) / float64(dl+dp)
		}
		ss.reported = cur
		rep.Clients += cur.Readers
		rep.Streams = append(rep.Streams, wire.StreamReport{Stream: s, Parent: ss.parent, Level: ss.level,
			Readers: cur.Readers, Loss: min(loss, 1), Bitrate: cur.BitrateBPS, RTTMs: ss.rttMs})
	}
	slices.SortFunc(rep.Streams, func(a, b wire.StreamReport) int { return strings.Compare(a.Stream, b.Stream) })
	all := rep.Streams
	if k := fitLine(len(all), func(k int) int { rep.Streams = all[:k]; return encodedLen(rep) }); k < len(all) {
		// Each report takes the next streams in turn, so the server
		// re-attaches every stream a hello could not declare.
		from := st.reportFrom % len(all)
		all = slices.Concat(all[from:], all[:from])
		k = fitLine(len(all), func(k int) int { rep.Streams = all[:k]; return encodedLen(rep) })
		st.reportFrom = from + max(k, 1)
		r.Log.Warn("report over the line limit: streams in turn", "streams", len(all), "reported", k)
		rep.Streams = all[:k]
	}
	return rep
}
