//go:build unix && !linux

package fanout

import (
	"net"
	"syscall"
)

// batchReader reads one datagram per call where recvmmsg is not available.
type batchReader struct{ c *net.UDPConn }

func newBatchReader(c *net.UDPConn, _ int) (*batchReader, error) { return &batchReader{c}, nil }

func (r *batchReader) read(bufs [][]byte, sizes []int, trunc []bool) (int, error) {
	n, _, flags, _, err := r.c.ReadMsgUDPAddrPort(bufs[0], nil)
	if err != nil {
		return 0, err
	}
	sizes[0], trunc[0] = n, flags&syscall.MSG_TRUNC != 0
	return 1, nil
}
