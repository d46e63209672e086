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
		r.mu.Lock()
		if r.closed {
			r.mu.Unlock()
			c.Close()
			return
		}
		if len(r.mediators) >= r.MaxControlClients {
			r.mu.Unlock()
			r.Log.Warn("control client refused: too many", "remote", c.RemoteAddr(), "max", r.MaxControlClients)
			_ = c.Write(control.Msg{Error: fmt.Sprintf("too many control clients: %d connected (--max-control-clients)", r.MaxControlClients)})
			c.Close()
			continue
		}
		r.mediators[c] = true
		r.mu.Unlock()
		r.wg.Add(1)
		go r.serveMediator(c)
	}
}

func (r *Relay) serveMediator(c *control.Conn) {
	defer r.wg.Done()
	log := r.Log.With("mediator", c.RemoteAddr())
	refused := 0 // actives refused; the first is logged, the rest counted
	defer func() {
		r.mu.Lock()
		delete(r.mediators, c)
		r.mu.Unlock()
		c.Close()
		if refused > 1 {
			log.Warn("control client gone", "actives_refused", refused)
		}
		r.dropOwned(c)
	}()
	for {
		m, err := c.Read()
		if errors.Is(err, control.ErrBadMessage) {
			log.Warn("bad control message", "err", err)
			_ = c.Write(control.Msg{Error: err.Error()})
			continue
		}
		if err != nil {
			return
		}
		switch m.Op {
		case control.OpHello:
			reply := control.Msg{Re: m.ID, Node: r.NodeID}
			if err := r.onHello(m.RTSP); err != nil {
				log.Warn("control hello refused", "err", err)
				reply = control.Msg{Re: m.ID, Error: err.Error()}
			} else {
				w := r.Willing
				reply.Willing = &w
			}
			_ = c.Write(reply)
		case control.OpResolve:
			select {
			case r.resolveSlots <- struct{}{}:
			default:
				log.Warn("resolve refused: too many in progress", "stream", m.Stream, "max", r.MaxResolves)
				_ = c.Write(control.Msg{Re: m.ID, Error: fmt.Sprintf("too many resolves in progress: %d (--max-resolves); try again", r.MaxResolves)})
				continue
			}
			r.wg.Add(1)
			go func() {
				defer r.wg.Done()
				defer func() { <-r.resolveSlots }()
				ctx, cancel := context.WithTimeout(r.ctx, 3*DefaultCallTimeout)
				defer cancel()
				up, err := r.resolveFor(ctx, c, m)
				reply := control.Msg{Re: m.ID}
				if err != nil {
					reply.Error = err.Error()
					log.Warn("resolve failed", "stream", m.Stream, "err", err)
				} else {
					reply.Upstream = &up
				}
				_ = c.Write(reply)
			}()
		case control.OpActive:
			if err := r.onActive(c, m); err != nil {
				if refused++; refused == 1 {
					log.Warn("active refused (further ones counted, logged when the client goes)", "stream", m.Stream, "err", err)
				}
				_ = c.Write(control.Msg{Re: m.ID, Error: err.Error()})
			}
		case control.OpInactive:
			r.onInactive(c, m.Stream)
		case control.OpStats:
			r.onStats(m.Streams)
		default:
			log.Debug("unknown control op", "op", m.Op)
			if m.ID != 0 {
				_ = c.Write(control.Msg{Re: m.ID, Error: "unknown op " + m.Op})
			}
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
	r.mu.Lock()
	defer r.mu.Unlock()
	switch r.medRTSP {
	case "":
		r.medRTSP = rtsp
		r.Log.Info("mediator's RTSP address", "rtsp", rtsp)
		return nil
	case rtsp:
		return nil
	}
	return fmt.Errorf("rtsp address %q refused: this relay advertises %q, said by the first mediator; "+
		"restart ocm-relay or give it --rtsp to change it", rtsp, r.medRTSP)
}

// onActive records the upstream the mediator plays a stream from: from
// now on the stream is in the relay's hello and reports. If the server
// does not have that parent for us (the upstream is not the one resolved,
// the origin was pulled directly while the server was away, or the server
// is another session), tell it.
func (r *Relay) onActive(c *control.Conn, m control.Msg) error {
	if m.Upstream == nil {
		return fmt.Errorf("active for %q without an upstream", m.Stream)
	}
	o, err := streamurl.Parse(m.Stream)
	if err != nil {
		return fmt.Errorf("active: %w", err)
	}
	stream, up := o.URL(), *m.Upstream
	defer r.lockStream(stream)()
	st, err := r.claim(stream, c)
	if err != nil {
		return err
	}
	r.mu.Lock()
	sess := r.sess
	known := st.parent != "" && st.upstream.URL == up.URL && st.joinedIn == sess
	node := up.Node
	if node == "" {
		node = st.nodes[up.Addr]
	}
	st.phase, st.upstream = stateActive, up
	if !known && node != "" && sess == nil {
		st.parent, st.parentRTSP, st.joinedIn = node, up.Addr, nil // said in the next hello
	}
	r.mu.Unlock()
	if known || node == "" || sess == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(r.ctx, DefaultCallTimeout)
	defer cancel()
	am, err := sess.call(ctx, &wire.Joined{Stream: stream, Parent: node})
	if err != nil {
		r.Log.Warn("server refused the upstream in use", "stream", stream, "parent", node, "err", err)
		return nil
	}
	r.mu.Lock()
	st.parent, st.parentRTSP, st.joinedIn = node, up.Addr, sess
	if ack, ok := am.Body.(*wire.Ack); ok && ack.Level > 0 {
		st.level = ack.Level
	}
	r.mu.Unlock()
	return nil
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
	defer r.lockStream(stream)()
	r.mu.Lock()
	st := r.streams[stream]
	mine := st != nil && (st.owner == c || !r.mediators[st.owner])
	r.mu.Unlock()
	if st == nil {
		return
	}
	if !mine {
		r.Log.Info("inactive ignored: another control client plays the stream", "stream", stream)
		return
	}
	r.drop(stream, "inactive")
}

func (r *Relay) onStats(streams []control.StreamStats) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, s := range streams {
		if st := r.streams[s.Stream]; st != nil {
			st.stats = s
		}
	}
}

// report builds the periodic report from the mediator's latest stats.
func (r *Relay) report() *wire.Report {
	r.mu.Lock()
	defer r.mu.Unlock()
	w := r.Willing
	rep := &wire.Report{CPU: r.cpu.Busy(), Willing: &w}
	for s, st := range r.streams {
		if st.phase != stateActive {
			continue // not playing: nothing to report
		}
		cur, prev := st.stats, st.reported
		loss := 0.0
		if dl, dp := cur.Lost-min(prev.Lost, cur.Lost), cur.PacketsIn-min(prev.PacketsIn, cur.PacketsIn); dl+dp > 0 {
			loss = float64(dl) / float64(dl+dp)
		}
		st.reported = cur
		rep.Clients += cur.Readers
		rep.Streams = append(rep.Streams, wire.StreamReport{Stream: s, Parent: st.parent, Level: st.level,
			Readers: cur.Readers, Loss: min(loss, 1), Bitrate: cur.BitrateBPS})
	}
	slices.SortFunc(rep.Streams, func(a, b wire.StreamReport) int { return strings.Compare(a.Stream, b.Stream) })
	all := rep.Streams
	if k := fitLine(len(all), func(k int) int { rep.Streams = all[:k]; return encodedLen(rep) }); k < len(all) {
		// Each report takes the next streams in turn, so the server
		// re-attaches every stream a hello could not declare.
		from := r.reportFrom % len(all)
		all = slices.Concat(all[from:], all[:from])
		k = fitLine(len(all), func(k int) int { rep.Streams = all[:k]; return encodedLen(rep) })
		r.reportFrom = from + max(k, 1)
		r.Log.Warn("report over the line limit: streams in turn", "streams", len(all), "reported", k)
		rep.Streams = all[:k]
	}
	return rep
}
