package relay

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/ocm-overlay/ocm/internal/event"
	"github.com/ocm-overlay/ocm/internal/retry"
	"github.com/ocm-overlay/ocm/internal/wire"
)

// session is one connection to ocm-server, from hello to close.
type session struct {
	r       *Relay
	cl      *wire.Client
	addr    string
	welcome wire.Welcome
	done    chan struct{}
	once    sync.Once
	// why is what ended the session when the relay ended it (heartbeats
	// unanswered); set before done is closed.
	why error
}

// dialServer connects, says hello with the streams already relayed, and
// waits for the welcome.
func (r *Relay) dialServer(ctx context.Context, addr string) (*session, error) {
	c, err := wire.Dial("tcp", addr, DefaultDialTimeout)
	if err != nil {
		return nil, err
	}
	cl := wire.NewClient(c)
	hello := &wire.Hello{Node: r.NodeID, RTSP: r.rtspAddr(), Probe: r.ProbeAddr(), Willing: r.Willing,
		Capacity: r.Capacity, Cores: runtime.NumCPU(), Token: r.Token, Agent: "ocm-relay"}
	if !r.Willing || hello.RTSP == "" {
		hello.Willing, hello.RTSP = false, ""
	}
	if err := r.call(ctx, func(st *state) {
		for s, ss := range st.streams {
			// Only what plays: a stream still resolving or waiting for
			// media is joined again, if at all, when the mediator says it
			// plays; one being left is gone.
			if ss.parent != "" && ss.playing && ss.phase != phaseLeaving {
				hello.Streams = append(hello.Streams, wire.Relayed{Stream: s, Parent: ss.parent, ParentRTSP: ss.parentRTSP,
					Level: ss.level, RTTMs: ss.rttMs})
			}
		}
	}); err != nil {
		cl.Close()
		return nil, err
	}
	// MaxStreams bounds the list; long stream names could still take it
	// past the line limit, and a hello over it would never get us in.
	slices.SortFunc(hello.Streams, func(a, b wire.Relayed) int { return strings.Compare(a.Stream, b.Stream) })
	all := hello.Streams
	if k := fitLine(len(all), func(k int) int { hello.Streams = all[:k]; return encodedLen(hello) }); k < len(all) {
		r.Log.Warn("hello over the line limit: leaving streams out",
			"streams", len(all), "declared", k)
		hello.Streams = all[:k]
	}
	hctx, cancel := context.WithTimeout(ctx, DefaultCallTimeout)
	defer cancel()
	w, err := cl.Hello(hctx, hello)
	if err != nil {
		cl.Close()
		return nil, fmt.Errorf("hello to %s: %w", addr, err)
	}
	sess := &session{r: r, cl: cl, addr: addr, welcome: *w, done: make(chan struct{})}
	if err := r.call(ctx, func(st *state) {
		for _, d := range hello.Streams {
			if ss := st.streams[d.Stream]; ss != nil && ss.parent == d.Parent {
				ss.joinedIn = sess // the server rebuilt the edge from the hello
			}
		}
	}); err != nil {
		cl.Close()
		return nil, err
	}
	return sess, nil
}

// run handles the server's pushes and sends heartbeats and reports until
// the connection ends or the server stops answering heartbeats.
func (s *session) run() {
	hb := s.welcome.Heartbeat()
	if hb <= 0 {
		hb = 2 * time.Second
	}
	rep := s.welcome.Report()
	if rep <= 0 {
		rep = 10 * time.Second
	}
	hbt := time.NewTicker(hb)
	defer hbt.Stop()
	rt := time.NewTicker(rep)
	defer rt.Stop()
	defer s.close()
	for {
		select {
		case <-s.done:
			return
		case <-s.cl.Done():
			if s.r.ctx.Err() == nil {
				s.r.Log.Warn("lost ocm-server", "server", s.addr, "err", s.cl.Err())
			}
			return
		case m := <-s.cl.Pushes():
			s.push(m)
		case <-hbt.C:
			go func() {
				ctx, cancel := context.WithTimeout(s.r.ctx, 3*hb)
				defer cancel()
				if err := s.cl.Heartbeat(ctx); err != nil && s.r.ctx.Err() == nil && s.end(fmt.Errorf("heartbeat unanswered: %w", err)) {
					s.r.Log.Warn("ocm-server does not answer heartbeats, reconnecting", "server", s.addr, "err", err)
				}
			}()
		case <-rt.C:
			rep, err := s.r.report()
			if err != nil {
				return
			}
			if err := s.cl.Report(rep); err != nil {
				return
			}
		}
	}
}

func (s *session) push(m wire.Msg) {
	// run is counted in r.wg, so these may join it.
	switch b := m.Body.(type) {
	case *wire.Reconnect:
		s.r.wg.Add(1)
		go func() {
			defer s.r.wg.Done()
			s.r.onReconnect(b)
		}()
	case *wire.Drain:
		go s.r.onDrain(b) // it closes the relay, which waits for r.wg
	case *wire.Error:
		s.r.Log.Warn("ocm-server error", "code", b.Code, "message", b.Message)
	default:
		s.r.Log.Debug("ignoring message from ocm-server", "type", m.Type)
	}
}

func (s *session) close() { s.end(nil) }

