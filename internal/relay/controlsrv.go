package relay

import (
	"context"
	"errors"
	"net"
	"time"

	"github.com/ocm-overlay/ocm/internal/control"
	"github.com/ocm-overlay/ocm/internal/retry"
	"github.com/ocm-overlay/ocm/internal/wire"
)

// acceptControl serves mediators on the control socket.
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
		r.mediators[c] = true
		r.mu.Unlock()
		r.wg.Add(1)
		go r.serveMediator(c)
	}
}

func (r *Relay) serveMediator(c *control.Conn) {
	defer r.wg.Done()
	defer func() {
		r.mu.Lock()
		delete(r.mediators, c)
		r.mu.Unlock()
		c.Close()
	}()
	log := r.Log.With("mediator", c.RemoteAddr())
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
			r.mu.Lock()
			changed := m.RTSP != "" && m.RTSP != r.medRTSP && r.RTSP == ""
			if m.RTSP != "" {
				r.medRTSP = m.RTSP
			}
			sess := r.sess
			r.mu.Unlock()
			if changed && sess != nil {
				// The server has us at another address: say hello again.
				log.Info("mediator address changed, reconnecting to ocm-server", "rtsp", m.RTSP)
				sess.close()
			}
			w := r.Willing
			_ = c.Write(control.Msg{Re: m.ID, Node: r.NodeID, Willing: &w})
		case control.OpResolve:
			r.wg.Add(1)
			go func() {
				defer r.wg.Done()
				ctx, cancel := context.WithTimeout(r.ctx, 3*DefaultCallTimeout)
				defer cancel()
				var up control.Upstream
				var err error
				if len(m.Exclude) > 0 && !m.Redirect {
					up, err = r.resolveAfterLoss(ctx, m.Stream, m.Exclude)
				} else {
					up, err = r.resolve(ctx, m.Stream, m.Exclude, m.Redirect)
				}
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
			r.onActive(m)
		case control.OpInactive:
			r.onInactive(m.Stream)
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

// onActive records the upstream the mediator actually plays from. If it is
// not the parent the server knows (the origin pulled directly while the
// server was away), tell the server.
func (r *Relay) onActive(m control.Msg) {
	if m.Upstream == nil {
		return
	}
	r.mu.Lock()
	st := r.streams[m.Stream]
	if st == nil {
		st = &streamState{}
		r.streams[m.Stream] = st
	}
	known := st.upstream.URL == m.Upstream.URL && st.parent != ""
	node := m.Upstream.Node
	if node == "" {
		node = r.addrNode[m.Upstream.Addr]
	}
	st.upstream = *m.Upstream
	sess := r.sess
	r.mu.Unlock()
	if known || node == "" || sess == nil {
		if node != "" {
			r.mu.Lock()
			st.parent = node
			r.mu.Unlock()
		}
		return
	}
	ctx, cancel := context.WithTimeout(r.ctx, DefaultCallTimeout)
	defer cancel()
	am, err := sess.call(ctx, &wire.Joined{Stream: m.Stream, Parent: node})
	if err != nil {
		r.Log.Warn("server refused the upstream in use", "stream", m.Stream, "parent", node, "err", err)
		return
	}
	r.mu.Lock()
	st.parent, st.parentRTSP = node, m.Upstream.Addr
	if ack, ok := am.Body.(*wire.Ack); ok && ack.Level > 0 {
		st.level = ack.Level
	}
	r.mu.Unlock()
}

func (r *Relay) onInactive(stream string) {
	r.mu.Lock()
	_, ok := r.streams[stream]
	delete(r.streams, stream)
	sess := r.sess
	r.mu.Unlock()
	if !ok || sess == nil {
		return
	}
	ctx, cancel := context.WithTimeout(r.ctx, DefaultCallTimeout)
	defer cancel()
	if _, err := sess.call(ctx, &wire.Left{Stream: stream}); err != nil {
		r.Log.Info("left", "stream", stream, "err", err)
	}
	r.Events.Emit("left", map[string]any{"stream": stream})
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
	return rep
}
