package mediator

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/bluenviron/gortsplib/v4/pkg/base"

	"github.com/ocm-overlay/ocm/internal/retry"
)

// Every TCP connection the RTSP server accepts passes a connGuard first,
// so that connections alone cannot take the mediator down, whatever the
// resolver and with or without coalescing:
//   - at most max connections at once; one more is closed as soon as it is
//     accepted, and counted;
//   - a connection must send its first request within timeout, and each
//     next one until it plays or records; a silent one is closed;
//   - an Accept error (EMFILE when the files run out) is waited out with
//     backoff: gortsplib stops serving for good on the first one.
//
// Readers already playing hold their connections through all of it.
type connGuard struct {
	max     int
	timeout time.Duration
	log     *slog.Logger

	open        atomic.Int64
	refused     atomic.Uint64
	expired     atomic.Uint64
	acceptErrs  atomic.Uint64
	lastRefusal atomic.Int64 // unix nanos of the last log line about it
	lastAccept  atomic.Int64
}

// guardLogEvery bounds the log lines a flood makes: counts say the rest.
const guardLogEvery = 5 * time.Second

// guardConnStats are the guard's counters, for the stats lines.
type guardConnStats struct {
	Open, Max                   int
	Refused, Expired, AcceptErr uint64
}

func (g *connGuard) stats() guardConnStats {
	return guardConnStats{Open: int(g.open.Load()), Max: g.max, Refused: g.refused.Load(),
		Expired: g.expired.Load(), AcceptErr: g.acceptErrs.Load()}
}

// listen wraps l.
func (g *connGuard) listen(l net.Listener) *guardListener {
	ctx, cancel := context.WithCancel(context.Background())
	return &guardListener{Listener: l, g: g, ctx: ctx, cancel: cancel}
}

// due reports whether a rate-limited log line may be written now.
func due(last *atomic.Int64) bool {
	now := time.Now().UnixNano()
	prev := last.Load()
	return now-prev >= int64(guardLogEvery) && last.CompareAndSwap(prev, now)
}

// admit wraps c, or closes it when the bound is reached.
func (g *connGuard) admit(c net.Conn) *guardConn {
	if g.open.Add(1) > int64(g.max) {
		g.open.Add(-1)
		n := g.refused.Add(1)
		if due(&g.lastRefusal) {
			g.log.Warn("connection limit reached: closing new connections", "max_conns", g.max,
				"refused_so_far", n, "remote", c.RemoteAddr())
		}
		_ = c.Close()
		return nil
	}
	gc := &guardConn{Conn: c, g: g}
	gc.mu.Lock() // the timer may fire before it is stored
	gc.timer = time.AfterFunc(g.timeout, gc.expire)
	gc.mu.Unlock()
	return gc
}

type guardListener struct {
	net.Listener
	g      *connGuard
	ctx    context.Context
	cancel context.CancelFunc
}

// Accept returns the next connection within the bound; it returns an error
// only once the listener is closed.
func (l *guardListener) Accept() (net.Conn, error) {
	backoff := retry.Backoff{Min: 5 * time.Millisecond, Max: time.Second}
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) || l.ctx.Err() != nil {
				return nil, err
			}
			d := backoff.Next()
			n := l.g.acceptErrs.Add(1)
			if due(&l.g.lastAccept) {
				l.g.log.Warn("accept failed: retrying", "err", err, "retry_in", d, "open_conns", l.g.open.Load(),
					"accept_errors_so_far", n)
			}
			if !retry.Sleep(l.ctx, d) {
				return nil, net.ErrClosed
			}
			continue
		}
		backoff.Reset()
		if gc := l.g.admit(c); gc != nil {
			return gc, nil
		}
	}
}

func (l *guardListener) Close() error {
	l.cancel()
	return l.Listener.Close()
}

// guardConn is an accepted connection counted against the bound, closed
// if it keeps silent before it plays or records.
type guardConn struct {
	net.Conn
	g *connGuard

	mu      sync.Mutex
	timer   *time.Timer
	method  base.Method // of the request being answered
	settled bool        // it played or recorded: no deadline any more
	closed  bool
}

func (c *guardConn) expire() {
	c.mu.Lock()
	closed := c.closed
	c.mu.Unlock()
	if closed {
		return
	}
	c.g.expired.Add(1)
	c.g.log.Debug("closing a silent connection", "remote", c.RemoteAddr(), "request_timeout", c.g.timeout)
	_ = c.Close()
}

// requestStarted stops the clock while the request is answered: that time
// is ours, not the peer's.
func (c *guardConn) requestStarted(method base.Method) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.timer.Stop()
	c.method = method
}

// responded starts the clock for the next request, unless the connection
// now plays or records.
func (c *guardConn) responded(code base.StatusCode) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.settled || c.closed {
		return
	}
	if code == base.StatusOK && (c.method == base.Play || c.method == base.Record) {
		c.settled = true
		return
	}
	c.timer.Reset(c.g.timeout)
}

func (c *guardConn) Close() error {
	c.mu.Lock()
	if !c.closed {
		c.closed = true
		c.timer.Stop()
		c.g.open.Add(-1)
	}
	c.mu.Unlock()
	return c.Conn.Close()
}

// SyscallConn lets the coalescing writer make non-blocking writes.
func (c *guardConn) SyscallConn() (syscall.RawConn, error) {
	sc, ok := c.Conn.(syscall.Conn)
	if !ok {
		return nil, errors.New("connection has no file descriptor")
	}
	return sc.SyscallConn()
}

// guardOf returns the guard of a connection the server accepted.
func guardOf(nc net.Conn) *guardConn {
	if cc, ok := nc.(*coalescingConn); ok {
		nc = cc.Conn
	}
	gc, _ := nc.(*guardConn)
	return gc
}

// connLimit is the bound on connections: want if set, else DefaultMaxConns
// lowered to fit the open-file limit. fit is what that limit allows: a
// quarter of the files (at least 64) stays free for upstreams, UDP
// sockets and the process itself.
func connLimit(want int) (limit, fit int) {
	fit = DefaultMaxConns
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err == nil && rl.Cur < 1<<30 {
		files := int(rl.Cur)
		fit = max(files-max(files/4, 64), 1)
	}
	if want > 0 {
		return want, fit
	}
	return min(DefaultMaxConns, fit), fit
}
