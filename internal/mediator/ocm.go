package mediator

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ocm-overlay/ocm/internal/control"
	"github.com/ocm-overlay/ocm/internal/streamurl"
)

// OCM resolves through the ocm-relay on this host (its control socket):
// the relay asks the server for candidates, probes them and picks one. It
// also tells the relay what the mediator does with each stream and obeys
// the switches the relay pushes. When the relay cannot be reached it falls
// back to the origin, so players still get their stream.
type OCM struct {
	Addr string // the relay's control address
	// Redirect makes the mediator answer players with a 302 to the chosen
	// upstream instead of relaying (the light client).
	Redirect bool
	Log      *slog.Logger

	m       *Mediator
	mu      sync.Mutex
	conn    *control.Conn
	pending map[uint64]chan control.Msg
	nextID  atomic.Uint64
	willing atomic.Bool
	node    atomic.Pointer[string]
	ctx     context.Context
	cancel  context.CancelFunc
	wg      sync.WaitGroup
}

// Attach binds the resolver to its mediator (for switches and stats) and
// starts keeping a connection to the relay. Call it after m.Start.
func (o *OCM) Attach(m *Mediator) {
	o.m = m
	if o.Log == nil {
		o.Log = m.Log
	}
	o.Log = o.Log.With("relay", o.Addr)
	o.pending = map[uint64]chan control.Msg{}
	o.willing.Store(true)
	o.ctx, o.cancel = context.WithCancel(context.Background())
	o.wg.Add(1)
	go o.keepConnected()
}

// Close stops talking to the relay.
func (o *OCM) Close() {
	if o.cancel == nil {
		return
	}
	o.cancel()
	o.mu.Lock()
	if o.conn != nil {
		o.conn.Close()
	}
	o.mu.Unlock()
	o.wg.Wait()
}

// RedirectOnly reports whether players get a 302 instead of a relay.
func (o *OCM) RedirectOnly() bool { return o.Redirect }

// AcceptsRelays reports whether downstream relays may pull from this host
// (false on a passive host, --willing=false).
func (o *OCM) AcceptsRelays() bool { return o.willing.Load() }

// Resolve asks the relay; if it cannot be reached, the origin itself.
func (o *OCM) Resolve(ctx context.Context, req ResolveRequest) (Upstream, error) {
	reply, err := o.call(ctx, control.Msg{Op: control.OpResolve, Stream: req.Origin.URL(),
		Exclude: req.Exclude, Redirect: o.Redirect})
	if err != nil {
		if errors.Is(err, errNoRelay) {
			o.Log.Warn("ocm-relay unreachable, pulling from the origin directly", "stream", req.Origin.URL(), "err", err)
			return Direct{}.Resolve(ctx, req)
		}
		return Upstream{}, err
	}
	if reply.Error != "" {
		return Upstream{}, fmt.Errorf("ocm-relay: %s", reply.Error)
	}
	if reply.Upstream == nil || reply.Upstream.URL == "" {
		return Upstream{}, fmt.Errorf("ocm-relay answered no upstream")
	}
	up := Upstream{URL: reply.Upstream.URL, Addr: reply.Upstream.Addr, Node: reply.Upstream.Node, Redirect: o.Redirect}
	return up, nil
}

// Active tells the relay the stream flows from up.
func (o *OCM) Active(stream streamurl.Origin, up Upstream) {
	o.send(control.Msg{Op: control.OpActive, Stream: stream.URL(),
		Upstream: &control.Upstream{URL: up.URL, Addr: up.Addr, Node: up.Node}})
}

// Inactive tells the relay the stream is no longer relayed here.
func (o *OCM) Inactive(stream streamurl.Origin) {
	o.send(control.Msg{Op: control.OpInactive, Stream: stream.URL()})
}

var errNoRelay = errors.New("no connection to ocm-relay")

func (o *OCM) call(ctx context.Context, m control.Msg) (control.Msg, error) {
	c := o.connection(ctx)
	if c == nil {
		return control.Msg{}, fmt.Errorf("%w at %s", errNoRelay, o.Addr)
	}
	m.ID = o.nextID.Add(1)
	ch := make(chan control.Msg, 1)
	o.mu.Lock()
	o.pending[m.ID] = ch
	o.mu.Unlock()
	defer func() {
		o.mu.Lock()
		delete(o.pending, m.ID)
		o.mu.Unlock()
	}()
	if err := c.Write(m); err != nil {
		c.Close()
		return control.Msg{}, fmt.Errorf("%w at %s: %v", errNoRelay, o.Addr, err)
	}
	select {
	case r, ok := <-ch:
		if !ok {
			return control.Msg{}, fmt.Errorf("%w at %s: connection lost", errNoRelay, o.Addr)
		}
		return r, nil
	case <-ctx.Done():
		return control.Msg{}, fmt.Errorf("ocm-relay did not answer: %w", ctx.Err())
	}
}

