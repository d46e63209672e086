package mediator

import (
	"net"
	"sync"
	"time"
)

// Interleaved writes to TCP readers are the relay's main cost: gortsplib
// writes each RTP packet with its own syscall. A coalescingConn collects
// the interleaved frames a session writes and sends them in one write at
// the end of a video frame (RTP marker bit), when the buffer fills, or
// after flushDelay, so syscalls drop several-fold and latency stays
// bounded. RTSP responses and anything else that is not an interleaved
// frame go out at once.
const (
	flushDelay    = 4 * time.Millisecond
	flushSize     = 32 << 10
	coalesceLimit = 256 << 10 // past this a slow reader's writes fail like a full socket
)

type coalescingListener struct{ net.Listener }

func (l *coalescingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &coalescingConn{Conn: c}, nil
}

type coalescingConn struct {
	net.Conn

	mu       sync.Mutex
	buf      []byte
	timer    *time.Timer
	armed    bool
	deadline time.Time
	err      error
}

func (c *coalescingConn) Write(b []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err != nil {
		return 0, c.err
	}
	interleaved := len(b) >= 4 && b[0] == '$'
	if !interleaved {
		c.buf = append(c.buf, b...)
		return len(b), c.flushLocked()
	}
	if len(c.buf)+len(b) > coalesceLimit {
		if err := c.flushLocked(); err != nil {
			return 0, err
		}
	}
	c.buf = append(c.buf, b...)
	rtpMarker := b[1]%2 == 0 && len(b) >= 6 && b[5]&0x80 != 0
	if rtpMarker || len(c.buf) >= flushSize {
		return len(b), c.flushLocked()
	}
	if !c.armed {
		c.armed = true
		if c.timer == nil {
			c.timer = time.AfterFunc(flushDelay, c.timedFlush)
		} else {
			c.timer.Reset(flushDelay)
		}
	}
	return len(b), nil
}

func (c *coalescingConn) timedFlush() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err == nil {
		c.err = c.flushLocked()
	}
}

func (c *coalescingConn) flushLocked() error {
	if c.armed {
		c.armed = false
		c.timer.Stop()
	}
	if len(c.buf) == 0 {
		return nil
	}
	if !c.deadline.IsZero() {
		_ = c.Conn.SetWriteDeadline(c.deadline)
	}
	_, err := c.Conn.Write(c.buf)
	c.buf = c.buf[:0]
	if err != nil {
		c.err = err
	}
	return err
}

// SetWriteDeadline is called before every packet; keep it for the next
// flush instead of touching the socket each time.
func (c *coalescingConn) SetWriteDeadline(t time.Time) error {
	c.mu.Lock()
	c.deadline = t
	c.mu.Unlock()
	return nil
}

func (c *coalescingConn) SetDeadline(t time.Time) error {
	c.mu.Lock()
	c.deadline = t
	c.mu.Unlock()
	return c.Conn.SetReadDeadline(t)
}

func (c *coalescingConn) Close() error {
	c.mu.Lock()
	if c.timer != nil {
		c.timer.Stop()
	}
	c.armed = false
	c.mu.Unlock()
	return c.Conn.Close()
}
