// Package wire is the OCM control protocol spoken between ocm-relay and
// ocm-server: newline-delimited JSON over TCP, one versioned message per
// line. It imports nothing else of this module, so both sides (and any
// third-party tool) can use it alone. Its codec, Conn and Client serve
// every NDJSON link of the project: a Link names the version, line limit
// and body types of one link (Server is this one; package control defines
// the rtsp-mediator <-> ocm-relay link on the same envelope).
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
//     (codes unauthorized, version, bad_request, expected_hello,
//     duplicate_node). Node ids must be unique: a hello with the id of a
//     connection that is still alive is refused (duplicate_node) and the
//     first connection is left untouched. A relay reconnecting closes its
//     old connection first: a hello arriving while the server has not yet
//     seen that close waits a moment for it, then takes the node's place
//     with its tree edges kept. A connection that died silently holds its
//     id until the server notices (MissedHeartbeats heartbeat intervals).
//     The welcome announces the recovery policy in force (Recovery*) and
//     its timings. Under repair and drop, a relay whose upstream stalls
//     rejoins by itself at once. Under reconnect and gradual it waits for
//     its reconnect instead (the server tells every member of a failed
//     node's subtree; under gradual the failed node's children first,
//     then the next level after ReconnectStepMs or as soon as that level
//     has rejoined, down to the leaves), and rejoins by itself only if
//     none came within Welcome.StallWait(level).
//  2. Send heartbeat every Welcome.Heartbeat; the server answers each with
//     a heartbeat whose re is the request's id. A server reply to a
//     heartbeat comes after every message the server queued for this relay
//     before it, so it is also a barrier. The server declares a relay dead
//     after MissedHeartbeats heartbeat intervals of silence (any message
//     counts).
//  3. To receive a stream: get_candidates (stream, exclude) -> candidates
//     (re = request's id). The origin itself is a candidate with node id
//     OriginID, level 0 and the origin's RTSP address (no probe address:
//     probe it over TCP or trust its level). Probe, score, pick, then send
//     joined (stream, parent) and wait for the answer before pulling: ack
//     (with the level the server computed) or error (codes cycle, full,
//     unknown_parent, not_active, not_willing, quarantined, unknown_node).
//     The candidates carry the server's level and load of each relay:
//     score with them, not with what a candidate's probe answer claims.
//     Asking for candidates excluding the current parent tells the server
//     that parent lost or stalled the stream; a parent whose children do
//     so while it stays connected is quarantined (no longer offered). After an error
//     pick another candidate; the server's tree does not contain the edge.
//  4. left (stream) when the relay stops receiving a stream; ack answers it
//     (error not_in_stream if the server has no such edge, except after a
//     drain: then ack). This is the graceful handover: if the relay still
//     has children on the stream, the server marks it leaving (no longer a
//     candidate nor accepted as a parent), picks a new parent for each
//     child (never the child's own subtree; the slot is reserved for it)
//     and sends each a reconnect with reason parent_left and target /
//     target_rtsp (without target when nothing has room: the child
//     resolves by itself). The leaving relay stays the children's parent
//     in the tree until each child's joined moves it. The ack is held
//     until every child has switched away (its joined accepted, or it left
//     or failed), or until Welcome.HandoverMs passed; then the relay is
//     out of the tree, and children still below it are dealt with by the
//     recovery policy (as when their parent leaves). So: keep serving the
//     children until the ack comes, then a moment more (the server knows
//     the children's joined, not when their mediators completed the
//     make-before-break switch: a few hundred ms), then stop. Send the
//     left of several streams concurrently: each ack may take up to
//     HandoverMs, and wait for one a little longer than that.
//  5. report every Welcome.Report: node CPU, willingness, clients and per
//     stream parent, level, readers, loss, bitrate. No answer unless it is
//     malformed.
//  6. The server may push at any time: reconnect (stream, reason, optional
//     target): with a target (and target_rtsp), send joined with it as the
//     parent and, once acked, switch to it make-before-break (if the
//     joined is refused, resolve instead); without, re-resolve that stream
//     (excluding the failed parent the reason implies: parent_failed,
//     parent_left, parent_missing, rejected, capacity, orphaned; not for
//     operator or ancestor_failed). drain: the server has already started
//     the handover of every stream the relay is in (as for left, and the
//     relay's reconnects still count); send left for each stream (the
//     acks come when its children have switched), keep serving until
//     then, and leave the overlay. error with re = 0: a fatal condition,
//     the server closes next.
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

// MissedHeartbeats is how many heartbeat intervals of silence make the
// server declare a relay failed.
const MissedHeartbeats = 3

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
