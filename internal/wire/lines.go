package wire

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"sync"
)

// smallBuf is a connection's read buffer between long lines: every
// message of the protocol but a hello with many streams, a candidates
// answer or a big report fits, and a server holding thousands of idle
// connections keeps this much per connection, not a line limit's worth.
const smallBuf = 512

// lineReader splits a connection's input into lines. Its buffer starts
// small, grows (doubling, up to the line limit) only while a longer line
// is read, and goes back to small after it.
type lineReader struct {
	rd   io.Reader
	buf  []byte
	r, w int  // buf[r:w] is read and not yet returned
	skip bool // discard up to the next "\n" before reading (after a lost or too long line)
}

func newLineReader(rd io.Reader) lineReader { return lineReader{rd: rd} }

// smallBufs are the small read buffers of connections that wait without
// one (release).
var smallBufs = sync.Pool{New: func() any { return new([smallBuf]byte) }}

// release gives a small buffer with nothing unread back to smallBufs.
func (l *lineReader) release() bool {
	if l.r != l.w {
		return false
	}
	if len(l.buf) == smallBuf {
		smallBufs.Put((*[smallBuf]byte)(l.buf))
	}
	l.buf, l.r, l.w = nil, 0, 0
	return true
}

// readLine returns the next line without "\r\n", at most max bytes; the
// slice is valid until the next call. Errors: ErrLineTooLong (the rest of
// that line is skipped by the next call), ErrTruncated (EOF in the middle
// of a line), io.EOF (clean end), or the reader's error (a partial line
// is then lost).
func (l *lineReader) readLine(max int) ([]byte, error) {
	if l.buf == nil {
		l.buf = smallBufs.Get().(*[smallBuf]byte)[:]
	}
	l.shrink()
	if l.skip {
		if err := l.skipLine(); err != nil {
			return nil, err
		}
		l.skip = false
	}
	scanned := 0 // of buf[r:w], known to hold no "\n"
	for {
		if i := bytes.IndexByte(l.buf[l.r+scanned:l.w], '\n'); i >= 0 {
			end := l.r + scanned + i
			line := l.buf[l.r:end]
			l.r = end + 1
			if n := len(line); n > 0 && line[n-1] == '\r' {
				line = line[:n-1]
			}
			if len(line) > max {
				return nil, tooLong(max)
			}
			return line, nil
		}
		scanned = l.w - l.r
		if scanned > max+1 { // +1: a "\r" may still come off
			l.r, l.w, l.skip = 0, 0, true
			return nil, tooLong(max)
		}
		l.makeRoom(max)
		n, err := l.rd.Read(l.buf[l.w:])
		l.w += n
		if err == nil || n > 0 && bytes.IndexByte(l.buf[l.w-n:l.w], '\n') >= 0 {
			continue // a line may be complete: return it, the error comes again
		}
		partial := l.w - l.r
		if errors.Is(err, io.EOF) {
			if partial > 0 {
				l.r = l.w
				return nil, fmt.Errorf("%w: %d bytes without newline", ErrTruncated, partial)
			}
			return nil, io.EOF
		}
		if partial > 0 {
			// A timeout or reset mid-line loses the partial line.
			l.r, l.w, l.skip = 0, 0, true
		}
		return nil, err
	}
}

// skipLine discards input up to and including the next "\n".
func (l *lineReader) skipLine() error {
	for {
		if i := bytes.IndexByte(l.buf[l.r:l.w], '\n'); i >= 0 {
			l.r += i + 1
			return nil
		}
		l.r, l.w = 0, 0
		n, err := l.rd.Read(l.buf)
		l.w = n
		if err != nil && (n == 0 || bytes.IndexByte(l.buf[:n], '\n') < 0) {
			l.r, l.w = 0, 0
			return err
		}
	}
}

// makeRoom moves the unread bytes to the front of the buffer and, if it is
// full, doubles it (up to the longest line and its "\r\n").
func (l *lineReader) makeRoom(max int) {
	if l.r > 0 {
		l.w = copy(l.buf, l.buf[l.r:l.w])
		l.r = 0
	}
	if l.w < len(l.buf) {
		return
	}
	grown := make([]byte, min(2*len(l.buf), max+2))
	if len(grown) <= len(l.buf) {
		grown = make([]byte, len(l.buf)+1) // max is below what is buffered: readLine reports it
	}
	l.w = copy(grown, l.buf[:l.w])
	l.buf = grown
}

// shrink goes back to a small buffer after a long line, keeping what is
// unread if it fits.
func (l *lineReader) shrink() {
	if len(l.buf) <= smallBuf || l.w-l.r > smallBuf {
		return
	}
	small := smallBufs.Get().(*[smallBuf]byte)[:]
	l.w = copy(small, l.buf[l.r:l.w])
	l.r = 0
	l.buf = small
}

func tooLong(max int) error { return fmt.Errorf("%w: more than %d bytes", ErrLineTooLong, max) }
