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
	r.mu.Lock()
	for s, st := range r.streams {
		// Only what plays: a stream still resolving or waiting for media
		// is joined again, if at all, when the mediator says it plays.
		if st.parent != "" && st.phase == stateActive {
			hello.Streams = append(hello.Streams, wire.Relayed{Stream: s, Parent: st.parent, ParentRTSP: st.parentRTSP, Level: st.level})
		}
	}
	r.mu.Unlock()
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
	r.mu.Lock()
	for _, d := range hello.Streams {
		if st := r.streams[d.Stream]; st != nil && st.parent == d.Parent {
			st.joinedIn = sess // the server rebuilt the edge from the hello
		}
	}
	r.mu.Unlock()
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
				if err := s.cl.Heartbeat(ctx); err != nil && s.r.ctx.Err() == nil {
					s.r.Log.Warn("ocm-server does not answer heartbeats, reconnecting", "server", s.addr, "err", err)
					s.close()
				}
			}()
		case <-rt.C:
			if err := s.cl.Report(s.r.report()); err != nil {
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

// call sends a request and waits for its answer; an error answer is a
// *wire.Error.
func (s *session) call(ctx context.Context, b wire.Body) (wire.Msg, error) {
	return s.cl.Request(ctx, b)
}

func (s *session) close() {
	s.once.Do(func() {
		close(s.done)
		s.cl.Close()
	})
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
					r.mu.Lock()
					server := r.server
					r.mu.Unlock()
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
	}
}

// ensureSession returns the current session, connecting if there is none
// and the server address is known.
func (r *Relay) ensureSession(ctx context.Context) (*session, error) {
	r.serverMu.Lock()
	defer r.serverMu.Unlock()
	r.mu.Lock()
	sess, addr := r.sess, r.server
	r.mu.Unlock()
	if sess != nil {
		select {
		case <-sess.done:
		default:
			return sess, nil
		}
	}
	if addr == "" {
		return nil, nil
	}
	if r.Willing && r.rtspAddr() == "" {
		// Offering ourselves to others needs the address they reach our
		// mediator on; it says so in its hello.
		return nil, errNoRTSP
	}
	sess, err := r.dialServer(ctx, addr)
	if err != nil {
		return nil, err
	}
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		sess.close()
		return nil, errClosed
	}
	r.sess = sess
	r.mu.Unlock()
	r.Log.Info("connected to ocm-server", "server", addr, "recovery", sess.welcome.Recovery)
	r.Events.Emit(event.ServerLink{State: "connected", Server: addr, Node: sess.welcome.Node, Recovery: sess.welcome.Recovery})
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		sess.run()
		r.mu.Lock()
		if r.sess == sess {
			r.sess = nil
		}
		r.mu.Unlock()
		if r.ctx.Err() == nil {
			r.Events.Emit(event.ServerLink{State: "disconnected", Server: addr})
		}
	}()
	return sess, nil
}
