package mediator

import (
	"os"
	"strconv"
	"syscall"
)

// gortsplib creates its multicast write sockets itself with a fixed TTL
// of 16, without a hook. The paper's LAN multicast must not leave the
// segment, so after each multicast SETUP the mediator finds those sockets
// (UDP, bound to the multicast RTP or RTCP port) among its own file
// descriptors and sets the TTL it was configured with (1 by default).
func setMulticastTTL(ports [2]int, ttl int) (changed int) {
	entries, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return 0
	}
	for _, e := range entries {
		fd, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		sa, err := syscall.Getsockname(fd)
		if err != nil {
			continue
		}
		in4, ok := sa.(*syscall.SockaddrInet4)
		if !ok || in4.Port != ports[0] && in4.Port != ports[1] {
			continue
		}
		if typ, err := syscall.GetsockoptInt(fd, syscall.SOL_SOCKET, syscall.SO_TYPE); err != nil || typ != syscall.SOCK_DGRAM {
			continue
		}
		cur, err := syscall.GetsockoptInt(fd, syscall.IPPROTO_IP, syscall.IP_MULTICAST_TTL)
		if err != nil || cur == ttl {
			continue
		}
		if syscall.SetsockoptInt(fd, syscall.IPPROTO_IP, syscall.IP_MULTICAST_TTL, ttl) == nil {
			changed++
		}
	}
	return changed
}
