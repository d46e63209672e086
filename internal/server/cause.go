package server

import (
	"errors"
	"io"
	"net"
	"syscall"

	"github.com/ocm-overlay/ocm/internal/wire"
)

// Why a relay's connection ended: the cause of node_left and node_failed
// events and the label of ocm_node_failures_total. A fixed set, so a
// flood of failing connections cannot create metric series (an error's
// text, with its addresses, goes to the event's detail and the log).
const (
	causeClosed      = "closed"             // the relay closed between messages
	causeTruncated   = "closed mid-message" // the connection ended inside a line
	causeReset       = "connection reset"
	causeByServer    = "closed by server"
	causeReadTimeout = "read timeout" // no message for MissedHeartbeats+1 heartbeats
	causeLineTooLong = "line too long"
	causeVersion     = "wrong version"
	causeReadError   = "read error" // anything else the connection returned
	causeStopping    = "server stopping"
	causeHeartbeat   = "heartbeat" // the sweep found it silent
	causeKicked      = "kicked"    // an operator removed it
)

// failureCauses is every value the cause label takes.
var failureCauses = []string{causeClosed, causeTruncated, causeReset, causeByServer, causeReadTimeout,
	causeLineTooLong, causeVersion, causeReadError, causeStopping, causeHeartbeat, causeKicked}

// readEnd classifies the error that ended a connection's read loop; the
// caller handles the errors that do not end it (malformed messages).
func readEnd(err error) (cause string, clean bool) {
	var ne net.Error
	switch {
	case errors.Is(err, io.EOF):
		return causeClosed, true
	case errors.Is(err, wire.ErrTruncated):
		return causeTruncated, false
	case errors.Is(err, net.ErrClosed):
		return causeByServer, false
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE):
		return causeReset, false
	case errors.As(err, &ne) && ne.Timeout():
		return causeReadTimeout, false
	case errors.Is(err, wire.ErrLineTooLong):
		return causeLineTooLong, false
	case errors.Is(err, wire.ErrVersion):
		return causeVersion, false
	}
	return causeReadError, false
}
