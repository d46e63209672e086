package mediator

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"syscall"

	"github.com/bluenviron/gortsplib/v4/pkg/base"
	"github.com/bluenviron/gortsplib/v4/pkg/liberrors"

	"github.com/ocm-overlay/ocm/internal/allow"
)

// errResolve marks a failure to find an upstream, as opposed to one found
// that could not be pulled: the resolver's own words (ours, or the local
// ocm-relay's), which may go into an answer.
var errResolve = errors.New("resolve")

// publicCause says in words of our own why an upstream failed. An error
// answer goes to whoever asked, so it must not carry anything the
// upstream sent (its status text, its SDP, its garbage): the mediator
// would otherwise read hosts it can reach on the asker's behalf. The
// whole error goes to the log.
func publicCause(err error) string {
	var refused *allow.RefusedError
	var status liberrors.ErrClientBadStatusCode
	var dnsErr *net.DNSError
	var netErr net.Error
	switch {
	case errors.As(err, &refused):
		return refused.Error()
	case errors.Is(err, errResolve):
		return err.Error()
	case errors.As(err, &status):
		if msg, ok := base.StatusMessages[status.Code]; ok {
			return fmt.Sprintf("answered %d %s", status.Code, msg)
		}
		return fmt.Sprintf("answered status %d", status.Code)
	case errors.As(err, &dnsErr):
		if dnsErr.IsNotFound {
			return "host not found"
		}
		return "host lookup failed"
	case errors.Is(err, syscall.ECONNREFUSED):
		return "refused the connection"
	case errors.Is(err, syscall.EHOSTUNREACH), errors.Is(err, syscall.ENETUNREACH):
		return "is unreachable"
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &netErr) && netErr.Timeout():
		return "did not answer in time"
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "closed the connection"
	}
	return "did not answer as an RTSP server with a stream to relay (the mediator's log has its answer)"
}
