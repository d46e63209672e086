// Package wire is the OCM control protocol spoken between ocm-relay and
// ocm-server: newline-delimited JSON over TCP, one versioned message per
// line. It imports nothing else of this module, so both sides (and any
// third-party tool) can use it alone.
//
// # Framing
//
// Every message is one JSON object on one line, terminated by "\n" (a
// preceding "\r" is tolerated, blank lines are ignored). A line may be at
// most MaxLineLen bytes without its terminator; a longer line is
// ErrLineTooLong and the receiver should answer an error and close. Every
// object carries the envelope
//
//	{"v":1,"type":"hello","id":7,"re":3, ...body fields...}
//
// v is the protocol version (Version; anything else is ErrVersion), type
// names the body, id is the sender's message number (optional, >0, unique
// per connection and direction, assigned by Conn.Send), re is the id of the
// message this one answers (replies only). Body fields sit beside the
// envelope fields in the same object; unknown fields are ignored so a newer
// peer may add fields without a version bump.
//
// # Session (relay side)
//
//  1. Connect, send hello (with the token if the server has one). The
//     server answers welcome (re = hello's id), or error then close
//     (codes unauthorized, version, bad_request, expected_hello). Node ids
//     must be unique: a second connection saying hello with the same id
//     replaces the first, which receives error "replaced" and is closed
//     (the node's tree edges are kept: that is how a relay reconnects).
//  2. Send heartbeat every Welcome.Heartbeat; the server answers each with
//     a heartbeat whose re is the request's id. A server reply to a
//     heartbeat comes after every message the server queued for this relay
//     before it, so it is also a barrier. The server declares a relay dead
//     after 3 heartbeat intervals of silence (any message counts).
//  3. To receive a stream: get_candidates (stream, exclude) -> candidates
//     (re = request's id). The origin itself is a candidate with node id
//     OriginID, level 0 and the origin's RTSP address (no probe address:
//     probe it over TCP or trust its level). Probe, score, pick, then send
//     joined (stream, parent) and wait for the answer before pulling: ack
//     (with the level the server computed) or error (codes cycle, full,
//     unknown_parent, not_active, not_willing, unknown_node). After an error
//     pick another candidate; the server's tree does not contain the edge.
//  4. left (stream) when the relay stops receiving a stream; ack answers it.
//     Children the relay still had are told to reconnect according to the
//     server's recovery policy, so keep serving them a moment (a few
//     hundred ms) after sending left: that makes the hand-over gap-free.
//  5. report every Welcome.Report: node CPU, willingness, clients and per
//     stream parent, level, readers, loss, bitrate. No answer unless it is
//     malformed.
//  6. The server may push at any time: reconnect (stream, reason, optional
//     target): re-resolve that stream (excluding the failed parent the
//     reason implies) or, when a target is given, switch to it and send
//     joined; drain: hand every child over (send left for each stream the
//     relay serves others on, keep serving for a moment) and leave the
//     overlay; error with re = 0: a fatal condition, the server closes next.
//  7. On reconnection to a (possibly restarted) server, the hello lists
//     every stream the relay is receiving with its current parent: the
//     server rebuilds its trees from these and sends nothing that would
//     interrupt a stream which is fine.
//
// Client implements this side: NewClient over a Conn, then Hello,
// Candidates, Join, Leave, Heartbeat and Report, with pushes on Pushes.
//
// # Session (server side)
//
// Read the first message with a deadline; it must be a hello with a valid
// token (CheckToken). Reply welcome. Afterwards, the read deadline is a few
// heartbeat intervals; a malformed line (ErrMalformed, ErrInvalid,
// ErrUnknownType) is answered with an error and the connection is kept;
// ErrVersion and ErrLineTooLong are answered with an error and the
// connection is closed.
package wire

import "errors"

// Version is the protocol version this package speaks.
const Version = 1

// MaxLineLen is the default maximum length of one line, without its "\n".
const MaxLineLen = 64 << 10

// OriginID is the node id under which the origin (the media server itself)
// appears in candidate lists and as a parent. No relay may use it.
const OriginID = "origin"

// DefaultPort is ocm-server's default OCM TCP port.
const DefaultPort = 7070

// Limits on identifiers, checked by Validate.
const (
	MaxNodeIDLen = 128
	MaxStreamLen = 2048
	MaxListLen   = 4096 // streams in a hello, candidates, exclude entries
)

// Sentinel errors; test them with errors.Is. Decode errors other than
// ErrLineTooLong and ErrTruncated still return the envelope they could
// read, so the receiver can answer with re set.
var (
	// ErrLineTooLong: a line exceeded the maximum length.
	ErrLineTooLong = errors.New("line too long")
	// ErrTruncated: the connection ended in the middle of a line.
	ErrTruncated = errors.New("connection closed mid-message")
	// ErrMalformed: the line is not a JSON object of the right shape.
	ErrMalformed = errors.New("malformed message")
	// ErrVersion: the envelope's v is missing or not Version.
	ErrVersion = errors.New("unsupported protocol version")
	// ErrUnknownType: the envelope's type is not one this package knows.
	ErrUnknownType = errors.New("unknown message type")
	// ErrInvalid: the message decoded but a field is missing or out of range.
	ErrInvalid = errors.New("invalid message")
	// ErrBadToken: the hello's token does not match the server's.
	ErrBadToken = errors.New("bad token")
)
