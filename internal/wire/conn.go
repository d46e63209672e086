package wire

import (
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Conn is one connection of a Link: a line reader with a length limit and
// deadlines, and a writer safe for concurrent use. ReadMsg must be called
// from one goroutine at a time.
type Conn struct {
	link    *Link
	nc      net.Conn
	lines   lineReader
	maxLine int

	readTimeout  atomic.Int64 // time.Duration; 0: no deadline
	writeTimeout atomic.Int64

	wmu    sync.Mutex
	nextID atomic.Uint64

	closeOnce sync.Once
	closeErr  error
}

// NewConn wraps nc for the Server link: lines up to MaxLineLen, no read
// deadline, a 10 s write deadline.
func NewConn(nc net.Conn) *Conn { return Server.NewConn(nc) }

// Dial connects to an OCM server (the Server link).
func Dial(network, addr string, timeout time.Duration) (*Conn, error) {
	nc, err := net.DialTimeout(network, addr, timeout)
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", addr, err)
	}
	return NewConn(nc), nil
}

// SetMaxLine sets the maximum line length; call it before reading.
func (c *Conn) SetMaxLine(n int) {
	if n > 0 {
		c.maxLine = n
	}
}

// SetReadTimeout sets how long each ReadMsg may wait for a whole line
// (0: forever). It may be called while a ReadMsg is blocked; it applies to
// the next one.
func (c *Conn) SetReadTimeout(d time.Duration) { c.readTimeout.Store(int64(d)) }

// SetWriteTimeout sets how long each WriteMsg may take (0: forever).
func (c *Conn) SetWriteTimeout(d time.Duration) { c.writeTimeout.Store(int64(d)) }

// RemoteAddr returns the peer's address.
func (c *Conn) RemoteAddr() net.Addr { return c.nc.RemoteAddr() }

// LocalAddr returns the local address.
func (c *Conn) LocalAddr() net.Addr { return c.nc.LocalAddr() }

// ReadMsg reads and decodes the next message. Errors: ErrLineTooLong (the
// rest of that line is skipped by the next ReadMsg, but callers normally
// close), ErrTruncated (EOF in the middle of a line), io.EOF (clean end),
// a net.Error on timeout, or a Decode error (the connection is still
// usable: the bad line has been consumed).
func (c *Conn) ReadMsg() (Msg, error) {
	for {
		if d := time.Duration(c.readTimeout.Load()); d > 0 {
			_ = c.nc.SetReadDeadline(time.Now().Add(d))
		} else {
			_ = c.nc.SetReadDeadline(time.Time{})
		}
		line, err := c.readLine()
		if err != nil {
			return Msg{}, err
		}
		if len(line) == 0 {
			continue // blank lines keep nothing alive but are harmless
		}
		return c.link.Decode(line)
	}
}

// Release gives the read buffer back, if nothing unread is in it, and
// reports whether it did: a server then waits for the connection's next
// line without holding a buffer (or a goroutine) for it. The next read
// takes a buffer again; the last line read is no longer valid.
func (c *Conn) Release() bool { return c.lines.release() }

// SyscallConn returns the connection's raw descriptor access, if it has
// one (TCP does), for a server that waits for many idle connections at
// once.
func (c *Conn) SyscallConn() (syscall.RawConn, error) {
	sc, ok := c.nc.(syscall.Conn)
	if !ok {
		return nil, errors.ErrUnsupported
	}
	return sc.SyscallConn()
}

// readLine returns the next line without "\r\n"; the slice is valid until
// the next call.
func (c *Conn) readLine() ([]byte, error) { return c.lines.readLine(c.maxLine) }

// WriteMsg encodes m and writes it as one line. Safe for concurrent use;
// each message is written whole.
func (c *Conn) WriteMsg(m Msg) error {
	b, err := c.link.Encode(m)
	if err != nil {
		return err
	}
	if len(b) > c.maxLine {
		return fmt.Errorf("%s: %w: %d bytes, limit %d", m.Body.Type(), ErrLineTooLong, len(b), c.maxLine)
	}
	b = append(b, '\n')
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if d := time.Duration(c.writeTimeout.Load()); d > 0 {
		_ = c.nc.SetWriteDeadline(time.Now().Add(d))
	} else {
		_ = c.nc.SetWriteDeadline(time.Time{})
	}
	_, err = c.nc.Write(b)
	return err
}

// Send writes body with a fresh message id, which it returns so the caller
// can match the reply's Re.
func (c *Conn) Send(body Body) (uint64, error) {
	id := c.nextID.Add(1)
	return id, c.WriteMsg(Msg{ID: id, Body: body})
}

// Reply writes body as the answer to message re.
func (c *Conn) Reply(re uint64, body Body) error {
	return c.WriteMsg(Msg{ID: c.nextID.Add(1), Re: re, Body: body})
}

// CloseWrite half-closes the connection where the transport allows it
// (TCP): the peer reads what was written, then EOF.
func (c *Conn) CloseWrite() error {
	if cw, ok := c.nc.(interface{ CloseWrite() error }); ok {
		c.wmu.Lock()
		defer c.wmu.Unlock()
		return cw.CloseWrite()
	}
	return nil
}

// Discard reads and drops whatever the peer sends until it closes, an
// error occurs, or d has passed. The caller must be the only reader.
func (c *Conn) Discard(d time.Duration) {
	deadline := time.Now().Add(d)
	for left := d; left > 0; left = time.Until(deadline) {
		c.SetReadTimeout(left)
		_, err := c.ReadMsg()
		if err != nil && !IsBadMessage(err) && !errors.Is(err, ErrVersion) && !errors.Is(err, ErrLineTooLong) {
			return
		}
	}
}

// Linger ends a connection after a final message: it half-closes, drains
// the peer's input for up to d, then closes. Closing at once could make
// the kernel answer the peer's unread input with a reset, which may
// destroy the final message before the peer reads it.
func (c *Conn) Linger(d time.Duration) {
	_ = c.CloseWrite()
	c.Discard(d)
	c.Close()
}

// Close closes the connection; later calls return the first result.
func (c *Conn) Close() error {
	c.closeOnce.Do(func() { c.closeErr = c.nc.Close() })
	return c.closeErr
}

// CheckToken reports whether got matches want in constant time (the
// lengths leak nothing either: both are hashed first). An empty want
// accepts anything.
func CheckToken(want, got string) bool {
	if want == "" {
		return true
	}
	w := sha256.Sum256([]byte(want))
	g := sha256.Sum256([]byte(got))
	return subtle.ConstantTimeCompare(w[:], g[:]) == 1
}
