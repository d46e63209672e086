package mediator

import (
	"errors"
	"net"
	"sync"
	"syscall"
	"time"
)

// Writes to TCP readers are the relay's main cost. Every connection the
// RTSP server accepts is a coalescingConn: it collects interleaved frames
// and sends them in one write at the end of a video frame (RTP marker
// bit), when the buffer fills, or after flushDelay, so syscalls drop
// several-fold and latency stays bounded. RTSP responses go out at once.
//
// A flush first tries one non-blocking write from the caller's goroutine,
// which almost always takes everything; only what the socket refuses is
// handed to a goroutine that waits for it, so a slow reader never blocks
// the one writing to all of them, and ordering is kept because nothing is
// written directly while that goroutine has data in flight.
const (
	flushDelay    = 4 * time.Millisecond
	flushSize     = 32 << 10
	coalesceLimit = 1 << 20 // a reader this far behind the stream is dropped
	drainTimeout  = 10 * time.Second
)

// errSlowReader ends a reader that does not keep up.
var errSlowReader = errors.New("reader too slow: over 1 MiB behind the stream")

type coalescingListener struct{ net.Listener }

func (l *coalescingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return newCoalescingConn(c), nil
}

type coalescingConn struct {
	net.Conn
	raw syscall.RawConn // nil: every flush goes through drain

	mu       sync.Mutex
	buf      []byte
	spare    []byte
	timer    *time.Timer
	armed    bool
	flushing bool // drain owns the socket's write side
	err      error

	// afterResponse runs once, outside the lock, after the next RTSP
	// response is queued: a TCP reader starts receiving right after its
	// PLAY answer.
	afterResponse func()
}

func newCoalescingConn(c net.Conn) *coalescingConn {
	cc := &coalescingConn{Conn: c}
	if sc, ok := c.(syscall.Conn); ok {
		if raw, err := sc.SyscallConn(); err == nil {
			cc.raw = raw
		}
	}
	return cc
}

// Write is what gortsplib calls: RTSP responses, and interleaved frames
// for sessions it writes itself (RTCP to publishers, UDP-less fallbacks).
func (c *coalescingConn) Write(b []byte) (int, error) {
	c.mu.Lock()
	if c.err != nil {
		err := c.err
		c.mu.Unlock()
		return 0, err
	}
	interleaved := len(b) >= 4 && b[0] == '$'
	if !interleaved {
		c.buf = append(c.buf, b...)
		err := c.flushLocked()
		after := c.afterResponse
		c.afterResponse = nil
		c.mu.Unlock()
		if after != nil && err == nil {
			after()
		}
		return len(b), err
	}
	defer c.mu.Unlock()
	if len(c.buf)+len(b) > coalesceLimit {
		return 0, c.failLocked(errSlowReader)
	}
	c.buf = append(c.buf, b...)
	rtpMarker := b[1]%2 == 0 && len(b) >= 6 && b[5]&0x80 != 0
	if rtpMarker || len(c.buf) >= flushSize {
		return len(b), c.flushLocked()
	}
	c.armLocked()
	return len(b), nil
}

// frame queues one interleaved frame written by the mediator itself; flush
// sends what is queued now instead of waiting for more.
func (c *coalescingConn) frame(channel byte, payload []byte, flush bool) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err != nil {
		return c.err
	}
	if len(c.buf)+4+len(payload) > coalesceLimit {
		return c.failLocked(errSlowReader)
	}
	c.buf = append(c.buf, '$', channel, byte(len(payload)>>8), byte(len(payload)))
	c.buf = append(c.buf, payload...)
	if flush || len(c.buf) >= flushSize {
		return c.flushLocked()
	}
	return nil
}

// flush sends what is queued.
func (c *coalescingConn) flush() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err != nil {
		return c.err
	}
	return c.flushLocked()
}

func (c *coalescingConn) armLocked() {
	if c.armed {
		return
	}
	c.armed = true
	if c.timer == nil {
		c.timer = time.AfterFunc(flushDelay, c.timedFlush)
	} else {
		c.timer.Reset(flushDelay)
	}
}

func (c *coalescingConn) timedFlush() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.armed = false
	if c.err == nil {
		_ = c.flushLocked()
	}
}

func (c *coalescingConn) flushLocked() error {
	if c.armed {
		c.armed = false
		c.timer.Stop()
	}
	if c.flushing || len(c.buf) == 0 {
		return nil // drain takes it
	}
	if c.raw != nil {
		n, err := c.tryWrite(c.buf)
		if err != nil {
			return c.failLocked(err)
		}
		if n == len(c.buf) {
			c.buf = c.buf[:0]
			return nil
		}
		c.buf = c.buf[:copy(c.buf, c.buf[n:])]
	}
	c.flushing = true
	go c.drain()
	return nil
}

// tryWrite makes one non-blocking write; a full socket is no error.
func (c *coalescingConn) tryWrite(b []byte) (int, error) {
	var n int
	var werr error
	err := c.raw.Write(func(fd uintptr) bool {
		n, werr = syscall.Write(int(fd), b)
		return true
	})
	if err != nil {
		return 0, err
	}
	if werr == syscall.EAGAIN || werr == syscall.EINTR {
		return 0, nil
	}
	if werr != nil {
		return 0, werr
	}
	return max(n, 0), nil
}

// drain writes, blocking, whatever accumulates until the buffer is empty.
func (c *coalescingConn) drain() {
	c.mu.Lock()
	for c.err == nil && len(c.buf) > 0 {
		out := c.buf
		c.buf = c.spare[:0]
		c.mu.Unlock()
		_ = c.Conn.SetWriteDeadline(time.Now().Add(drainTimeout))
		_, err := c.Conn.Write(out)
		c.mu.Lock()
		c.spare = out[:0]
		if err != nil {
			_ = c.failLocked(err)
		}
	}
	c.flushing = false
	c.mu.Unlock()
}

// failLocked ends the connection: gortsplib's read fails and it closes the
// session, which removes the reader.
func (c *coalescingConn) failLocked(err error) error {
	if c.err == nil {
		c.err = err
		_ = c.Conn.Close()
	}
	return c.err
}

// SetWriteDeadline is called by gortsplib before every packet it writes;
// writes here never block the caller, and drain sets its own deadline.
func (c *coalescingConn) SetWriteDeadline(time.Time) error { return nil }

func (c *coalescingConn) SetDeadline(t time.Time) error {
	return c.Conn.SetReadDeadline(t)
}

func (c *coalescingConn) Close() error {
	c.mu.Lock()
	if c.timer != nil {
		c.timer.Stop()
	}
	c.armed = false
	if c.err == nil {
		c.err = net.ErrClosed
	}
	c.mu.Unlock()
	return c.Conn.Close()
}