// end closes the session for why, and reports whether it was still open
// (so the heartbeats in flight when one fails say so once).
func (s *session) end(why error) bool {
	ended := false
	s.once.Do(func() {
		s.why, ended = why, true
		close(s.done)
		s.cl.Close()
	})
	return ended
}

// err says why the session ended: the relay's reason, else the
// connection's error.
func (s *session) err() error {
	select {
	case <-s.done: // why is set, if at all
		if s.why != nil {
			return s.why
		}
	default:
	}
	return s.cl.Err()
}

// keepServer keeps one session to the server, reconnecting with backoff.
// With no --server it waits until a resolve names the origin host.
func (r *Relay) keepServer() {
	defer r.wg.Done()
	backoff := retry.Backoff{Min: 100 * time.Millisecond, Max: 2 * time.Second}
	refused := false // said so once per streak of refusals
	for r.ctx.Err() == nil {
		sess, err := r.ensureSession(r.ctx)
		if sess == nil {
			var we *wire.Error
			switch {
			case errors.As(err, &we) && we.Code == wire.CodeDuplicateNode:
				if !refused {
					var server string
					_ = r.call(r.ctx, func(st *state) { server = st.server })
					r.Log.Error("ocm-server refuses our node id: another relay is connected with it; give each relay its own --node-id (retrying)",
						"node", r.NodeID, "server", server, "err", we.Message)
					r.Events.Emit(event.ServerLink{State: "refused", Code: we.Code, Node: r.NodeID})
				}
				refused = true
			case err != nil:
				r.Log.Debug("no ocm-server session", "err", err)
			}
			if !retry.Sleep(r.ctx, backoff.Next()) {
				return
			}
			continue
		}
		backoff.Reset()
		refused = false
		<-sess.done
		if r.ctx.Err() == nil {
			// Before anyone dials again: the next server, at once.
			r.failover(sess.addr, sess.err())
		}
	}
}

// ensureSession returns the current session, connecting if there is none
// and the server address is known; one connection is made at a time, the
// other callers wait for it.
func (r *Relay) ensureSession(ctx context.Context) (*session, error) {
	for {
		var sess *session
		var addr string
		var dialing chan struct{}
		mine := false
		if err := r.call(ctx, func(st *state) {
			if sess = st.session(); sess != nil || st.server == "" {
				return
			}
			if st.dialing == nil {
				st.dialing, mine, addr = make(chan struct{}), true, st.server
			}
			dialing = st.dialing
		}); err != nil {
			return nil, err
		}
		switch {
		case sess != nil:
			return sess, nil
		case dialing == nil:
			return nil, nil // no server known
		case !mine:
			select {
			case <-dialing:
				continue
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		}
		sess, err := r.connect(ctx, addr)
		_ = r.call(context.Background(), func(st *state) {
			close(st.dialing)
			st.dialing = nil
		})
		return sess, err
	}
}

// connect dials the server at addr and makes the session the current
// one. Only the caller that set state.dialing calls it.
func (r *Relay) connect(ctx context.Context, addr string) (*session, error) {
	if r.Willing && r.rtspAddr() == "" {
		// Offering ourselves to others needs the address they reach our
		// mediator on; it says so in its hello.
		return nil, errNoRTSP
	}
	sess, err := r.dialServer(ctx, addr)
	if err != nil {
		// A server refusing our node id is up and holds a connection of
		// ours it has not noticed is gone: it takes us back once it does
		// (or never, if the id is another relay's): not a reason to move.
		var we *wire.Error
		if ctx.Err() == nil && (!errors.As(err, &we) || we.Code != wire.CodeDuplicateNode) {
			r.failover(addr, err)
		}
		return nil, err
	}
	closed := true
	var missed []string // playing, but not in the hello
	_ = r.call(context.Background(), func(st *state) {
		if closed = st.closed; !closed {
			st.sess = sess
			for s, ss := range st.streams {
				if ss.playing && ss.parent != "" && ss.joinedIn != sess && ss.phase != phaseLeaving {
					missed = append(missed, s)
				}
			}
		}
	})
	if closed {
		sess.close()
		return nil, errClosed
	}
	r.Log.Info("connected to ocm-server", "server", addr, "recovery", sess.welcome.Recovery)
	r.Events.Emit(event.ServerLink{State: "connected", Server: addr, Node: sess.welcome.Node, Recovery: sess.welcome.Recovery})
	if len(missed) > 0 {
		slices.Sort(missed)
		r.wg.Add(1)
		go func() {
			defer r.wg.Done()
			r.declareMissed(sess, missed)
		}()
	}
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		sess.run()
		_ = r.call(context.Background(), func(st *state) {
			if st.sess == sess {
				st.sess = nil
			}
		})
		if r.ctx.Err() == nil {
			r.Events.Emit(event.ServerLink{State: "disconnected", Server: addr})
			r.failover(addr, sess.err()) // for whoever dials next (keepServer may be in its backoff)
		}
	}()
	return sess, nil
}

// failover moves on to the next server of the list after the one at addr
// was lost or could not be reached (why); keepServer connects there,
// with its backoff, and the hello declares the streams relayed, so the
// next server rebuilds the trees as a restarted one does.
func (r *Relay) failover(addr string, why error) {
	_ = r.call(context.Background(), func(st *state) {
		if to, moved := st.failover(addr); moved {
			r.Log.Warn("ocm-server lost or unreachable: trying the next in --server", "from", addr, "to", to, "err", why)
		}
	})
}
