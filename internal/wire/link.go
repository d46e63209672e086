package wire

import (
	"errors"
	"net"
	"time"
)

// Link is the message set of one NDJSON link: the version its envelopes
// carry, the longest line it takes, and the body types it knows. Every
// link shares the envelope, framing, deadlines and the request/response
// correlation of Conn and Client; only the typed bodies differ. Server is
// the relay <-> ocm-server link of this package; package control defines
// the rtsp-mediator <-> ocm-relay link on top of this one.
type Link struct {
	// Name names the link in error messages ("ocm", "control").
	Name string
	// Version is the envelope's v; any other is ErrVersion.
	Version int
	// MaxLine is the default longest line, without its "\n".
	MaxLine int
	// WriteTimeout is the default deadline of one write.
	WriteTimeout time.Duration
	// New returns an empty body for an envelope type, nil if the link
	// has no such type.
	New func(typ string) Body
}

// Server is the relay <-> ocm-server link: the message set of this
// package.
var Server = &Link{Name: "ocm", Version: Version, MaxLine: MaxLineLen, WriteTimeout: 10 * time.Second, New: newBody}

// NewConn wraps nc with the link's limits: lines up to MaxLine, no read
// deadline, WriteTimeout per write.
func (l *Link) NewConn(nc net.Conn) *Conn {
	c := &Conn{link: l, nc: nc, maxLine: l.MaxLine, lines: newLineReader(nc)}
	c.writeTimeout.Store(int64(l.WriteTimeout))
	return c
}

// IsBadMessage reports whether err is about one line only (ErrMalformed,
// ErrInvalid, ErrUnknownType): the line was consumed and the connection
// can go on. ErrVersion and ErrLineTooLong are not: a peer speaking
// another version or overflowing the limit is answered and closed.
func IsBadMessage(err error) bool {
	return errors.Is(err, ErrMalformed) || errors.Is(err, ErrInvalid) || errors.Is(err, ErrUnknownType)
}

// ErrorCode is the Code* an error answer to a read error carries.
func ErrorCode(err error) string {
	switch {
	case errors.Is(err, ErrLineTooLong):
		return CodeLineTooLong
	case errors.Is(err, ErrVersion):
		return CodeVersion
	case errors.Is(err, ErrUnknownType):
		return CodeUnknownType
	}
	return CodeBadRequest
}