func (o *OCM) send(m control.Msg) {
	o.mu.Lock()
	c := o.conn
	o.mu.Unlock()
	if c != nil {
		_ = c.Write(m)
	}
}

// connection returns the current connection, dialing at once if there is
// none (a resolve should not wait for the reconnect loop's backoff).
func (o *OCM) connection(ctx context.Context) *control.Conn {
	o.mu.Lock()
	c := o.conn
	o.mu.Unlock()
	if c != nil {
		return c
	}
	dctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	c, err := o.dial(dctx)
	if err != nil {
		return nil
	}
	return c
}

func (o *OCM) dial(ctx context.Context) (*control.Conn, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.conn != nil {
		return o.conn, nil
	}
	var d net.Dialer
	nc, err := d.DialContext(ctx, "tcp", o.Addr)
	if err != nil {
		return nil, err
	}
	c := control.NewConn(nc)
	o.conn = c
	o.wg.Add(1)
	go o.readLoop(c)
	if err := c.Write(control.Msg{Op: control.OpHello, ID: o.nextID.Add(1), RTSP: o.m.Addr()}); err != nil {
		c.Close()
	}
	// A relay that restarted knows nothing of the streams relayed here:
	// tell it, so it reports them and says them in its hello.
	for stream, up := range o.m.currentUpstreams() {
		_ = c.Write(control.Msg{Op: control.OpActive, Stream: stream,
			Upstream: &control.Upstream{URL: up.URL, Addr: up.Addr, Node: up.Node}})
	}
	o.Log.Info("connected to ocm-relay")
	return c, nil
}

// keepConnected redials the relay when the connection drops and sends it
// the mediator's stats every second.
func (o *OCM) keepConnected() {
	defer o.wg.Done()
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		o.mu.Lock()
		c := o.conn
		o.mu.Unlock()
		if c == nil {
			ctx, cancel := context.WithTimeout(o.ctx, time.Second)
			_, _ = o.dial(ctx)
			cancel()
		} else {
			_ = c.Write(control.Msg{Op: control.OpStats, Streams: o.m.StreamStats()})
		}
		select {
		case <-o.ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (o *OCM) readLoop(c *control.Conn) {
	defer o.wg.Done()
	defer func() {
		o.mu.Lock()
		if o.conn == c {
			o.conn = nil
		}
		for id, ch := range o.pending {
			close(ch)
			delete(o.pending, id)
		}
		o.mu.Unlock()
		c.Close()
		if o.ctx.Err() == nil {
			o.Log.Warn("lost the connection to ocm-relay")
		}
	}()
	for {
		m, err := c.Read()
		if errors.Is(err, control.ErrBadMessage) {
			o.Log.Warn("ignoring a bad message from ocm-relay", "err", err)
			continue
		}
		if err != nil {
			return
		}
		switch {
		case m.Re != 0:
			if m.Willing != nil {
				o.willing.Store(*m.Willing)
			}
			if m.Node != "" {
				n := m.Node
				o.node.Store(&n)
			}
			o.mu.Lock()
			ch := o.pending[m.Re]
			delete(o.pending, m.Re)
			o.mu.Unlock()
			if ch != nil {
				ch <- m
			} else if m.Error != "" {
				o.Log.Warn("ocm-relay refused", "err", m.Error) // the hello: nobody waits for it
			}
		case m.Op == control.OpSwitch && m.Upstream != nil:
			up := Upstream{URL: m.Upstream.URL, Addr: m.Upstream.Addr, Node: m.Upstream.Node}
			if err := o.m.Switch(m.Stream, up); err != nil {
				o.Log.Info("switch ignored", "stream", m.Stream, "err", err)
			}
		case m.Error != "":
			// An active over the relay's stream limit, a refused connection.
			o.Log.Warn("ocm-relay says", "err", m.Error)
		default:
			o.Log.Debug("ignoring control message", "op", m.Op)
		}
	}
}
