package fanout

import (
	"net"
	"os"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// mmsghdr is struct mmsghdr; the padding makes its size match C's on
// 64-bit platforms (on 32-bit ones it is empty).
type mmsghdr struct {
	hdr unix.Msghdr
	len uint32
	_   [unsafe.Sizeof(uintptr(0)) - 4]byte
}

// batchReader receives up to len(bufs) datagrams per recvmmsg. It exists
// because ipv4.PacketConn.ReadBatch allocates a source address per
// message, and the input path must not allocate per packet.
type batchReader struct {
	rc    syscall.RawConn
	hs    []mmsghdr
	iovs  []unix.Iovec
	cnt   int
	n     int
	errno syscall.Errno
	fn    func(fd uintptr) bool
}

func newBatchReader(c *net.UDPConn, max int) (*batchReader, error) {
	rc, err := c.SyscallConn()
	if err != nil {
		return nil, err
	}
	r := &batchReader{rc: rc, hs: make([]mmsghdr, max), iovs: make([]unix.Iovec, max)}
	r.fn = r.recv
	return r, nil
}

// read fills bufs[i][:sizes[i]] for i < n; trunc[i] is set for datagrams
// larger than their buffer. It blocks until at least one arrives.
func (r *batchReader) read(bufs [][]byte, sizes []int, trunc []bool) (int, error) {
	k := min(len(bufs), len(r.hs))
	for i := range k {
		r.iovs[i].Base = &bufs[i][0]
		r.iovs[i].SetLen(len(bufs[i]))
		r.hs[i] = mmsghdr{}
		r.hs[i].hdr.Iov = &r.iovs[i]
		r.hs[i].hdr.SetIovlen(1)
	}
	r.cnt, r.n, r.errno = k, 0, 0
	if err := r.rc.Read(r.fn); err != nil {
		return 0, err
	}
	if r.errno != 0 {
		return 0, os.NewSyscallError("recvmmsg", r.errno)
	}
	for i := range r.n {
		sizes[i] = int(r.hs[i].len)
		trunc[i] = r.hs[i].hdr.Flags&unix.MSG_TRUNC != 0
	}
	return r.n, nil
}

func (r *batchReader) recv(fd uintptr) bool {
	for {
		n, _, e := unix.Syscall6(unix.SYS_RECVMMSG, fd, uintptr(unsafe.Pointer(&r.hs[0])), uintptr(r.cnt), unix.MSG_DONTWAIT, 0, 0)
		switch e {
		case unix.EINTR:
			continue
		case unix.EAGAIN:
			return false // wait for readability
		}
		r.n, r.errno = int(n), e
		return true
	}
}
