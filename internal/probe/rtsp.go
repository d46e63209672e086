package probe

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"time"
)

// ProbeRTSP measures the round trip of an RTSP OPTIONS request to addr
// (host:port) over a fresh TCP connection, the connect excluded. Any RTSP
// status line counts as alive, 404 included: the origin is a black box and
// only its responsiveness is measured. The whole exchange, connect
// included, is bounded by timeout (DefaultTimeout if <= 0) and ctx.
func ProbeRTSP(ctx context.Context, addr string, timeout time.Duration) (time.Duration, error) {
	rtt, err := probeRTSP(ctx, addr, timeout)
	if err != nil {
		return 0, fmt.Errorf("rtsp options %s: %w", addr, err)
	}
	return rtt, nil
}

func probeRTSP(ctx context.Context, addr string, timeout time.Duration) (time.Duration, error) {
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return 0, noAnswer(ctx, err, timeout)
	}
	defer conn.Close()
	deadline, _ := ctx.Deadline()
	_ = conn.SetDeadline(deadline)
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()

	req := "OPTIONS rtsp://" + addr + "/ RTSP/1.0\r\nCSeq: 1\r\nUser-Agent: ocm-probe\r\n\r\n"
	start := time.Now()
	if _, err := conn.Write([]byte(req)); err != nil {
		return 0, noAnswer(ctx, err, timeout)
	}
	br := bufio.NewReaderSize(conn, 512)
	line, err := br.ReadSlice('\n')
	rtt := time.Since(start)
	if err == bufio.ErrBufferFull {
		return 0, fmt.Errorf("%w: status line too long", ErrNotRTSP)
	}
	if err != nil {
		if len(line) == 0 {
			if err == io.EOF {
				return 0, errors.New("connection closed without an answer")
			}
			return 0, noAnswer(ctx, err, timeout)
		}
		return 0, fmt.Errorf("%w: %.64q (%v)", ErrNotRTSP, line, err)
	}
	if !statusLine(line) {
		// Quote only the start of what the peer said: enough to see
		// what answers there, not a way to fill our logs.
		return 0, fmt.Errorf("%w: %.64q", ErrNotRTSP, bytes.TrimSpace(line))
	}
	// Read the headers to their end (bounded, errors ignored) so the
	// close is clean rather than a reset with unread data.
	for range 64 {
		l, err := br.ReadSlice('\n')
		if err != nil || len(bytes.TrimSpace(l)) == 0 {
			break
		}
	}
	return rtt, nil
}

// statusLine reports whether l looks like "RTSP/1.0 200 OK\r\n".
func statusLine(l []byte) bool {
	l = bytes.TrimRight(l, "\r\n")
	if !bytes.HasPrefix(l, []byte("RTSP/")) {
		return false
	}
	_, rest, ok := bytes.Cut(l, []byte(" "))
	if !ok || len(rest) < 3 {
		return false
	}
	for _, c := range rest[:3] {
		if c < '0' || c > '9' {
			return false
		}
	}
	return len(rest) == 3 || rest[3] == ' '
}
