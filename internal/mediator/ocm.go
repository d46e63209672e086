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
	"github.com/ocm-overlay/ocm/internal/wire"
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
	cl      *control.Client
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
	cl := o.cl
	o.mu.Unlock()
	if cl != nil {
		cl.Close()
	}
	o.wg.Wait()
}

// RedirectOnly reports whether players get a 302 instead of a relay.
func (o *OCM) RedirectOnly() bool { return o.Redirect }

// AcceptsRelays reports whether downstream relays may pull from this host
// (false on a passive host, --willing=false).
func (o *OCM) AcceptsRelays() bool { return o.willing.Load() }

// Resolve asks the relay; if it cannot be reached, the origin itself.
func (o *OCM) Resolve(ctx context.Context, req ResolveRequest) (Upstream, error) {
	cl := o.client(ctx)
	if cl == nil {
		return o.direct(ctx, req, fmt.Errorf("%w at %s", errNoRelay, o.Addr))
	}
	up, err := cl.Resolve(ctx, &control.Resolve{Stream: req.Origin.URL(), Mode: o.mode(req), Exclude: req.Exclude})
	var refused *wire.Error
	switch {
	case err == nil:
	case errors.As(err, &refused) && refused.Code == control.CodeNoRoom:
		return Upstream{}, fmt.Errorf("%w: ocm-relay: %s", ErrNoRoom, refused.Message)
	case errors.As(err, &refused):
		return Upstream{}, fmt.Errorf("ocm-relay: %s", refused.Message)
	case ctx.Err() != nil:
		return Upstream{}, fmt.Errorf("ocm-relay did not answer: %w", ctx.Err())
	case errors.Is(err, wire.ErrInvalid): // an answer of another type
		return Upstream{}, fmt.Errorf("ocm-relay: %w", err)
	default: // the connection failed or ended under the request
		cl.Close()
		return o.direct(ctx, req, fmt.Errorf("%w at %s: %v", errNoRelay, o.Addr, err))
	}
	if up.URL == "" {
		return Upstream{}, fmt.Errorf("ocm-relay answered no upstream")
	}
	return Upstream{URL: up.URL, Addr: up.Addr, Node: up.Node, Redirect: o.Redirect}, nil
}

// mode says why the mediator resolves: the relay acts on it, never on
// the fields of the request. A resolve excluding upstreams is one after
// a loss (the stream's goroutine excludes only what failed it).
func (o *OCM) mode(req ResolveRequest) string {
	switch {
	case o.Redirect:
		return control.ModeRedirect
	case len(req.Exclude) > 0:
		return control.ModeAfterLoss
	}
	return control.ModeJoin
}

// direct is the fallback when the relay cannot be reached: the origin.
func (o *OCM) direct(ctx context.Context, req ResolveRequest, err error) (Upstream, error) {
	o.Log.Warn("ocm-relay unreachable, pulling from the origin directly", "stream", req.Origin.URL(), "err", err)
	return Direct{}.Resolve(ctx, req)
}

// Active tells the relay the stream flows from up.
func (o *OCM) Active(stream streamurl.Origin, up Upstream) {
	if cl := o.current(); cl != nil {
		_ = cl.Active(stream.URL(), control.Upstream{URL: up.URL, Addr: up.Addr, Node: up.Node})
	}
}

// Inactive tells the relay the stream is no longer relayed here.
func (o *OCM) Inactive(stream streamurl.Origin) {
	if cl := o.current(); cl != nil {
		_ = cl.Inactive(stream.URL())
	}
}

var errNoRelay = errors.New("no connection to ocm-relay")

// ErrNoRoom is a resolve that found no parent with room in the overlay
// within ocm-relay's bounds (--join-attempts, --join-wait): the stream
// exists, but the overlay cannot take one more viewer now. Players get
// 503, not an origin's failure.
var ErrNoRoom = errors.New("no room in the overlay")

func (o *OCM) current() *control.Client {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.cl
}

// client returns the current connection, dialing at once if there is
// none (a resolve should not wait for the reconnect loop's backoff).
func (o *OCM) client(ctx context.Context) *control.Client {
	if cl := o.current(); cl != nil {
		return cl
	}
	dctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	cl, err := o.dial(dctx)
	if err != nil {
		return nil
	}
	return cl
}

func (o *OCM) dial(ctx context.Context) (*control.Client, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.cl != nil {
		return o.cl, nil
	}
	if err := o.ctx.Err(); err != nil {
		return nil, err // closed: a resolve still under way goes direct
	}
	var d net.Dialer
	nc, err := d.DialContext(ctx, "tcp", o.Addr)
	if err != nil {
		return nil, err
	}
	cl := control.NewClient(control.NewConn(nc), wire.OnSkip(func(err error) {
		o.Log.Warn("ignoring a bad message from ocm-relay", "err", err)
	}))
	o.cl = cl
	o.wg.Add(1)
	go o.readPushes(cl)
	w, err := cl.Hello(ctx, o.m.Addr())
	var refused *wire.Error
	switch {
	case err == nil:
		o.welcome(w)
	case errors.As(err, &refused):
		o.Log.Warn("ocm-relay refused", "err", err) // the relay still resolves for us
	case ctx.Err() != nil:
		// Keep the connection: a late welcome comes as a push.
		o.Log.Warn("ocm-relay did not answer the hello yet", "err", err)
	default:
		cl.Close()
		o.cl = nil
		return nil, err
	}
	// A relay that restarted knows nothing of the streams relayed here:
	// tell it, so it reports them and says them in its hello.
	for stream, up := range o.m.currentUpstreams() {
		_ = cl.Active(stream, control.Upstream{URL: up.URL, Addr: up.Addr, Node: up.Node})
	}
	o.Log.Info("connected to ocm-relay")
	return cl, nil
}

func (o *OCM) welcome(w *control.Welcome) {
	o.willing.Store(w.Willing)
	if w.Node != "" {
		n := w.Node
		o.node.Store(&n)
	}
}

// keepConnected redials the relay when the connection drops and sends it
// the mediator's stats every second.
func (o *OCM) keepConnected() {
	defer o.wg.Done()
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		if cl := o.current(); cl == nil {
			ctx, cancel := context.WithTimeout(o.ctx, time.Second)
			_, _ = o.dial(ctx)
			cancel()
		} else {
			_ = cl.Stats(o.m.StreamStats())
		}
		select {
		case <-o.ctx.Done():
			return
		case <-t.C:
		}
	}
}

// readPushes obeys what the relay sends unasked until the connection
// ends, then forgets the connection so the next use redials.
func (o *OCM) readPushes(cl *control.Client) {
	defer o.wg.Done()
	defer func() {
		o.mu.Lock()
		if o.cl == cl {
			o.cl = nil
		}
		o.mu.Unlock()
		cl.Close()
		if o.ctx.Err() == nil {
			o.Log.Warn("lost the connection to ocm-relay")
		}
	}()
	for m := range cl.Pushes() {
		switch b := m.Body.(type) {
		case *control.Switch:
			up := Upstream{URL: b.Upstream.URL, Addr: b.Upstream.Addr, Node: b.Upstream.Node}
			if err := o.m.Switch(b.Stream, up); err != nil {
				o.Log.Info("switch ignored", "stream", b.Stream, "err", err)
			}
		case *control.Welcome: // answering a hello that gave up waiting
			o.welcome(b)
		case *wire.Error:
			// An active over the relay's stream limit, a refused connection.
			o.Log.Warn("ocm-relay says", "err", b)
		default:
			o.Log.Debug("ignoring control message", "type", m.Type)
		}
	}
}
